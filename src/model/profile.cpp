#include "model/profile.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include "model/model_impl.h"

namespace zsclip::detail {

struct ProfileScope::Impl {
  explicit Impl(const std::string& path) : guard(path) {}
  torch::autograd::profiler::RecordProfile guard;
};

ProfileScope::ProfileScope(const std::string& path)
    : impl_(translate_torch(ErrorCode::kIo, "profile " + path,
                            [&] { return std::make_unique<Impl>(path); })) {}
ProfileScope::~ProfileScope() = default;

}  // namespace zsclip::detail
