// Private: the loaded state of a Model, shared by the model sources.
#pragma once

#include <torch/script.h>

#include <mutex>
#include <optional>
#include <string>

#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/runtime.h"

namespace zsclip::detail {

// The products of zsclip::linear: float32, bf16 x bf16 -> float32, or dynamic int8 (int8 x int8 ->
// int32, rescaled to float32).
enum class LinearPrecision { kFloat32, kBFloat16, kInt8 };

// The int8 products (src/model/linear_ops.cpp): s8 x s8 where the CPU has AVX512_VNNI; on AVX2
// the same sums from u8 activations x the weights split in two 7-bit halves, whose int16 pair sums
// cannot saturate; none below AVX2 or without oneDNN (int8 then runs float32 with a note).
enum class Int8Kernel { kNone, kVnniS8S8, kAvx2Split };

// The oneDNN primitive that runs the float32 and bf16 linear layers (src/model/linear_ops.cpp):
// the same products, blocked and threaded differently by oneDNN's kernels for each ISA.
enum class LinearPrimitive { kMatmul, kInnerProduct, kConv1x1 };

// What this CPU runs, decided in one place: the hardware's level, lowered by oneDNN's effective ISA
// ($ONEDNN_MAX_CPU_ISA), $ZSCLIP_MAX_CPU_ISA (baseline, avx2, avx512_core, avx512_core_vnni,
// avx512_core_bf16, all; also passed to oneDNN when set before its first use; another value is an
// Error) and, for tests, $ZSCLIP_CPU_NO_VNNI / $ZSCLIP_CPU_NO_BF16. The linear layers' primitive
// follows the level; $ZSCLIP_LINEAR_PRIMITIVE (matmul, inner_product, conv1x1) overrides it, for
// comparisons. float32 layers on AVX2's 1x1 convolution run calls of at most rows_kernel_rows rows
// on zsclip's own kernel (src/model/rows_kernel.h); $ZSCLIP_ROWS_KERNEL_MAX sets that count (0:
// never; not a count: an Error). Reads the variables each call.
struct CpuFeatures {
  std::string isa;           // the level in effect: "avx512_core_bf16", ..., "avx2", "baseline"
  std::string hardware_isa;  // the CPU's own level
  std::string limited_by;    // what lowered it, or ""
  bool avx2 = false, avx512_vnni = false, avx512_bf16 = false;
  Int8Kernel int8 = Int8Kernel::kNone;
  LinearPrimitive linear_primitive = LinearPrimitive::kMatmul;
  int64_t rows_kernel_rows = 0;  // 0 unless the level is avx2 (with FMA)
};
CpuFeatures cpu_features();
const char* int8_kernel_name(Int8Kernel k);            // "vnni-s8s8", "avx2-u8s7x2", "none"
const char* linear_primitive_name(LinearPrimitive p);  // "matmul", "inner_product", "conv1x1"

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
  Int8Kernel int8_kernel = Int8Kernel::kNone;                    // with linear_precision kInt8
  std::string cpu_isa;                                           // CpuFeatures::isa at load
  LinearPrimitive linear_primitive = LinearPrimitive::kMatmul;   // CpuFeatures' at load
  int64_t rows_kernel_rows = 0;                                  // CpuFeatures' at load
  int linears_kept_on_matmul = 0;  // of those routed with another primitive (route_linear_layers)
  int routed_linears = 0;          // linear layers moved to zsclip::linear (both towers)
  std::string precision_note;      // Model::precision_note()
  mutable std::mutex tokenizer_mu;
  mutable std::optional<Tokenizer> tokenizer;  // Model::tokenizer(), loaded on first use

  torch::Tensor encode_images(const torch::Tensor& pixels) const;  // -> float CPU [N, D]
  torch::Tensor encode_texts(const torch::Tensor& ids) const;      // -> float CPU [N, D]
  // One part of a call (the whole call when streams == 1).
  torch::Tensor encode_images_part(const torch::Tensor& pixels) const;
  torch::Tensor encode_texts_part(const torch::Tensor& ids) const;
};

// Replaces the frozen graph's float32 linear layers (aten::linear, and aten::matmul by a constant
// matrix) with zsclip::packed_linear (src/model/linear_ops.cpp), weights in bfloat16 for kBFloat16.
// `primitive` runs the float32 and bf16 layers (int8 runs on matmul); `kept_on_matmul`, when given,
// is increased by the float layers left on matmul because `primitive` would run them on oneDNN's
// reference loops.
// Returns the number replaced; 0 when zsclip was built without oneDNN's headers. kInt8 quantises
// the aten::linear nodes' weights for `int8_kernel` (not kNone) and leaves a constant matmul (the
// patch embedding) float32.
int route_linear_layers(torch::jit::Module& module, LinearPrecision precision,
                        Int8Kernel int8_kernel = Int8Kernel::kNone,
                        LinearPrimitive primitive = LinearPrimitive::kMatmul,
                        int* kept_on_matmul = nullptr);
bool onednn_linear_built();
// y = x . w^T + b through one packed layer made as route_linear_layers makes it (tests; needs
// oneDNN).
torch::Tensor run_packed_linear(const torch::Tensor& x, const torch::Tensor& w,
                                const c10::optional<torch::Tensor>& b, LinearPrecision precision,
                                Int8Kernel int8_kernel);
bool cpu_has_avx512_bf16();  // cpu_features().avx512_bf16

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
// (src/model/torch_settings.cpp).
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
