// ModelConfig::verify_files: sizes and XXH3-64 hashes of a model directory's files, as the exporter
// recorded them in config.json. xxhash is used header-only (XXH_INLINE_ALL): no link dependency.
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/runtime.h"

namespace zsclip {
namespace {

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Checks one file; returns "" when it matches, else the message (and its code).
std::string check_file(const std::string& path, const FileCheck& want, const std::string& cfg,
                       ErrorCode* code) {
  const std::string hint =
      " (changed after export? re-export it, or load with --no-verify / "
      "ModelOptions::verify_files = false if you edit exports on purpose)";
  *code = ErrorCode::kInvalidModel;
  uint64_t size = 0;
  io::Fd fd;
  try {
    fd = io::open_regular_file(path, "model file", {uint64_t{1} << 40, ErrorCode::kInvalidModel},
                               &size);
  } catch (const Error&) {
    // Missing, unreadable or not a regular file: the loader reports it, naming the config field
    // (files.image_encoder, tokenizer.vocab_file, ...). Only what would be loaded is compared.
    return "";
  }
  if (size != static_cast<uint64_t>(want.bytes))
    return path + ": " + std::to_string(size) + " bytes, but " + cfg + " records " +
           std::to_string(want.bytes) + hint;
  uint64_t got = XXH3_64bits(nullptr, 0);
  if (size > 0) {
    void* data = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (data == MAP_FAILED) {
      const int err = errno;
      *code = error_code_from_errno(err);
      return path + ": cannot be mapped for its check (" + std::strerror(err) + ")";
    }
    ::madvise(data, static_cast<size_t>(size), MADV_SEQUENTIAL);
    got = XXH3_64bits(data, static_cast<size_t>(size));
    ::munmap(data, static_cast<size_t>(size));
  }
  if (got != want.xxh3_64)
    return path + ": content hash xxh3_64 " + hex64(got) + " differs from " + hex64(want.xxh3_64) +
           " recorded in " + cfg + hint;
  return "";
}

}  // namespace

void ModelConfig::verify_files(bool text_files) const {
  // Sizes and hashes are checked before anything parses the files (a tampered archive may be a
  // decompression bomb). The files are hashed at once, one part each, on the default runtime's
  // threads: the two towers are most of the bytes, and one core hashes at about memory speed.
  std::vector<std::pair<std::string, const FileCheck*>> todo;
  for (const auto& [name, want] : file_checks)
    if (text_files || (name != text_encoder_file && name != tokenizer.vocab_file &&
                       name != tokenizer.merges_file))
      todo.emplace_back(name, &want);
  const std::string cfg = path_of("config.json");
  std::vector<std::string> errors(todo.size());
  std::vector<ErrorCode> codes(todo.size(), ErrorCode::kInvalidModel);
  Runtime::default_runtime()->parallel_for(int64_t(todo.size()), [&](int64_t i) {
    errors[size_t(i)] =
        check_file(path_of(todo[size_t(i)].first), *todo[size_t(i)].second, cfg, &codes[size_t(i)]);
  });
  for (size_t i = 0; i < todo.size(); ++i)
    if (!errors[i].empty()) throw Error(codes[i], errors[i]);
}

}  // namespace zsclip
