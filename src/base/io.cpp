#include "zsclip/io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace zsclip::io {
namespace {

namespace fs = std::filesystem;

std::string quoted(const std::string& what, const std::string& path) {
  return what + " '" + path + "'";
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

[[noreturn]] void not_regular(mode_t mode, const std::string& what, const std::string& path,
                              const char* consequence) {
  throw Error(ErrorCode::kInvalidArgument, quoted(what, path) + ": is " + kind_of(mode) +
                                               ", not a regular file; " + consequence);
}

std::string describe_bytes(uint64_t n) {
  char buf[64];
  if (n >= (uint64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(n) / double(uint64_t{1} << 30));
  else if (n >= (uint64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / double(uint64_t{1} << 20));
  else
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(n));
  return buf;
}

// `size`: "3000000000 bytes", or what a stream gave before reading stopped.
[[noreturn]] void too_large(const ReadLimit& limit, const std::string& subject,
                            const std::string& size) {
  throw Error(limit.too_large, subject + ": " + size + ", larger than the limit of " +
                                   std::to_string(limit.max_bytes) + " bytes (" +
                                   describe_bytes(limit.max_bytes) + ")");
}

// Appends what `fd` gives until its end, failing once more than limit.max_bytes have arrived.
template <typename Buffer>
void read_bounded(int fd, const std::string& subject, const ReadLimit& limit, Buffer* out) {
  char buf[1 << 16];
  for (;;) {
    // Never ask for more than one byte past the limit.
    const uint64_t room =
        limit.max_bytes + 1 - std::min<uint64_t>(out->size(), limit.max_bytes + 1);
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(sizeof buf, std::max<uint64_t>(room, 1)));
    const ssize_t got = ::read(fd, buf, want);
    if (got < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw Error(error_code_from_errno(err), subject + ": read failed: " + std::strerror(err));
    }
    if (got == 0) return;
    out->insert(out->end(), buf, buf + got);
    if (out->size() > limit.max_bytes)
      too_large(limit, subject, "more than " + std::to_string(limit.max_bytes) + " bytes");
  }
}

template <typename Buffer>
void read_regular(const std::string& path, const std::string& what, const ReadLimit& limit,
                  Buffer* out) {
  uint64_t size = 0;
  Fd fd = open_regular_file(path, what, limit, &size);
  out->clear();
  out->reserve(static_cast<size_t>(size));
  read_bounded(fd.get(), quoted(what, path), limit, out);
}

// The process's umask, read without changing it (umask(2) would, for every thread).
mode_t current_umask() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "Umask:") {
      unsigned value = 022;
      in >> std::oct >> value;
      return static_cast<mode_t>(value & 0777);
    }
    in.ignore(4096, '\n');
  }
  return 022;
}

// The file a chain of symbolic links ends at (the path itself when it is no link).
std::string resolve_links(const std::string& path, const std::string& what) {
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p.string();
    std::error_code ec;
    const fs::path dest = fs::read_symlink(p, ec);
    if (ec)
      throw Error(ErrorCode::kIo,
                  quoted(what, path) + ": cannot read the symbolic link: " + ec.message());
    p = dest.is_absolute() ? dest : p.parent_path() / dest;
  }
  throw Error(ErrorCode::kInvalidArgument,
              quoted(what, path) + ": too many levels of symbolic links");
}

