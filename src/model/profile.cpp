#include "zsclip/profile.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <sstream>

#include "model/model_impl.h"
#include "zsclip/io.h"

namespace zsclip {

struct ProfileScope::Impl {
  std::ostringstream trace;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> guard;
};

ProfileScope::ProfileScope() : impl_(std::make_unique<Impl>()) {
  translate_torch(ErrorCode::kInternal, "profile", [&] {
    impl_->guard = std::make_unique<torch::autograd::profiler::RecordProfile>(impl_->trace);
    return 0;
  });
}

ProfileScope::~ProfileScope() = default;

void ProfileScope::write(const std::string& path) {
  // Ending the recording writes the trace into the string stream.
  translate_torch(ErrorCode::kInternal, "profile", [&] {
    impl_->guard.reset();
    return 0;
  });
  const std::string text = impl_->trace.str();
  io::write_file_atomic(path, "profile trace", text.data(), text.size());
}

}  // namespace zsclip
