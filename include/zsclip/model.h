// zsclip/model.h — a CLIP model exported by models/export_clip.py: two TorchScript encoders feeding
// one shared projection layer.
//
//   zsclip::Model model = zsclip::Model::load("models/shapes");          // throws zsclip::Error
//   zsclip::FloatTensor img = model.encode_images(pixels);    // [N,3,n,n] -> [N, embed_dim]
//   zsclip::FloatTensor txt = model.encode_texts(ids);        // [N, context_length] -> [N, embed_dim]
//   float scale = model.logit_scale_exp();                    // logits = scale * cosine
//
// Loading checks that every file named by config.json exists, that each TorchScript archive loads,
// and that the modules' shapes agree with the config; any mismatch is a zsclip::Error (kInvalidModel)
// naming the file and the field. Features are projected and not normalised, as OpenAI's
// encode_image/encode_text return them.
//
// Thread safety: a loaded Model is immutable; its const methods may be called from several threads
// at once. Copies are cheap and share the weights.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "zsclip/config.h"
#include "zsclip/tensor.h"
#include "zsclip/tokenizer.h"

namespace zsclip {

// Options of Model::load.
//   device            ("cpu")  "cpu", "cuda" or "cuda:N"; CUDA without a CUDA build is an error
//   dtype             ("auto") "auto": float16 on CUDA when the weights are float16, else float32;
//                              "float32" or "float16" (float16 needs CUDA)
//   (threads, streams, intra_op_threads and blas_threads below 0 are an Error, not a clamp)
//   threads           (0)      cores this process's inference may use; 0 = the cores it may use
//   streams           (0)      CPU: an encoder call on N > 1 images or texts is split into this many
//                              near-equal parts run at once, each on one core with single-threaded
//                              LibTorch and BLAS (no thread hand-offs inside the model; measured
//                              fastest, benchmarks/README.md); 0 = `threads`; 1 = one call that
//                              uses intra-op/BLAS threads instead. Results do not depend on it.
//   intra_op_threads  (0)      LibTorch intra-op threads; 0 = 1 with streams > 1, or when LibTorch's
//                              BLAS is a threaded OpenBLAS (which then runs the GEMMs on `threads`
//                              cores), else `threads`
//   blas_threads      (0)      OpenBLAS's own threads; 0 = 1 with streams > 1, else `threads`, or 1
//                              for small models (widths < 512, whose GEMMs are too small to share),
//                              or $OPENBLAS_NUM_THREADS when set. Threads are process-wide: the last
//                              Model::load sets them.
//   quantized_engine  ("auto") int8 models only: "fbgemm", "onednn" or "qnnpack"; auto picks the
//                              first of these this LibTorch has (the engine is process-wide)
//   load_text_encoder (true)   false loads the image tower only (a saved ZeroShotHead supplies the
//                              class weights), skipping the text encoder's memory and load time
//   optimize          (true)   freeze the TorchScript graphs and fold what inference allows
//   optimize_for_inference (false) experimental: torch::jit::optimize_for_inference instead of
//                              freeze (oneDNN rewrites); see benchmarks/README.md before enabling
//   warmup            (true)   run each encoder once at load, which also checks its output shape
//   verify_files      (true)   check each file's size and XXH3 hash against config.json's
//                              "file_checks" (when the exporter recorded them; the text encoder's
//                              and tokenizer's only when the text encoder is loaded) before loading: an
//                              edited or swapped file is refused (kInvalidModel) naming the file.
//                              false (`--no-verify`) for people who edit exports on purpose
struct ModelOptions {
  std::string device = "cpu";
  std::string dtype = "auto";
  int threads = 0;
  int streams = 0;
  int intra_op_threads = 0;
  int blas_threads = 0;
  std::string quantized_engine = "auto";
  bool load_text_encoder = true;
  bool optimize = true;
  bool optimize_for_inference = false;
  bool warmup = true;
  bool verify_files = true;
};

class Model {
 public:
  static Model load(const std::string& model_dir, const ModelOptions& options = {});

  const ModelConfig& config() const;
  const ModelOptions& options() const;
  std::string device() const;  // "cpu", "cuda:0", ...
  std::string dtype() const;   // "float32" | "float16": the dtype the encoders run in
  bool has_text_encoder() const;
  int64_t embed_dim() const;
  int image_size() const;
  int64_t context_length() const;

  // log of the learned temperature (OpenAI's model.logit_scale), and its exp (the multiplier).
  float logit_scale() const;
  float logit_scale_exp() const;
  // How zero-shot scores are made (config.json "scoring"): softmax over classes, or for models with a
  // learned logit_bias (SigLIP-style) sigmoid(logit_scale_exp * cosine + logit_bias) per class.
  Scoring scoring() const;
  float logit_bias() const;  // 0 for softmax models

  // [N, 3, n, n] float pixels (as Preprocessor gives) -> [N, embed_dim] projected image features.
  // The shape must match the data; a NaN or infinite pixel is an Error (kInvalidArgument).
  FloatTensor encode_images(const FloatTensor& pixels) const;
  // Same on a raw buffer of n_images * 3 * n * n floats; writes n_images * embed_dim floats.
  void encode_images(const float* pixels, int64_t n_images, float* out) const;
  // [N, L] token ids (as Tokenizer::tokenize gives) -> [N, embed_dim] projected text features.
  FloatTensor encode_texts(const IdTensor& ids) const;

  // The tokenizer of config.json (its vocabulary checked against the text encoder's vocab size);
  // its tokenize() defaults to this model's context length.
  Tokenizer load_tokenizer() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// True when this build of zsclip (and its LibTorch) can run on CUDA and a device is present.
bool cuda_available();

}  // namespace zsclip
