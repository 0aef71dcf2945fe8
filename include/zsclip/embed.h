// zsclip/embed.h — the one way from images to embeddings: decode and preprocess on the runtime's
// workers, batch, encode, and hand the results back in input order with an error per bad image.
// zsclip::core: no LibTorch here. The classifier pipeline (pipeline.h) is this engine plus a
// zero-shot head; index build, index search and the server embed through it too.
//
//   zsclip::EmbeddingEngine engine(encoder);            // any zsclip::ImageEncoder (encoder.h)
//   std::vector<float> e = engine.embed_file("cat.jpg");    // unit length
//   engine.run_files(paths, [&](zsclip::EmbeddedBatch& b) {
//     // b.status[i]: item b.begin + i; b.features row j: item b.encoded[j] (not normalised)
//   });
//
// Batch calls preprocess batch k+1.. on the runtime's workers while the encoder runs on batch k,
// hold at most queue_batches + 1 batches of pixels (bounded memory, whatever the number of
// images), and start no thread: the runtime's workers and the caller do all the work.
// Thread safety: immutable; const methods are safe from several threads at once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zsclip/encoder.h"
#include "zsclip/image.h"
#include "zsclip/preprocess.h"
#include "zsclip/runtime.h"

namespace zsclip {

// Options of the engine; a value out of range is an Error (kInvalidArgument), never clamped.
//   batch_size          (16)   images per encoder call (>= 1)
//   preprocess_threads  (0)    parallel parts a batch is preprocessed in; 0 = the runtime's threads
//   queue_batches       (2)    preprocessed batches that may wait for the encoder (>= 1)
//   runtime             (null) the threads of batch calls; null: the encoder's runtime (a Model's),
//                              else Runtime::default_runtime()
struct EmbedOptions {
  int batch_size = 16;
  int preprocess_threads = 0;
  int queue_batches = 2;
  std::shared_ptr<Runtime> runtime;
};

// One batch of a run: items [begin, begin + status.size()), passed on in input order.
struct EmbeddedBatch {
  size_t begin = 0;
  std::vector<Preprocessor::ItemStatus> status;  // per item; ok == false: not encoded
  std::vector<size_t> encoded;                   // the items encoded (absolute, ascending)
  FloatTensor features;  // [encoded.size(), embed_dim()]: projected, not normalised
};

class EmbeddingEngine {
 public:
  // Throws zsclip::Error(kInvalidArgument) for a null encoder, an option out of range, or a text
  // encoder (may be null: it serves embed_text(s) and text_image_similarity) of another embed_dim.
  explicit EmbeddingEngine(std::shared_ptr<const ImageEncoder> encoder, EmbedOptions options = {},
                           std::shared_ptr<const TextEncoder> text_encoder = nullptr);

  // item(i, out) preprocesses item i into out (item_floats() floats) or throws; name(i) names it
  // in an error that is not a zsclip::Error.
  using ItemFn = std::function<void(size_t, float*)>;
  using NameFn = std::function<std::string(size_t)>;
  using BatchFn = std::function<void(EmbeddedBatch&)>;
  // Embeds items [0, count) in batches of batch_size: on_batch gets each batch on the calling
  // thread, in order, with every item's status (a bad image never loses the others). An exception
  // from on_batch or the encoder ends the call once the workers are done with its batches.
  void run(size_t count, const ItemFn& item, const NameFn& name, const BatchFn& on_batch) const;
  void run_files(const std::vector<std::string>& paths, const BatchFn& on_batch) const;

  // One image, on the caller's thread; throw zsclip::Error on a bad image.
  std::vector<float> encode(const float* pixels) const;  // projected features, not normalised
  std::vector<float> encode_file(const std::string& path) const;
  // Image embeddings: the features scaled to unit length (D floats, or [N, D]). Batch calls throw
  // the first bad image's error.
  std::vector<float> embed_file(const std::string& path) const;
  std::vector<float> embed_buffer(const void* data, size_t size,
                                  const std::string& name = "<buffer>") const;
  std::vector<float> embed(const ImageView& image) const;
  FloatTensor embed(const std::vector<ImageView>& images) const;  // names: "<image i>"
  FloatTensor embed_files(const std::vector<std::string>& paths) const;
  // Text embeddings (unit length). Throw Error(kInvalidArgument) without a text encoder.
  std::vector<float> embed_text(const std::string& text) const;
  FloatTensor embed_texts(const std::vector<std::string>& texts) const;

  // Cosine similarity of two images' embeddings, and of a text's and an image's, in [-1, 1]
  // (CLIP's logits are logit_scale_exp times the latter).
  float image_similarity(const ImageView& a, const ImageView& b) const;
  float image_similarity(const std::string& path_a, const std::string& path_b) const;
  float text_image_similarity(const std::string& text, const ImageView& image) const;
  float text_image_similarity(const std::string& text, const std::string& image_path) const;

  const ImageEncoder& encoder() const { return *encoder_; }
  const TextEncoder* text_encoder() const { return text_encoder_.get(); }  // null when none
  const Preprocessor& preprocessor() const { return preprocessor_; }
  const std::shared_ptr<Runtime>& runtime() const { return runtime_; }

 private:
  FloatTensor embed_items(size_t count, const ItemFn& item, const NameFn& name) const;

  std::shared_ptr<const ImageEncoder> encoder_;
  std::shared_ptr<const TextEncoder> text_encoder_;
  EmbedOptions batching_;
  std::shared_ptr<Runtime> runtime_;
  Preprocessor preprocessor_;
};

}  // namespace zsclip
