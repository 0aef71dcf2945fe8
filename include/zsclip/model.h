// zsclip/model.h — a CLIP model exported by models/export_clip.py: two TorchScript encoders feeding
// one shared projection layer.
//
//   zsclip::Model model = zsclip::Model::load("models/shapes");  // throws zsclip::Error
//   zsclip::FloatTensor img = model.encode_images(pixels);       // [N, 3, n, n] -> [N, embed_dim]
//   zsclip::FloatTensor txt = model.encode_texts(ids);  // [N, context_length] -> [N, embed_dim]
//   float scale = model.logit_scale_exp();              // logits = scale * cosine
//
// Loading checks that every file named by config.json exists, that each TorchScript archive loads,
// and that the modules' shapes agree with the config; any mismatch is a zsclip::Error
// (kInvalidModel) naming the file and the field. Features are projected and not normalised, as
// OpenAI's encode_image/encode_text return them. A Model is the zsclip::ImageEncoder and
// zsclip::TextEncoder (encoder.h) that the zero-shot head and the classifier pipeline take.
//
// Threads: an encoder call on CPU is split into `streams` parts that run on the model's
// zsclip::Runtime (runtime.h: its worker pool, shared by everything using that runtime; none given:
// the default runtime). A call with fewer images or texts than streams (one image) takes all of the
// runtime's threads and spreads over them (ModelOptions::spread_single). The first
// Model::load applies its runtime's process-wide LibTorch settings (runtime.h says which and how).
//
// Thread safety: a loaded Model is immutable; its const methods may be called from several threads
// at once. Copies are cheap and share the weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "zsclip/config.h"
#include "zsclip/encoder.h"
#include "zsclip/runtime.h"
#include "zsclip/tensor.h"
#include "zsclip/tokenizer.h"

namespace zsclip {

namespace detail {
struct ModelImpl;  // private: the loaded modules (src/model/model_impl.h)
}

// Options of Model::load.
//   device            ("cpu")  "cpu", "cuda" or "cuda:N"; CUDA without a CUDA build is an error
//   dtype             ("auto") "auto": float16 on CUDA when the weights are float16, else float32;
//                              "float32" or "float16" (float16 needs CUDA); "bfloat16" (CPU, a
//                              float32 export): the linear layers multiply in bf16 (weights
//                              rounded once at load, activations per call, float32 sums and
//                              outputs; the rest stays float32) on CPUs with AVX512_BF16; elsewhere
//                              it runs float32 and precision_note() says why. "int8" (CPU, a
//                              float32 export): the image tower's linear layers multiply in int8
//                              (weights per output channel at load, each token's activations per
//                              call; int32 sums; the patch embedding and the rest stay float32;
//                              the text tower too unless int8_text) on every x86-64 CPU with
//                              AVX2, the kernel picked at load by the CPU (Model::int8_kernel()):
//                              "vnni-s8s8" with AVX512_VNNI, "avx2-u8s7x2" elsewhere (the same
//                              int32 sums, bit for bit, made so that AVX2's saturating int16 pair
//                              sums cannot clip: u8 activations x each weight in two 7-bit halves);
//                              below AVX2 float32 with a note. The one way to ask for int8: the
//                              export-time int8 of older exports (export_clip.py --quantize int8)
//                              still loads, slower, with a note saying how to re-export. Agreement
//                              with float32: benchmarks/README.md ("Precisions")
//   int8_text         (false)  with dtype "int8": the text tower's linear layers in int8 too
//                              (faster head building; class rankings move more, see there)
//   runtime           (null)   the threads encoder calls run on, and the process-wide LibTorch
//                              settings (runtime.h); null = Runtime::default_runtime()
//   streams           (0)      CPU: an encoder call on N > 1 images or texts is split into up to
//                              this many near-equal parts run at once on the runtime's threads,
//                              each with single-threaded LibTorch and BLAS (no thread hand-offs
//                              inside the model; measured fastest, benchmarks/README.md); 0 = the
//                              runtime's threads; 1 = one part (give the runtime intra-op or BLAS
//                              threads to spread it). Results do not depend on it. Below 0: an
//                              Error.
//   load_text_encoder (true)   false loads the image tower only (a saved ZeroShotHead supplies the
//                              class weights), skipping the text encoder's memory and load time
//   spread_single     (true)   CPU: a call with fewer images or texts than streams (one image),
//                              made while the runtime is idle, holds all of its threads and
//                              spreads over them (one OpenMP team); when other work is running or
//                              queued on the runtime (a pipeline's decoding), or with false, it
//                              runs on the calling thread alone. On a machine busy with other
//                              processes the team waits on descheduled threads: false is faster
//   spread_min_mflop  (100)    ...and only when the call's linear layers are at least this much
//                              work (estimated from config.json; ViT-B/32: 8500 per image, 680
//                              per 9-token text): a team costs more than it gives on tiny calls
//                              (the shipped shapes model: 44 per image). 0: always
//   linear_kernels    ("auto") CPU, frozen float32 graphs: "auto"/"onednn" computes the linear
//                              layers with oneDNN's matmul on weights packed at load, SiLU/GELU
//                              fused, and attention's batched products with oneDNN, all in the
//                              calling thread's OpenMP team (src/model/linear_ops.cpp; "onednn" is
//                              an error where zsclip was built without it); "aten": LibTorch's own
//                              (OpenBLAS), as before
//   optimize          (true)   freeze the TorchScript graphs and fold what inference allows
//   optimize_for_inference (false) experimental: torch::jit::optimize_for_inference instead of
//                              freeze (oneDNN rewrites); see benchmarks/README.md before enabling
//   warmup            (true)   run each encoder once at load, which also checks its output shape
//   verify_files      (true)   check each file's size and XXH3 hash against config.json's
//                              "file_checks" (when the exporter recorded them; the text encoder's
//                              and tokenizer's only when the text encoder is loaded) before
//                              loading: an edited or swapped file is refused (kInvalidModel) naming
//                              the file. false (`--no-verify`) for people who edit exports on
//                              purpose. A config.json without file_checks (or without an entry
//                              for a file that is loaded) or without a fingerprint loads with one
//                              warning on standard error per process and folder. The files are
//                              TorchScript, i.e. code that loading runs: file_checks catch
//                              accidents, not attackers (README.md, "Security")
struct ModelOptions {
  std::string device = "cpu";
  std::string dtype = "auto";
  std::shared_ptr<Runtime> runtime;
  int streams = 0;
  bool spread_single = true;
  double spread_min_mflop = 100;
  std::string linear_kernels = "auto";
  bool int8_text = false;
  bool load_text_encoder = true;
  bool optimize = true;
  bool optimize_for_inference = false;
  bool warmup = true;
  bool verify_files = true;
};

class Model : public ImageEncoder, public TextEncoder {
 public:
  static Model load(const std::string& model_dir, const ModelOptions& options = {});

