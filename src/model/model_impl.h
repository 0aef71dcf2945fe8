// Private: the loaded state of a Model, shared by the model sources.
#pragma once

#include <torch/script.h>

#include <mutex>
#include <optional>

#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/runtime.h"

namespace zsclip::detail {

// The products of zsclip::linear: float32, bf16 x bf16 -> float32, or dynamic int8 (int8 x int8 ->
// int32, rescaled to float32).
enum class LinearPrecision { kFloat32, kBFloat16, kInt8 };

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
  LinearPrecision linear_precision = LinearPrecision::kFloat32;  // of zsclip::linear (CPU)
  int routed_linears = 0;      // linear layers moved to zsclip::linear (both towers)
  std::string precision_note;  // why a requested precision is not in effect, or ""
  mutable std::mutex tokenizer_mu;
  mutable std::optional<Tokenizer> tokenizer;  // Model::tokenizer(), loaded on first use

  torch::Tensor encode_images(const torch::Tensor& pixels) const;  // -> float CPU [N, D]
  torch::Tensor encode_texts(const torch::Tensor& ids) const;      // -> float CPU [N, D]
  // One part of a call (the whole call when streams == 1).
  torch::Tensor encode_images_part(const torch::Tensor& pixels) const;
  torch::Tensor encode_texts_part(const torch::Tensor& ids) const;
};

// Replaces the frozen graph's float32 linear layers (aten::linear, and aten::matmul by a constant
// matrix) with zsclip::linear (src/model/linear_ops.cpp), weights in bfloat16 when `bf16`. Returns
// the number replaced; 0 when zsclip was built without oneDNN's headers. kInt8 makes aten::linear
// nodes zsclip::linear_int8 (weights quantised here) and leaves a constant matmul float32.
int route_linear_layers(torch::jit::Module& module, LinearPrecision precision);
bool onednn_linear_built();
bool cpu_has_avx512_bf16();  // false also when $ZSCLIP_CPU_NO_BF16 is set (tests)
bool cpu_has_vnni();         // AVX512_VNNI or AVX_VNNI; false when $ZSCLIP_CPU_NO_VNNI is set

// Sets the calling thread's OpenMP team (LibTorch's intra-op kernels and zsclip::linear) to
// `threads` for its lifetime; restores the previous count after.
class ScopedIntraOpThreads {
 public:
  explicit ScopedIntraOpThreads(int threads);
  ~ScopedIntraOpThreads();
  ScopedIntraOpThreads(const ScopedIntraOpThreads&) = delete;
  ScopedIntraOpThreads& operator=(const ScopedIntraOpThreads&) = delete;

 private:
  int previous_ = 1;
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
