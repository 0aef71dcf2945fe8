// Tokenizer type "sentencepiece": SigLIP's and SigLIP2's tokenizers (rules in zsclip/tokenizer.h).
#include <memory>

#include "text/clean.h"
#include "text/hf_bpe.h"
#include "text/sp_model.h"
#include "text/tokenizer_impl.h"
#include "text/unicode.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

constexpr char32_t kUnderline = 0x2581;  // SentencePiece's "\u2581" (SPIECE_UNDERLINE)

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class SentencePiece final : public Tokenizer::Impl {
 public:
  SentencePiece(const std::string& path, const SentencePieceOptions& o)
      : clean_(o.clean), ftfy_(o.ftfy) {
    if (o.ftfy && o.clean != TextCleaning::kCanonicalize)
      throw Error(ErrorCode::kInvalidArgument,
                  "SentencePieceOptions.ftfy is only used with TextCleaning::kCanonicalize");
    if (ends_with(path, ".json")) {
      if (o.clean == TextCleaning::kSiglipHF)
        throw Error(ErrorCode::kUnsupported,
                    "'" + path +
                        "': siglip_hf cleaning (transformers' SiglipTokenizer) needs a "
                        "SentencePiece .model, not a tokenizer.json");
      json_ = std::make_unique<text::HfBpe>(path);
      vocab_size = json_->size();
      num_merges = json_->num_merges();
    } else {
      sp_ = std::make_unique<text::SpModel>(path, o.clean == TextCleaning::kSiglipHF);
      vocab_size = sp_->size();
    }
    type = "sentencepiece";
    auto check = [&](int32_t id, const char* name, bool optional) {
      if ((optional && id == -1) || (id >= 0 && id < vocab_size)) return;
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + path + "': SentencePieceOptions." + name + " " + std::to_string(id) +
                      " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")" +
                      (optional ? " (-1: none)" : ""));
    };
    check(o.pad_id, "pad_id", false);
    check(o.eos_id, "eos_id", !o.add_eos);
    check(o.bos_id, "bos_id", true);
    pad = o.pad_id;
    sot = o.bos_id;
    eot = o.add_eos ? o.eos_id : -1;
    if (sot >= 0) sot_token = token(sot);
    if (eot >= 0) eot_token = token(eot);
    if (o.clean == TextCleaning::kSiglipHF) init_siglip_hf(path, o);
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    switch (clean_) {
      case TextCleaning::kCanonicalize:
        return encode_vocab(utf8::encode(text::canonicalize(utf8::decode(text), ftfy_)));
      case TextCleaning::kSiglipHF:
        return encode_siglip_hf(text);
      case TextCleaning::kNone:
        break;
    }
    return encode_vocab(utf8::encode(utf8::decode(text)));
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    for (int32_t id : ids) check_id(id);
    return sp_ ? sp_->decode(ids) : json_->decode(ids);
  }

  std::string token(int32_t id) const override {
    check_id(id);
    return sp_ ? sp_->piece(id) : std::string(json_->piece(id));
  }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size)
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                                   " is outside the vocabulary [0, " +
                                                   std::to_string(vocab_size) + ")");
  }

  std::vector<int32_t> encode_vocab(const std::string& utf8) const {
    return sp_ ? sp_->encode(utf8) : json_->encode(utf8);
  }

  // SiglipTokenizer's special tokens (all_special_tokens: eos, unk, pad, without repeats) and the
  // pieces "<unk>" encodes to, which _tokenize drops.
  void init_siglip_hf(const std::string& path, const SentencePieceOptions& o) {
    const int32_t unk = sp_->unk_id();
    if (unk < 0)
      throw Error(ErrorCode::kUnsupported,
                  "'" + path + "': siglip_hf cleaning needs the model's <unk> piece; it has none");
    for (int32_t id : {o.eos_id, unk, o.pad_id}) {
      const std::u32string s = utf8::decode(sp_->piece(id));
      bool seen = false;
      for (const auto& [t, tid] : specials_) seen = seen || t == s;
      if (!seen && !s.empty()) specials_.emplace_back(s, id);
    }
    unk_piece_ = sp_->piece(unk);
    unk_prefix_ = sp_->encode(unk_piece_).size();
    underline_ = sp_->find("\u2581");
    eot_if_absent = true;
  }

  // The special token starting at text[pos], in all_special_tokens order (-1: none).
  int find_special(std::u32string_view text, size_t pos) const {
    for (size_t k = 0; k < specials_.size(); ++k)
      if (text.compare(pos, specials_[k].first.size(), specials_[k].first) == 0)
        return static_cast<int>(k);
    return -1;
  }

  // transformers' SiglipTokenizer.tokenize (the slow tokenizer's PreTrainedTokenizer.tokenize
  // with do_lower_case) and convert_tokens_to_ids.
  std::vector<int32_t> encode_siglip_hf(std::string_view input) const {
    // "\u2581" + text.replace("\u2581", " ")
    std::u32string text(1, kUnderline);
    for (char32_t c : utf8::decode(input)) text.push_back(c == kUnderline ? U' ' : c);
    // Lower-case with re.sub("(specials)|(.+?)"): special tokens kept, every other character
    // lower-cased alone (so no final-sigma rule).
    std::u32string lowered;
    lowered.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const int k = find_special(text, i);
      if (k >= 0) {
        lowered += specials_[static_cast<size_t>(k)].first;
        i += specials_[static_cast<size_t>(k)].first.size();
      } else {
        lowered += text::py_lower(std::u32string_view(&text[i], 1));
        ++i;
      }
    }
    // Split at the special tokens (leftmost, longest); each strips the whitespace next to it
    // (AddedToken lstrip / rstrip).
    struct Chunk {
      std::u32string text;
      int special;  // index into specials_, or -1
    };
    std::vector<Chunk> chunks;
    size_t start = 0;
    for (size_t i = 0; i < lowered.size();) {
      int best = -1;
      for (size_t k = 0; k < specials_.size(); ++k)
        if (lowered.compare(i, specials_[k].first.size(), specials_[k].first) == 0 &&
            (best < 0 ||
             specials_[k].first.size() > specials_[static_cast<size_t>(best)].first.size()))
          best = static_cast<int>(k);
      if (best < 0) {
        ++i;
        continue;
      }
      if (i > start) chunks.push_back({lowered.substr(start, i - start), -1});
      chunks.push_back({std::u32string(), best});
      i += specials_[static_cast<size_t>(best)].first.size();
      start = i;
    }
    if (start < lowered.size()) chunks.push_back({lowered.substr(start), -1});
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (chunks[i].special < 0) continue;
      if (i + 1 < chunks.size() && chunks[i + 1].special < 0) {
        std::u32string& t = chunks[i + 1].text;
        size_t b = 0;
        while (b < t.size() && text::is_py_space(t[b])) ++b;
        t.erase(0, b);
      }
      if (i > 0 && chunks[i - 1].special < 0) {
        std::u32string& t = chunks[i - 1].text;
        size_t e = t.size();
        while (e > 0 && text::is_py_space(t[e - 1])) --e;
        t.resize(e);
      }
    }
    std::vector<int32_t> ids;
    std::vector<bool> special;
    for (const Chunk& c : chunks) {
      if (c.special >= 0) {
        ids.push_back(specials_[static_cast<size_t>(c.special)].second);
        special.push_back(true);
        continue;
      }
      if (c.text.empty()) continue;
      // _tokenize: canonicalize_text, encode "<unk>" + text (add_dummy_prefix off), drop the
      // pieces of "<unk>".
      const std::vector<int32_t> piece_ids =
          sp_->encode(unk_piece_ + utf8::encode(text::siglip_canonicalize(c.text)));
      const size_t skip = piece_ids.size() >= unk_prefix_ ? unk_prefix_ : 0;
      ids.insert(ids.end(), piece_ids.begin() + static_cast<std::ptrdiff_t>(skip), piece_ids.end());
      special.resize(ids.size(), false);
    }
    // A lone "\u2581" before a special token is dropped.
    if (ids.size() > 1 && underline_ >= 0 && ids[0] == underline_ && !special[0] && special[1])
      ids.erase(ids.begin());
    return ids;
  }

  TextCleaning clean_;
  bool ftfy_;
  std::unique_ptr<text::SpModel> sp_;
  std::unique_ptr<text::HfBpe> json_;
  std::vector<std::pair<std::u32string, int32_t>> specials_;
  std::string unk_piece_;
  size_t unk_prefix_ = 0;
  int32_t underline_ = -1;
};

}  // namespace

Tokenizer Tokenizer::from_sentencepiece(const std::string& path,
                                        const SentencePieceOptions& options) {
  auto impl = std::make_shared<const SentencePiece>(path, options);
  const int64_t least = std::max<int64_t>(1, (impl->sot >= 0) + (impl->eot >= 0));
  if (options.context_length < least)
    throw Error(ErrorCode::kInvalidArgument,
                "SentencePieceOptions.context_length must be at least " + std::to_string(least) +
                    ", got " + std::to_string(options.context_length));
  return Tokenizer(impl, options.context_length);
}

}  // namespace zsclip
