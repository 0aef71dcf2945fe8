// Internal: the one way zsclip reads and writes files. Reads are bounded (a size checked with fstat
// before reading, and never more than the limit plus one byte read), only regular files are read by
// path (a device or FIFO is refused before it can block or stream forever), every failure is an
// Error whose code comes from one errno mapping, and writes go through a temporary file renamed
// into place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zsclip/error.h"

namespace zsclip::io {

// Throws Error(error_code_from_errno(err), "<what> '<path>': <action>: <strerror(err)>").
[[noreturn]] void throw_errno(int err, const std::string& what, const std::string& path,
                              const std::string& action);

// What a reader accepts: at most max_bytes; a larger input is Error(too_large).
struct ReadLimit {
  uint64_t max_bytes;
  ErrorCode too_large;
};

// An open file descriptor, closed on destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// Opens a regular file for reading and returns it with its size. `what` names it in errors
// ("image", "head file"). Refused: a missing path (kNotFound), an unreadable one
// (kPermissionDenied), anything that is not a regular file, such as a directory, device, FIFO or
// socket (kInvalidArgument: opened without blocking, never read), and a file over the limit
// (limit.too_large).
Fd open_regular_file(const std::string& path, const std::string& what, const ReadLimit& limit,
                     uint64_t* size);
// The whole of a regular file (as open_regular_file), read with at most limit.max_bytes + 1 bytes.
std::string read_file(const std::string& path, const std::string& what, const ReadLimit& limit);
void read_file(const std::string& path, const std::string& what, const ReadLimit& limit,
               std::vector<uint8_t>* bytes);
// Everything a descriptor that need not be a regular file gives (standard input, a pipe) until its
// end; Error(limit.too_large) as soon as more than max_bytes arrive. `name` names it ("standard
// input").
std::string read_stream(int fd, const std::string& name, const ReadLimit& limit);

// Writes `bytes` to `path` atomically: a temporary file with a unique name in the target's folder,
// flushed to disk, then renamed over the target; on any failure the temporary file is removed and
// the target is unchanged. A target that exists and is not a regular file (directory, device,
// FIFO, socket) is refused (kInvalidArgument). A symbolic link is written through: the file it
// points to is replaced and the link stays. A new file gets mode 0666 minus the umask; a replaced
// file keeps its mode. `what` names the file in errors ("head file").
void write_file_atomic(const std::string& path, const std::string& what, const void* data,
                       size_t size);
// Same for several pieces written one after another into the one file.
struct Piece {
  const void* data;
  size_t size;
};
void write_file_atomic(const std::string& path, const std::string& what,
                       const std::vector<Piece>& pieces);

// A new file (created, or truncated; mode 0666 minus the umask) written front to back through a
// buffer, without the temporary file and flush of write_file_atomic: for files inside a folder that
// is itself moved into place whole. `what` names the file in errors ("index file").
class FileWriter {
 public:
  FileWriter(const std::string& path, const std::string& what);
  void write(const void* data, size_t size);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void close();  // writes out the buffer and closes the file; throws when either fails

 private:
  std::string path_, what_, buffer_;
  Fd fd_;
};

}  // namespace zsclip::io
