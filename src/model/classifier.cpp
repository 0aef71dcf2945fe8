// ZeroShotClassifier: a ZeroShotPipeline whose encoder is a loaded Model.
#include "zsclip/classifier.h"

#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

std::shared_ptr<const TextEncoder> text_side(const std::shared_ptr<const Model>& model) {
  return model->has_text_encoder() ? model : nullptr;
}

}  // namespace

ZeroShotClassifier::ZeroShotClassifier(Model model, ZeroShotHead head, ClassifierOptions options)
    : ZeroShotClassifier(std::make_shared<const Model>(std::move(model)), std::move(head),
                         std::move(options)) {}

ZeroShotClassifier::ZeroShotClassifier(std::shared_ptr<const Model> model, ZeroShotHead head,
                                       ClassifierOptions options)
    : ZeroShotPipeline(model, std::move(head), std::move(options), text_side(model)) {}

ZeroShotClassifier ZeroShotClassifier::create(const std::string& model_dir,
                                              const std::vector<std::string>& labels,
                                              const std::vector<std::string>& templates,
                                              const ModelOptions& model_options,
                                              const ClassifierOptions& options) {
  check_classifier_options(options);
  validate_labels(labels, "labels");
  validate_templates(templates, "templates");
  Model model = Model::load(model_dir, model_options);
  HeadBuildOptions head_options;
  head_options.truncate = options.truncate_prompts;
  ZeroShotHead head = ZeroShotHead::build(model, labels, templates, head_options);
  return ZeroShotClassifier(std::move(model), std::move(head), options);
}

ZeroShotClassifier ZeroShotClassifier::from_head(const std::string& model_dir,
                                                 const std::string& head_path,
                                                 ModelOptions model_options,
                                                 const ClassifierOptions& options) {
  check_classifier_options(options);
  ZeroShotHead head = ZeroShotHead::load(head_path);
  model_options.load_text_encoder = false;
  Model model = Model::load(model_dir, model_options);
  head.check_compatible(model, "head file " + head_path);
  return ZeroShotClassifier(std::move(model), std::move(head), options);
}

}  // namespace zsclip
