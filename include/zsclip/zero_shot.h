// zsclip/zero_shot.h — the zero-shot head: class weights from prompts, scores from image features.
//
//   auto templates = zsclip::builtin_templates("openai-cifar");  // 18 templates
//   // model: a TextEncoder; the head can be saved and reloaded without the text tower
//   auto head = zsclip::ZeroShotHead::build(model, {"cat", "dog"}, templates);
//   head.save("pets.zshead");
//   auto preds = head.classify(model.encode_images(pixels), /*top_k=*/5);
//   std::string best = preds[0].top[0].label;  // "cat"
//
// Class weights follow OpenAI's prompt ensembling: every template is filled with the class name
// ("{}" replaced), each prompt embedded and L2-normalised, the mean taken per class and normalised
// again. Logits are logit_scale_exp * normalised image features @ weights; probabilities are the
// softmax over classes, or for Scoring::kSigmoid (models with a logit_bias, SigLIP-style) each
// class's own sigmoid(logit + logit_bias): those do not sum to 1. Logits never include the bias.
//
// A saved head records the model's fingerprint; loading it for another model is refused.
// Everything here is in zsclip::core: `build` and `check_compatible` take the encoder interfaces of
// zsclip/encoder.h, which zsclip::Model implements, so a program linking only zsclip::core links.
// Thread safety: immutable; const methods are safe from several threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "zsclip/config.h"
#include "zsclip/encoder.h"
#include "zsclip/tensor.h"

namespace zsclip {

// Built-in template sets: "openai-cifar" (18), "openai-imagenet" (80), "simple" ("a photo of a
// {}.").
const std::vector<std::string>& builtin_templates(const std::string& name);
std::vector<std::string> builtin_template_names();
// CLIP's class names for "cifar10", "cifar100" and "imagenet" (in the datasets' label order).
const std::vector<std::string>& builtin_classes(const std::string& dataset);
// A template file: one template a line (blank lines ignored); each must contain "{}".
std::vector<std::string> load_templates_file(const std::string& path);
// `name_or_path`: a built-in name, else a template file.
std::vector<std::string> resolve_templates(const std::string& name_or_path);
// Checks a template list (non-empty, every template has "{}"); `origin` names it in errors.
void validate_templates(const std::vector<std::string>& templates, const std::string& origin);
// Checks a label list (non-empty, no empty or duplicate labels).
void validate_labels(const std::vector<std::string>& labels, const std::string& origin);
// Labels from a file, one a line (blank lines ignored).
std::vector<std::string> load_labels_file(const std::string& path);
// Replaces every "{}" in `templ` with `label`.
std::string fill_template(const std::string& templ, const std::string& label);

struct ScoredLabel {
  int index = 0;
  std::string label;
  float prob = 0.f;
  float logit = 0.f;
};

struct Prediction {
  std::vector<ScoredLabel> top;  // best first
  std::vector<float> probs;      // every class, in label order
};

// Options of ZeroShotHead::build.
//   batch_size (256)   prompts per text-encoder call
//   truncate   (false) a prompt longer than the model's context is an Error (kInvalidText) naming
//                      the label, the template and the token count, as OpenAI's clip.tokenize
//                      raises by default; true cuts it as clip.tokenize(truncate=True) does (the
//                      first context_length - 1 tokens, then the end token) and counts it in
//                      ZeroShotHead::truncated_prompts()
//   progress   (none)  called after each batch with (prompts embedded, prompts in all), on the
//                      calling thread (a progress display for large label sets)
struct HeadBuildOptions {
  int batch_size = 256;
  bool truncate = false;
  std::function<void(int64_t done, int64_t total)> progress;
};

class ZeroShotHead {
 public:
  // The one way to build a head: embeds labels x templates with the text encoder (batch_size
  // prompts at a time), tokenised by the encoder's own tokenizer() after the labels and templates
  // are checked. The head records the encoder's fingerprint, scale and scoring. Labels and
  // templates must be UTF-8.
  static ZeroShotHead build(const TextEncoder& encoder, const std::vector<std::string>& labels,
                            const std::vector<std::string>& templates,
                            const HeadBuildOptions& options = {});
  // From ready-made class weights [C, D] (normalised here).
  static ZeroShotHead from_weights(std::vector<std::string> labels, FloatTensor weights,
                                   float logit_scale_exp, std::string model_fingerprint,
                                   std::vector<std::string> templates = {},
                                   Scoring scoring = Scoring::kSoftmax, float logit_bias = 0.f);
  // The same for this encoder's model: records its fingerprint, and for a model without one (whose
  // heads cannot be saved) the encoder itself, so that check_compatible accepts the head for that
  // model in this process.
  static ZeroShotHead from_weights(std::vector<std::string> labels, FloatTensor weights,
                                   float logit_scale_exp, const ImageEncoder& encoder,
                                   std::vector<std::string> templates = {},
                                   Scoring scoring = Scoring::kSoftmax, float logit_bias = 0.f);
  static ZeroShotHead load(const std::string& path);
  // A head whose model has no fingerprint is refused (kInvalidModel): it could never be matched to
  // its model again. Writes atomically: a temporary file with a unique name in the target's folder,
  // renamed onto the target (removed on any failure, the target then unchanged). A target that
  // exists and is not a regular file (directory, device, FIFO) is refused; a symbolic link is
  // written through (the file it points to is replaced, the link stays).
  void save(const std::string& path) const;

  // Throws zsclip::Error(kInvalidModel) unless the head was built with this encoder's model (same
  // embed_dim and fingerprint). An empty fingerprint (a model whose config.json has none) matches
  // no fingerprint, not even another empty one; only a head that build() made in this process from
  // such a model is accepted for that same model (same describe()).
  void check_compatible(const ImageEncoder& encoder, const std::string& origin = "head") const;

  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<std::string>& templates() const { return templates_; }
  const FloatTensor& weights() const { return weights_; }  // [C, D], rows unit length
  float logit_scale_exp() const { return logit_scale_exp_; }
  Scoring scoring() const { return scoring_; }
  float logit_bias() const { return logit_bias_; }  // 0 for softmax
  const std::string& model_fingerprint() const { return fingerprint_; }
  int64_t num_classes() const { return weights_.size(0); }
  int64_t embed_dim() const { return weights_.size(1); }
  // Prompts that build() cut to the context length (HeadBuildOptions::truncate); 0 otherwise and
  // for loaded heads.
  int64_t truncated_prompts() const { return truncated_prompts_; }

  // [N, D] image features (projected, not normalised) -> [N, C] logits. The shape must match the
  // data and D the head's; a NaN or infinite feature is an Error (kInvalidArgument).
  FloatTensor logits(const FloatTensor& image_features) const;
  // One image's D features -> C probabilities written to out (softmax or sigmoid, see scoring()).
  void probs(const float* image_features, float* out) const;
  // [N, D] -> N predictions with the top_k best classes (top_k >= 1; more than C gives C).
  std::vector<Prediction> classify(const FloatTensor& image_features, int top_k = 5) const;
  Prediction classify_one(const float* image_features, int top_k = 5) const;

 private:
  std::vector<std::string> labels_, templates_;
  FloatTensor weights_;
  float logit_scale_exp_ = 1.f;
  Scoring scoring_ = Scoring::kSoftmax;
  float logit_bias_ = 0.f;
  std::string fingerprint_;
  std::string built_for_;  // build() from a model without a fingerprint: encoder.describe()
  int64_t truncated_prompts_ = 0;
};

}  // namespace zsclip
