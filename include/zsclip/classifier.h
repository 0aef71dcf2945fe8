// zsclip/classifier.h — model + tokenizer + preprocessor + zero-shot head in one object.
//
//   auto clf = zsclip::ZeroShotClassifier::create("models/shapes", {"red circle", "blue star"},
//                                                 zsclip::builtin_templates("simple"));
//   zsclip::Classification c = clf.classify_file("examples/images/red_circle.png");
//   std::cout << c.top[0].label << " " << c.top[0].prob << "\n";
//
//   // Many files: decoding and preprocessing run on worker threads while the encoder runs.
//   for (const auto& r : clf.classify_files(paths))
//     if (!r.ok) std::cerr << r.source << ": " << r.error << "\n";   // the others still classified
//
// Single-image calls throw zsclip::Error on a bad image; batch calls never throw for one bad image:
// its result has ok == false and the error, and every other image is classified.
// Thread safety: immutable; const methods are safe from several threads (one classifier may serve
// many threads at once).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/zero_shot.h"

namespace zsclip {

// Options of the classifier; a value out of range is an Error (kInvalidArgument), never clamped.
//   batch_size          (16)    images per encoder call in classify_files (>= 1)
//   preprocess_threads  (0)     decode/preprocess workers; 0 = as many as the cores (>= 0)
//   top_k               (5)     entries in Classification::top (>= 1; at most the number of classes
//                               are returned)
//   queue_batches       (2)     preprocessed batches that may wait for the encoder (>= 1)
//   truncate_prompts    (false) create(): cut prompts longer than the model's context instead of
//                               failing (HeadBuildOptions::truncate)
struct ClassifierOptions {
  int batch_size = 16;
  int preprocess_threads = 0;
  int top_k = 5;
  int queue_batches = 2;
  bool truncate_prompts = false;
};

struct Classification {
  std::string source;  // the file path, or the name given for a buffer / image
  bool ok = true;
  ErrorCode code = ErrorCode::kInternal;  // meaningful when !ok
  std::string error;                      // empty when ok
  std::vector<ScoredLabel> top;           // best first
  std::vector<float> probs;               // every class, in label order
};

class ZeroShotClassifier {
 public:
  ZeroShotClassifier(Model model, ZeroShotHead head, ClassifierOptions options = {});
  // Loads the model from `model_dir` and builds the head from labels and templates.
  static ZeroShotClassifier create(const std::string& model_dir, const std::vector<std::string>& labels,
                                   const std::vector<std::string>& templates,
                                   const ModelOptions& model_options = {},
                                   const ClassifierOptions& options = {});
  // Loads the image tower only and a head saved by ZeroShotHead::save (checked against the model).
  static ZeroShotClassifier from_head(const std::string& model_dir, const std::string& head_path,
                                      ModelOptions model_options = {},
                                      const ClassifierOptions& options = {});

  Classification classify_file(const std::string& path) const;
  Classification classify_buffer(const void* data, size_t size, const std::string& name = "<buffer>") const;
  Classification classify_mat(const cv::Mat& image, const std::string& name = "<mat>") const;
  Classification classify_image(const Image8& image, const std::string& name = "<image>") const;
  // Pixels already preprocessed: [N, 3, n, n], the shape matching the data, every value finite.
  std::vector<Classification> classify_pixels(const FloatTensor& pixels) const;
  // Batched and pipelined; result i belongs to paths[i].
  std::vector<Classification> classify_files(const std::vector<std::string>& paths) const;

  const Model& model() const { return model_; }
  const ZeroShotHead& head() const { return head_; }
  const Preprocessor& preprocessor() const { return preprocessor_; }
  const ClassifierOptions& options() const { return options_; }
  const std::vector<std::string>& labels() const { return head_.labels(); }

 private:
  Classification from_pixels(const float* pixels, const std::string& source) const;
  Model model_;
  ZeroShotHead head_;
  Preprocessor preprocessor_;
  ClassifierOptions options_;
};

}  // namespace zsclip
