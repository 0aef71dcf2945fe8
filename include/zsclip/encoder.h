// zsclip/encoder.h — what the zero-shot head, the classifier pipeline and the embedding calls need
// from a model. zsclip::Model (LibTorch, model.h) implements both interfaces; anything else that
// does (another runtime, a fake for tests) plugs into the same code without LibTorch:
//
//   class MyEncoder : public zsclip::ImageEncoder { ... };       // pixels -> features
//   zsclip::ZeroShotPipeline p(std::make_shared<MyEncoder>(), head);   // pipeline.h, zsclip::core
//   p.classify_files(paths);
//
// Features are projected and not normalised (OpenAI's encode_image / encode_text); the helpers
// named embed_* return them L2-normalised.
// Thread safety: implementations must allow their const methods to be called from several threads
// at once: a pipeline shared by many threads calls encode_images from each of them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zsclip/config.h"
#include "zsclip/tensor.h"
#include "zsclip/tokenizer.h"

namespace zsclip {

class Runtime;

class ImageEncoder {
 public:
  virtual ~ImageEncoder() = default;

  // How images must be preprocessed for this encoder (size, mean/std, resize rule).
  virtual const PreprocessConfig& preprocess_config() const = 0;
  virtual int64_t embed_dim() const = 0;
  // Identifies the weights; a saved ZeroShotHead records it and check_compatible compares it.
  virtual const std::string& fingerprint() const = 0;
  // Names the encoder in error messages (Model: its directory).
  virtual std::string describe() const = 0;
  // The model's name (Model: config.json "name"), which an index records; "" by default.
  virtual std::string name() const { return ""; }
  // The threads this encoder computes on (Model: its runtime), which the engine (embed.h) also
  // decodes on when given none; null by default: Runtime::default_runtime().
  virtual const std::shared_ptr<Runtime>& runtime() const;

  int image_size() const { return preprocess_config().image_size; }
  // n_images preprocessed images, [n_images, 3, n, n] floats -> n_images * embed_dim() floats.
  // n_images may be 0. Throws zsclip::Error.
  void encode_images(const float* pixels, int64_t n_images, float* out) const;
  // [N, 3, n, n] -> [N, embed_dim]; one image [3, n, n] -> [1, embed_dim] (no batch dimension
  // to add). Throws zsclip::Error(kInvalidArgument) for another shape.
  FloatTensor encode_images(const FloatTensor& pixels) const;

 protected:
  // What an implementation provides: n_images >= 1 images -> n_images * embed_dim() floats.
  virtual void do_encode_images(const float* pixels, int64_t n_images, float* out) const = 0;
};

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;

  virtual int64_t embed_dim() const = 0;
  virtual const std::string& fingerprint() const = 0;
  virtual int64_t context_length() const = 0;
  // The tokenizer whose ids encode_texts takes.
  virtual const Tokenizer& tokenizer() const = 0;
  // exp of the learned temperature: logits = logit_scale_exp * cosine.
  virtual float logit_scale_exp() const = 0;
  virtual Scoring scoring() const { return Scoring::kSoftmax; }
  virtual float logit_bias() const { return 0.f; }  // Scoring::kSigmoid only

  // [N, context_length()] token ids -> [N, embed_dim()]. Throws zsclip::Error(kInvalidArgument)
  // for another shape.
  FloatTensor encode_texts(const IdTensor& ids) const;
  // Tokenises (truncating to context_length(), as clip.tokenize(truncate=True)) and encodes;
  // rows L2-normalised. [texts.size(), embed_dim()].
  FloatTensor embed_texts(const std::vector<std::string>& texts) const;

 protected:
  // What an implementation provides: ids [N >= 1, context_length()] -> [N, embed_dim()].
  virtual FloatTensor do_encode_texts(const IdTensor& ids) const = 0;
};

}  // namespace zsclip
