// Private: the loaded state of a Model, shared by the model sources.
#pragma once

#include <torch/script.h>

#include "zsclip/error.h"
#include "zsclip/model.h"

namespace zsclip {

struct Model::Impl {
  ModelConfig config;
  ModelOptions options;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat;
  // TorchScript's forward is not const-qualified but is safe to call concurrently.
  mutable torch::jit::Module image_encoder;
  mutable torch::jit::Module text_encoder;
  bool has_text_encoder = false;
  torch::Tensor image_projection;  // [vision_width, D] on device, in dtype
  torch::Tensor text_projection;   // [text_width, D]
  torch::Tensor image_projection_bias;  // [D] or undefined (no bias)
  torch::Tensor text_projection_bias;   // [D] or undefined (open_clip proj_bias)
  float logit_scale = 0.f;         // log value
  float logit_bias = 0.f;          // Scoring::kSigmoid only
  int streams = 1;                 // parallel parts an encoder call is split into (CPU)

  torch::Tensor encode_images(const torch::Tensor& pixels) const;  // -> float CPU [N, D]
  torch::Tensor encode_texts(const torch::Tensor& ids) const;      // -> float CPU [N, D]
  // One part of a call (the whole call when streams == 1).
  torch::Tensor encode_images_part(const torch::Tensor& pixels) const;
  torch::Tensor encode_texts_part(const torch::Tensor& ids) const;
};

// Runs `fn`, translating LibTorch's exceptions into zsclip::Error(code, context + ": " + what).
template <typename Fn>
auto translate_torch(ErrorCode code, const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    if (what.size() > 600) what = what.substr(0, 600) + "...";
    throw Error(code, context + ": " + what);
  } catch (const std::exception& e) {
    throw Error(code, context + ": " + e.what());
  }
}

}  // namespace zsclip
