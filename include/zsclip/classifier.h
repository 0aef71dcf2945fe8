// zsclip/classifier.h — model + tokenizer + preprocessor + zero-shot head in one object (LibTorch).
//
//   auto clf = zsclip::ZeroShotClassifier::create("models/shapes", {"red circle", "blue star"},
//                                                 zsclip::builtin_templates("simple"));
//   zsclip::Classification c = clf.classify_file("examples/images/red_circle.png");
//   std::cout << c.top[0].label << " " << c.top[0].prob << "\n";
//
//   // Pixels in memory (a camera frame, a decoded buffer): no file, no cv::Mat, no batch
//   // dimension; any row stride.
//   zsclip::ImageView frame{rgb, width, height, stride, zsclip::PixelFormat::kRGB};
//   zsclip::Classification d = clf.classify(frame);
//
//   // Many files: decoding and preprocessing run on the runtime's workers while the encoder runs.
//   for (const auto& r : clf.classify_files(paths))
//     if (!r.ok) std::cerr << r.source << ": " << r.error << "\n";  // the others still classified
//
//   // Embeddings (unit length) and similarities, one call each.
//   std::vector<float> e = clf.embed_file("cat.jpg");
//   float s = clf.text_image_similarity("a photo of a cat", "cat.jpg");
//
// Every classify/embed call is ZeroShotPipeline's (pipeline.h, zsclip::core): this class adds
// loading a Model. Single-image calls throw zsclip::Error on a bad image; batch calls never throw
// for one bad image: its result has ok == false and the error, and every other image is classified.
// Thread safety: immutable; const methods are safe from several threads (one classifier may serve
// many threads at once; they share its runtime's workers).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "zsclip/model.h"
#include "zsclip/pipeline.h"

namespace zsclip {

class ZeroShotClassifier : public ZeroShotPipeline {
 public:
  // options.runtime null: the model's runtime. The model serves text embeddings when it has its
  // text encoder.
  ZeroShotClassifier(Model model, ZeroShotHead head, ClassifierOptions options = {});
  // Loads the model from `model_dir` and builds the head from labels and templates.
  static ZeroShotClassifier create(const std::string& model_dir,
                                   const std::vector<std::string>& labels,
                                   const std::vector<std::string>& templates,
                                   const ModelOptions& model_options = {},
                                   const ClassifierOptions& options = {});
  // Loads the image tower only and a head saved by ZeroShotHead::save (checked against the model).
  static ZeroShotClassifier from_head(const std::string& model_dir, const std::string& head_path,
                                      ModelOptions model_options = {},
                                      const ClassifierOptions& options = {});

  const Model& model() const { return static_cast<const Model&>(encoder()); }

 private:
  ZeroShotClassifier(std::shared_ptr<const Model> model, ZeroShotHead head,
                     ClassifierOptions options);
};

}  // namespace zsclip
