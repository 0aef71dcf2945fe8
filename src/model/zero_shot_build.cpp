// The half of ZeroShotHead that needs a Model: embedding the prompts, and the identity check.
#include <cmath>

#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {

ZeroShotHead ZeroShotHead::build(const Model& model, const Tokenizer& tokenizer,
                                 const std::vector<std::string>& labels,
                                 const std::vector<std::string>& templates, int batch_size) {
  validate_labels(labels, "zero-shot head");
  validate_templates(templates, "zero-shot head");
  if (batch_size < 1) throw Error(ErrorCode::kInvalidArgument, "zero-shot head: batch_size must be >= 1");
  const int64_t d = model.embed_dim(), t = static_cast<int64_t>(templates.size());
  FloatTensor weights({static_cast<int64_t>(labels.size()), d});
  std::vector<std::string> prompts;
  std::vector<int64_t> owner;  // class index of each pending prompt
  auto flush = [&] {
    if (prompts.empty()) return;
    IdTensor ids = tokenizer.tokenize(prompts, model.context_length(), /*truncate=*/true);
    FloatTensor feats = model.encode_texts(ids);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const float* f = feats.row(static_cast<int64_t>(i));
      double norm = 0;
      for (int64_t k = 0; k < d; ++k) norm += double(f[k]) * f[k];
      const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
      float* w = weights.row(owner[i]);
      // Mean of the normalised prompt embeddings; from_weights normalises the mean again.
      for (int64_t k = 0; k < d; ++k) w[k] += static_cast<float>(f[k] * inv / double(t));
    }
    prompts.clear();
    owner.clear();
  };
  for (size_t c = 0; c < labels.size(); ++c)
    for (const auto& templ : templates) {
      prompts.push_back(fill_template(templ, labels[c]));
      owner.push_back(static_cast<int64_t>(c));
      if (static_cast<int>(prompts.size()) >= batch_size) flush();
    }
  flush();
  return from_weights(labels, std::move(weights), model.logit_scale_exp(), model.config().fingerprint,
                      templates, model.scoring(), model.logit_bias());
}

void ZeroShotHead::check_compatible(const Model& model, const std::string& origin) const {
  const ModelConfig& c = model.config();
  if (embed_dim() != model.embed_dim())
    throw Error(ErrorCode::kInvalidModel, origin + ": embed_dim " + std::to_string(embed_dim()) +
                                              " does not match model " + c.name + " (" +
                                              std::to_string(model.embed_dim()) + ")");
  if (fingerprint_ != c.fingerprint)
    throw Error(ErrorCode::kInvalidModel,
                origin + ": built for the model with fingerprint \"" + fingerprint_ +
                    "\", not for " + c.directory + " (fingerprint \"" + c.fingerprint +
                    "\"); rebuild the head with `zsclip head`");
}

}  // namespace zsclip