  const ModelConfig& config() const;
  const ModelOptions& options() const;
  const std::shared_ptr<Runtime>& runtime() const override;  // never null
  std::string device() const;                                // "cpu", "cuda:0", ...
  // "float32" | "float16" | "bfloat16" | "int8": the precision the encoders run in (bfloat16 and
  // int8: the linear layers' products, see ModelOptions::dtype).
  std::string dtype() const;
  // Why the requested dtype is not the one in effect (bfloat16 on a CPU without AVX512_BF16), or
  // how to re-export an old export-time int8 model, or "".
  const std::string& precision_note() const;
  // "onednn" when the linear layers run on zsclip's oneDNN kernels, else "aten".
  std::string linear_kernels() const;
  // The oneDNN primitive of those layers, picked at load by the CPU's level: "matmul",
  // "inner_product" or "conv1x1", followed by " (N layers on matmul)" when oneDNN would have run N of
  // them on its reference loops, and on AVX2 by ", rows <= R: avx2-rows" (calls of at most R rows
  // run zsclip's own AVX2 kernel on the convolution's packed weights); int8 layers: "matmul"
  // ("matmul (int8), P (text)" with the text tower float32); "none" with linear_kernels() "aten".
  std::string linear_primitive() const;
  // The int8 products in effect: "vnni-s8s8" (AVX512_VNNI), "avx2-u8s7x2" (AVX2; see
  // ModelOptions::dtype), "libtorch-dynamic" (an old export-time int8 model), or "none".
  std::string int8_kernel() const;
  // The CPU instruction level zsclip's kernels were chosen for at load: "avx512_core_bf16",
  // "avx512_core_vnni", "avx512_core", "avx2" or "baseline" (the CPU's own, lowered by
  // $ONEDNN_MAX_CPU_ISA or $ZSCLIP_MAX_CPU_ISA).
  const std::string& cpu_isa() const;
  bool has_text_encoder() const;
  int64_t embed_dim() const override;
  int64_t context_length() const override;
  const PreprocessConfig& preprocess_config() const override;
  const std::string& fingerprint() const override;  // config.json "fingerprint"
  std::string describe() const override;            // the model directory
  std::string name() const override;                // config.json "name"

  // log of the learned temperature (OpenAI's model.logit_scale), and its exp (the multiplier).
  float logit_scale() const;
  float logit_scale_exp() const override;
  // How zero-shot scores are made (config.json "scoring"): softmax over classes, or for models with
  // a learned logit_bias (SigLIP-style) sigmoid(logit_scale_exp * cosine + logit_bias) per class.
  Scoring scoring() const override;
  float logit_bias() const override;  // 0 for softmax models

  // Inherited: encode_images(pixels) ([N, 3, n, n] floats as Preprocessor gives, or one image
  // [3, n, n], or a raw buffer) -> [N, embed_dim] projected image features; encode_texts(ids)
  // ([N, L] ids as Tokenizer::tokenize gives; ids outside the vocabulary are refused) -> [N,
  // embed_dim] projected text features. embed_texts(texts): tokenised, encoded, normalised.
  // Shapes must match the data; a NaN or infinite pixel is an Error (kInvalidArgument).

  // The tokenizer of config.json (its vocabulary checked against the text encoder's vocab size):
  // loaded on first use and kept (copies of this Model share it; a failed load is tried again on
  // the next call); its tokenize() defaults to this model's context length. The one way to get a
  // model's tokenizer; Tokenizer::from_config(config()) reads a separate one from the files.
  const Tokenizer& tokenizer() const override;

 protected:
  void do_encode_images(const float* pixels, int64_t n_images, float* out) const override;
  FloatTensor do_encode_texts(const IdTensor& ids) const override;

 private:
  explicit Model(std::shared_ptr<const detail::ModelImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::ModelImpl> impl_;
};

// True when this build of zsclip (and its LibTorch) can run on CUDA and a device is present.
bool cuda_available();

}  // namespace zsclip
