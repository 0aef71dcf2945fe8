// The half of ZeroShotHead that needs an encoder: embedding the prompts, and the identity check.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "base/fingerprint.h"
#include "zsclip/encoder.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"
#include "zsclip/utf8.h"
#include "zsclip/zero_shot.h"

namespace zsclip {

namespace {

// Writes one prompt's ids into a row of `context` (already filled with the tokenizer's pad id) as
// the tokenizer's tokenize gives them (CLIP: [sot, bpe..., eot]), cut as
// clip.tokenize(truncate=True) when `truncate`, else an error naming the label and the template.
// Returns whether it was cut.
bool tokenize_prompt(const Tokenizer& tokenizer, const std::string& prompt,
                     const std::string& label, const std::string& templ, bool truncate,
                     int64_t* row, int64_t context) {
  int64_t count = 0;
  const std::vector<int32_t> ids = tokenizer.encode_with_specials(prompt, context, true, &count);
  if (count > context && !truncate)
    throw Error(
        ErrorCode::kInvalidText,
        "zero-shot head: the prompt for label \"" + utf8::printable(label) + "\" with template \"" +
            utf8::printable(templ) + "\" is " + std::to_string(count) +
            " tokens, more than the model's context length " + std::to_string(context) +
            " (shorten the label or template, or allow truncation: HeadBuildOptions::truncate, "
            "zsclip --truncate)");
  std::copy(ids.begin(), ids.end(), row);
  return count > context;
}

// The ids of every prompt of one label, one context row per template, as build embeds them.
std::vector<int64_t> label_prompts(const Tokenizer& tokenizer, const std::string& label,
                                   const std::vector<std::string>& templates, bool truncate,
                                   int64_t context) {
  std::vector<int64_t> ids(templates.size() * static_cast<size_t>(context), tokenizer.pad_id());
  for (size_t t = 0; t < templates.size(); ++t)
    tokenize_prompt(tokenizer, fill_template(templates[t], label), label, templates[t], truncate,
                    ids.data() + t * static_cast<size_t>(context), context);
  return ids;
}

// Before anything is embedded: a prompt too long fails now (unless truncate), not minutes later;
// and two labels whose prompts all tokenize alike (equal after CLIP's cleaning: "cat" and "Cat",
// "cat" and " cat ", "&amp;" and "&") are refused, naming both, since they would get one weight
// vector and split every score between them.
void check_prompts(const Tokenizer& tokenizer, const std::vector<std::string>& labels,
                   const std::vector<std::string>& templates, bool truncate, int64_t context) {
  std::unordered_multimap<uint64_t, size_t> seen;  // FNV-1a of a label's prompt ids -> label
  seen.reserve(labels.size());
  for (size_t c = 0; c < labels.size(); ++c) {
    const std::vector<int64_t> ids =
        label_prompts(tokenizer, labels[c], templates, truncate, context);
    uint64_t h = 1469598103934665603ull;
    for (int64_t id : ids) h = (h ^ static_cast<uint64_t>(id)) * 1099511628211ull;
    auto range = seen.equal_range(h);
    for (auto it = range.first; it != range.second; ++it) {
      const size_t other = it->second;
      if (label_prompts(tokenizer, labels[other], templates, truncate, context) != ids) continue;
      throw Error(ErrorCode::kInvalidArgument,
                  "zero-shot head: labels " + std::to_string(other + 1) + " \"" +
                      utf8::printable(labels[other]) + "\" and " + std::to_string(c + 1) + " \"" +
                      utf8::printable(labels[c]) +
                      "\" are the same after the tokenizer's cleaning (case, spaces, HTML "
                      "entities" +
                      (truncate ? ", truncation" : "") +
                      "): their prompts are identical, so they would share every score; "
                      "keep one of them");
    }
    seen.emplace(h, c);
  }
}

}  // namespace

ZeroShotHead ZeroShotHead::build(const TextEncoder& encoder, const std::vector<std::string>& labels,
                                 const std::vector<std::string>& templates,
                                 const HeadBuildOptions& options) {
  // The labels are checked before the encoder loads its tokenizer.
  validate_labels(labels, "zero-shot head");
  validate_templates(templates, "zero-shot head");
  const int batch_size = options.batch_size;
  if (batch_size < 1)
    throw Error(ErrorCode::kInvalidArgument, "zero-shot head: batch_size must be >= 1");
  const int64_t d = encoder.embed_dim(), t = static_cast<int64_t>(templates.size());
  const int64_t context = encoder.context_length();
  const Tokenizer& tokenizer = encoder.tokenizer();
  check_prompts(tokenizer, labels, templates, options.truncate, context);
  FloatTensor weights({static_cast<int64_t>(labels.size()), d});
  const int64_t rows = std::min<int64_t>(batch_size, static_cast<int64_t>(labels.size()) * t);
  IdTensor ids({rows, context}, tokenizer.pad_id());
  int64_t pending = 0, truncated = 0, embedded = 0;
  const int64_t total = static_cast<int64_t>(labels.size()) * t;
  std::vector<int64_t> owner;  // class index of each pending prompt
  auto flush = [&] {
    if (pending == 0) return;
    ids.shape[0] = pending;
    ids.data.resize(static_cast<size_t>(pending * context));
    FloatTensor feats = encoder.encode_texts(ids);
    if (feats.dim() != 2 || feats.size(0) != pending || feats.size(1) != d)
      throw Error(ErrorCode::kInternal,
                  "zero-shot head: the text encoder returned features of the wrong shape");
    for (int64_t i = 0; i < pending; ++i) {
      const float* f = feats.row(i);
      double norm = 0;
      for (int64_t k = 0; k < d; ++k) norm += double(f[k]) * f[k];
      const double inv = norm > 0 ? 1.0 / std::sqrt(norm) : 0.0;
      float* w = weights.row(owner[static_cast<size_t>(i)]);
      // Mean of the normalised prompt embeddings; from_weights normalises the mean again.
      for (int64_t k = 0; k < d; ++k) w[k] += static_cast<float>(f[k] * inv / double(t));
    }
    embedded += pending;
    if (options.progress) options.progress(embedded, total);
    pending = 0;
    owner.clear();
    ids = IdTensor({rows, context}, tokenizer.pad_id());
  };
  for (size_t c = 0; c < labels.size(); ++c)
    for (const auto& templ : templates) {
      truncated += tokenize_prompt(tokenizer, fill_template(templ, labels[c]), labels[c], templ,
                                   options.truncate, ids.row(pending), context);
      owner.push_back(static_cast<int64_t>(c));
      if (++pending >= rows) flush();
    }
  flush();
  ZeroShotHead head =
      from_weights(labels, std::move(weights), encoder.logit_scale_exp(), encoder.fingerprint(),
                   templates, encoder.scoring(), encoder.logit_bias());
  head.truncated_prompts_ = truncated;
  // A model without a fingerprint (Model is both encoders): remembered by its describe(), for
  // check_compatible in this process only.
  if (encoder.fingerprint().empty())
    if (const auto* image = dynamic_cast<const ImageEncoder*>(&encoder))
      head.built_for_ = image->describe();
  return head;
}

ZeroShotHead ZeroShotHead::from_weights(std::vector<std::string> labels, FloatTensor weights,
                                        float logit_scale_exp, const ImageEncoder& encoder,
                                        std::vector<std::string> templates, Scoring scoring,
                                        float logit_bias) {
  ZeroShotHead head =
      from_weights(std::move(labels), std::move(weights), logit_scale_exp, encoder.fingerprint(),
                   std::move(templates), scoring, logit_bias);
  if (encoder.fingerprint().empty()) head.built_for_ = encoder.describe();
  return head;
}

void ZeroShotHead::check_compatible(const ImageEncoder& encoder, const std::string& origin) const {
  if (embed_dim() != encoder.embed_dim())
    throw Error(ErrorCode::kInvalidModel, origin + ": embed_dim " + std::to_string(embed_dim()) +
                                              " does not match " + encoder.describe() + " (" +
                                              std::to_string(encoder.embed_dim()) + ")");
  // An empty fingerprint matches nothing. The one exception: a head that build() made in this
  // process from a model without a fingerprint, used with that same model (its describe()); such a
  // head cannot be saved.
  if (fingerprint_.empty() && encoder.fingerprint().empty() && !built_for_.empty() &&
      built_for_ == encoder.describe())
    return;
  if (!detail::fingerprints_match(fingerprint_, encoder.fingerprint()))
    throw Error(ErrorCode::kInvalidModel,
                origin + ": built for the model with " +
                    detail::describe_fingerprint(fingerprint_) + ", not for " + encoder.describe() +
                    " (" + detail::describe_fingerprint(encoder.fingerprint()) + ")" +
                    (fingerprint_.empty() || encoder.fingerprint().empty()
                         ? "; an empty fingerprint matches no model: export the model again "
                           "(models/export_clip.py records one) and rebuild the head"
                         : "; rebuild the head with `zsclip head`"));
}

}  // namespace zsclip