void write_all(int fd, const void* data, size_t size, const std::string& subject) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw Error(error_code_from_errno(err), subject + ": write failed: " + std::strerror(err));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void throw_errno(int err, const std::string& what, const std::string& path,
                 const std::string& action) {
  throw Error(error_code_from_errno(err),
              quoted(what, path) + ": " + action + ": " + std::strerror(err));
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd open_regular_file(const std::string& path, const std::string& what, const ReadLimit& limit,
                     uint64_t* size) {
  if (path.empty()) throw Error(ErrorCode::kInvalidArgument, what + ": empty path");
  const char* refuse = "refusing to read it (only regular files are read)";
  // stat first: opening some devices has effects of its own.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw_errno(errno, what, path, "cannot open");
  if (!S_ISREG(st.st_mode)) not_regular(st.st_mode, what, path, refuse);
  // O_NONBLOCK: should the path have become a FIFO since, opening it must not wait for a writer.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) throw_errno(errno, what, path, "cannot open");
  if (::fstat(fd.get(), &st) != 0) throw_errno(errno, what, path, "cannot stat");
  if (!S_ISREG(st.st_mode)) not_regular(st.st_mode, what, path, refuse);
  const uint64_t n = static_cast<uint64_t>(st.st_size);
  if (n > limit.max_bytes) too_large(limit, quoted(what, path), std::to_string(n) + " bytes");
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  if (size) *size = n;
  return fd;
}

std::string read_file(const std::string& path, const std::string& what, const ReadLimit& limit) {
  std::string out;
  read_regular(path, what, limit, &out);
  return out;
}

void read_file(const std::string& path, const std::string& what, const ReadLimit& limit,
               std::vector<uint8_t>* bytes) {
  read_regular(path, what, limit, bytes);
}

std::string read_stream(int fd, const std::string& name, const ReadLimit& limit) {
  std::string out;
  read_bounded(fd, name, limit, &out);
  return out;
}

void write_file_atomic(const std::string& path, const std::string& what, const void* data,
                       size_t size) {
  write_file_atomic(path, what, std::vector<Piece>{{data, size}});
}

void write_file_atomic(const std::string& path, const std::string& what,
                       const std::vector<Piece>& pieces) {
  if (path.empty()) throw Error(ErrorCode::kInvalidArgument, what + ": empty path");
  const std::string target = resolve_links(path, what);
  struct stat st;
  bool exists = false;
  if (::stat(target.c_str(), &st) == 0) {
    exists = true;
    if (!S_ISREG(st.st_mode))
      not_regular(st.st_mode, what, path,
                  "refusing to replace it (only regular files are written)");
  } else if (errno != ENOENT) {
    throw_errno(errno, what, path, "cannot stat");
  }
  const fs::path t(target);
  const std::string dir = t.has_parent_path() ? t.parent_path().string() : std::string(".");
  std::string tmp = (fs::path(dir) / ("." + t.filename().string() + ".XXXXXX.tmp")).string();
  Fd fd(::mkostemps(tmp.data(), 4, O_CLOEXEC));
  if (fd.get() < 0)
    throw_errno(errno, what, path, "cannot create a temporary file in '" + dir + "'");
  try {
    const mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~current_umask());
    if (::fchmod(fd.get(), mode) != 0)
      throw_errno(errno, what, path, "cannot set the mode of " + tmp);
    const std::string subject = quoted(what, path);
    for (const Piece& p : pieces) write_all(fd.get(), p.data, p.size, subject);
    if (::fsync(fd.get()) != 0) throw_errno(errno, what, path, "flushing to disk failed");
    if (::close(fd.release()) != 0) throw_errno(errno, what, path, "closing failed");
    if (::rename(tmp.c_str(), target.c_str()) != 0)
      throw_errno(errno, what, path, "cannot rename the temporary file onto it");
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable; a failure here loses nothing already written.
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() >= 0) ::fsync(d.get());
}

FileWriter::FileWriter(const std::string& path, const std::string& what)
    : path_(path),
      what_(what),
      fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666)) {
  if (fd_.get() < 0) throw_errno(errno, what, path, "cannot create");
}

void FileWriter::write(const void* data, size_t size) {
  constexpr size_t kBuffer = size_t{1} << 20;
  if (buffer_.size() + size > kBuffer) {
    write_all(fd_.get(), buffer_.data(), buffer_.size(), quoted(what_, path_));
    buffer_.clear();
  }
  if (size >= kBuffer)
    write_all(fd_.get(), data, size, quoted(what_, path_));
  else
    buffer_.append(static_cast<const char*>(data), size);
}

void FileWriter::close() {
  write_all(fd_.get(), buffer_.data(), buffer_.size(), quoted(what_, path_));
  buffer_.clear();
  if (::close(fd_.release()) != 0) throw_errno(errno, what_, path_, "closing failed");
}

}  // namespace zsclip::io
