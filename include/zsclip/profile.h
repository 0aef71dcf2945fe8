// LibTorch's op profiler around a scope, for `zsclip bench --profile FILE` (no LibTorch headers
// here, so a caller compiles without them).
#pragma once

#include <memory>
#include <string>

namespace zsclip {

// Records every LibTorch op run on the constructing thread from construction until write(), which
// saves them to `path` as a Chrome trace (chrome://tracing; tools/profile_summary.py sums it by op)
// through io::write_file_atomic: a path that cannot be written is a zsclip::Error naming it.
class ProfileScope {
 public:
  ProfileScope();
  ~ProfileScope();  // without write(): the recording is dropped
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;
  void write(const std::string& path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zsclip
