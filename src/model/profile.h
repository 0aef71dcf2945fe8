// Private: LibTorch's op profiler around a scope, for `zsclip bench --profile FILE` (no LibTorch
// headers here, so the CLI compiles without them).
#pragma once

#include <memory>
#include <string>

namespace zsclip::detail {

// Records every LibTorch op run on the constructing thread until destruction, then writes them to
// `path` as a Chrome trace (chrome://tracing; tools/profile_summary.py sums it by op).
class ProfileScope {
 public:
  explicit ProfileScope(const std::string& path);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zsclip::detail
