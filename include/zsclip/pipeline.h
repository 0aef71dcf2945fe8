// zsclip/pipeline.h — preprocessing + an image encoder + a zero-shot head: classify and embed
// images from files, encoded bytes or pixels in memory. zsclip::core: no LibTorch here. The
// LibTorch classifier (classifier.h, zsclip::ZeroShotClassifier) is this pipeline with a
// zsclip::Model.
//
//   zsclip::ZeroShotPipeline p(encoder, head);  // any zsclip::ImageEncoder (encoder.h)
//   zsclip::Classification c = p.classify_file("cat.jpg");
//   zsclip::Classification d = p.classify({rgb, width, height, stride, zsclip::PixelFormat::kRGB});
//   std::vector<zsclip::Classification> many = p.classify_files(paths);  // batched, pipelined
//   std::vector<float> e = p.embed_file("cat.jpg");                      // unit length
//   float s = p.image_similarity("cat.jpg", "dog.jpg");                  // cosine, [-1, 1]
//   float t = p.text_image_similarity("a photo of a cat", "cat.jpg");    // needs a text encoder
//
// Single-image calls run on the caller's thread (preprocessing, then the encoder, which splits a
// batch of one into nothing) and throw zsclip::Error on a bad image. Batch calls (classify_files,
// classify / embed of a vector) never throw for one bad image in a classification: its result has
// ok == false and the error, and every other image is classified. They preprocess batch k+1 on the
// runtime's workers while the encoder runs on batch k, and hold at most queue_batches + 1
// preprocessed batches (bounded memory, whatever the number of images).
// Thread safety: immutable; const methods are safe from several threads at once. Callers share
// the runtime's workers: N threads calling one pipeline start no threads of their own.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zsclip/embed.h"
#include "zsclip/encoder.h"
#include "zsclip/error.h"
#include "zsclip/image.h"
#include "zsclip/preprocess.h"
#include "zsclip/runtime.h"
#include "zsclip/zero_shot.h"

namespace cv {
class Mat;
}

namespace zsclip {

// Options of the classifier pipeline; a value out of range is an Error (kInvalidArgument), never
// clamped.
//   batch_size          (16)   images per encoder call in batch calls (>= 1)
//   preprocess_threads  (0)    parallel parts a batch is preprocessed in; 0 = the runtime's threads
//   top_k               (5)    entries in Classification::top (>= 1; at most the number of classes
//                              are returned)
//   queue_batches       (2)    preprocessed batches that may wait for the encoder (>= 1)
//   truncate_prompts    (false) ZeroShotClassifier::create: cut prompts longer than the model's
//                              context instead of failing (HeadBuildOptions::truncate)
//   runtime             (null) the threads of batch calls; null: the encoder's runtime (a
//                              Model's), else Runtime::default_runtime()
struct ClassifierOptions {
  int batch_size = 16;
  int preprocess_threads = 0;
  int top_k = 5;
  int queue_batches = 2;
  bool truncate_prompts = false;
  std::shared_ptr<Runtime> runtime;
};
// Throws Error(kInvalidArgument) naming the first option out of range.
void check_classifier_options(const ClassifierOptions& options);

struct Classification {
  std::string source;  // the file path, or the name given for a buffer / image
  bool ok = true;
  ErrorCode code = ErrorCode::kInternal;  // meaningful when !ok
  std::string error;                      // empty when ok
  std::vector<ScoredLabel> top;           // best first
  std::vector<float> probs;               // every class, in label order
};

// The embedding engine (embed.h) plus a zero-shot head: every embed_* and similarity call, the
// encoders, the preprocessor and the runtime are the engine's.
class ZeroShotPipeline : public EmbeddingEngine {
 public:
  // Throws zsclip::Error: kInvalidArgument for a null encoder or batch_size < 1, kInvalidModel
  // when the head was not built for the encoder's model (ZeroShotHead::check_compatible).
  // `text_encoder` (may be null) serves embed_text and text_image_similarity.
  ZeroShotPipeline(std::shared_ptr<const ImageEncoder> encoder, ZeroShotHead head,
                   ClassifierOptions options = {},
                   std::shared_ptr<const TextEncoder> text_encoder = nullptr);

  // One image each; throw zsclip::Error on a bad image.
  Classification classify_file(const std::string& path) const;
  Classification classify_buffer(const void* data, size_t size,
                                 const std::string& name = "<buffer>") const;
  Classification classify_mat(const cv::Mat& image, const std::string& name = "<mat>") const;
  Classification classify_image(const Image8& image, const std::string& name = "<image>") const;
  Classification classify(const ImageView& image, const std::string& name = "<image>") const;

  // Batched and pipelined; result i belongs to input i; a bad image gets ok == false.
  std::vector<Classification> classify_files(const std::vector<std::string>& paths) const;
  // The same, streamed: on_ready(first, results, n) gets results[first, first + n) on the calling
  // thread as soon as they and every earlier one are done (about once per batch, in input order),
  // so output can be written while later batches are still decoding and encoding. An exception
  // thrown by on_ready stops the call and is rethrown.
  using ReadyFn = std::function<void(size_t first, const Classification* results, size_t n)>;
  std::vector<Classification> classify_files(const std::vector<std::string>& paths,
                                             const ReadyFn& on_ready) const;
  // As classify_files(paths, on_ready), but each result is released once on_ready has returned
  // and none is returned: memory does not grow with the results (a head of 100,000 classes holds
  // 400 kB of probabilities per image), only with `paths`.
  void classify_files_streamed(const std::vector<std::string>& paths,
                               const ReadyFn& on_ready) const;
  // Names: "<image i>".
  std::vector<Classification> classify(const std::vector<ImageView>& images) const;
  // Pixels already preprocessed: [N, 3, n, n] or one image [3, n, n].
  std::vector<Classification> classify_pixels(const FloatTensor& pixels) const;

  const ZeroShotHead& head() const { return head_; }
  const ClassifierOptions& options() const { return options_; }
  const std::vector<std::string>& labels() const { return head_.labels(); }

 private:
  Classification from_pixels(const float* pixels, const std::string& source) const;
  std::vector<Classification> classify_items(size_t count, const ItemFn& item, const NameFn& name,
                                             const ReadyFn& on_ready = nullptr,
                                             bool keep_results = true) const;

  ZeroShotHead head_;
  ClassifierOptions options_;
};

}  // namespace zsclip
