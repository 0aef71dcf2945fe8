// The half of ZeroShotHead that needs an encoder: embedding the prompts, and the identity check.
#include <cmath>

#include "zsclip/encoder.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {

ZeroShotHead ZeroShotHead::build(const TextEncoder& encoder, const Tokenizer& tokenizer,
                                 const std::vector<std::string>& labels,
                                 const std::vector<std::string>& templates, int batch_size) {
  validate_labels(labels, "zero-shot head");
  validate_templates(templates, "zero-shot head");
  if (batch_size < 1) throw Error(ErrorCode::kInvalidArgument, "zero-shot head: batch_size must be >= 1");
  const int64_t d = encoder.embed_dim(), t = static_cast<int64_t>(templates.size());
  FloatTensor weights({static_cast<int64_t>(labels.size()), d});
  std::vector<std::string> prompts;
  std::vector<int64_t> owner;  // class index of each pending prompt
  auto flush = [&] {
    if (prompts.empty()) return;
    IdTensor ids = tokenizer.tokenize(prompts, encoder.context_length(), /*truncate=*/true);
    FloatTensor feats = encoder.encode_texts(ids);
    if (feats.dim() != 2 || feats.size(0) != static_cast<int64_t>(prompts.size()) || feats.size(1) != d)
      throw Error(ErrorCode::kInternal, "zero-shot head: the text encoder returned features of the wrong shape");
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
  return from_weights(labels, std::move(weights), encoder.logit_scale_exp(), encoder.fingerprint(), templates,
                      encoder.scoring(), encoder.logit_bias());
}

ZeroShotHead ZeroShotHead::build(const TextEncoder& encoder, const std::vector<std::string>& labels,
                                 const std::vector<std::string>& templates, int batch_size) {
  // The labels are checked before the encoder loads its tokenizer.
  validate_labels(labels, "zero-shot head");
  validate_templates(templates, "zero-shot head");
  return build(encoder, encoder.tokenizer(), labels, templates, batch_size);
}

void ZeroShotHead::check_compatible(const ImageEncoder& encoder, const std::string& origin) const {
  if (embed_dim() != encoder.embed_dim())
    throw Error(ErrorCode::kInvalidModel, origin + ": embed_dim " + std::to_string(embed_dim()) +
                                              " does not match " + encoder.describe() + " (" +
                                              std::to_string(encoder.embed_dim()) + ")");
  if (fingerprint_ != encoder.fingerprint())
    throw Error(ErrorCode::kInvalidModel,
                origin + ": built for the model with fingerprint \"" + fingerprint_ + "\", not for " +
                    encoder.describe() + " (fingerprint \"" + encoder.fingerprint() +
                    "\"); rebuild the head with `zsclip head`");
}

}  // namespace zsclip
