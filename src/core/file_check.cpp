// ModelConfig::verify_files: sizes and XXH3-64 hashes of a model directory's files, as the exporter
// recorded them in config.json. xxhash is used header-only (XXH_INLINE_ALL): no link dependency.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "zsclip/config.h"
#include "zsclip/error.h"

namespace zsclip {
namespace {

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void ModelConfig::verify_files() const {
  const std::string cfg = path_of("config.json");
  const std::string hint = " (changed after export? re-export it, or load with --no-verify / "
                           "ModelOptions::verify_files = false if you edit exports on purpose)";
  for (const auto& [name, want] : file_checks) {
    const std::string path = path_of(name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      throw Error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidModel,
                  path + ": cannot be opened (" + std::strerror(err) + "); " + cfg + " field 'file_checks." +
                      name + "' records it");
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw Error(ErrorCode::kInvalidModel, path + ": not a regular file");
    }
    if (st.st_size != want.bytes) {
      ::close(fd);
      throw Error(ErrorCode::kInvalidModel, path + ": " + std::to_string(st.st_size) + " bytes, but " + cfg +
                                                " records " + std::to_string(want.bytes) + hint);
    }
    uint64_t got = XXH3_64bits(nullptr, 0);
    if (st.st_size > 0) {
      void* data = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (data == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        throw Error(ErrorCode::kIo, path + ": cannot be mapped for its check (" + std::strerror(err) + ")");
      }
      ::madvise(data, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
      got = XXH3_64bits(data, static_cast<size_t>(st.st_size));
      ::munmap(data, static_cast<size_t>(st.st_size));
    }
    ::close(fd);
    if (got != want.xxh3_64)
      throw Error(ErrorCode::kInvalidModel, path + ": content hash xxh3_64 " + hex64(got) + " differs from " +
                                                hex64(want.xxh3_64) + " recorded in " + cfg + hint);
  }
}

}  // namespace zsclip
