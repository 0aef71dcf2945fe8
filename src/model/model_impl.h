// Private: the loaded state of a Model, shared by the model sources.
#pragma once

#include <torch/script.h>

#include <mutex>
#include <optional>

#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/runtime.h"

namespace zsclip::detail {

struct ModelImpl {
  ModelConfig config;
  ModelOptions options;
  std::shared_ptr<Runtime> runtime;  // never null
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat;
  // TorchScript's forward is not const-qualified but is safe to call concurrently.
  mutable torch::jit::Module image_encoder;
  mutable torch::jit::Module text_encoder;
  bool has_text_encoder = false;
  torch::Tensor image_projection;       // [vision_width, D] on device, in dtype
  torch::Tensor text_projection;        // [text_width, D]
  torch::Tensor image_projection_bias;  // [D] or undefined (no bias)
  torch::Tensor text_projection_bias;   // [D] or undefined (open_clip proj_bias)
  float logit_scale = 0.f;              // log value
  float logit_bias = 0.f;               // Scoring::kSigmoid only
  int streams = 1;                      // parallel parts an encoder call is split into (CPU)
  mutable std::mutex tokenizer_mu;
  mutable std::optional<Tokenizer> tokenizer;  // Model::tokenizer(), loaded on first use

  torch::Tensor encode_images(const torch::Tensor& pixels) const;  // -> float CPU [N, D]
  torch::Tensor encode_texts(const torch::Tensor& ids) const;      // -> float CPU [N, D]
  // One part of a call (the whole call when streams == 1).
  torch::Tensor encode_images_part(const torch::Tensor& pixels) const;
  torch::Tensor encode_texts_part(const torch::Tensor& ids) const;
};

// Applies the runtime's process-wide LibTorch/OpenBLAS settings the first time a model is loaded in
// this process; later, throws Error(kInvalidArgument) if `runtime` asks for different values
// (src/runtime/torch_settings.cpp).
void apply_torch_settings(const Runtime& runtime);

}  // namespace zsclip::detail

namespace zsclip {

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
