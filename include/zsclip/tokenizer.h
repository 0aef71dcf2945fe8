// zsclip::Tokenizer — CLIP's byte-level BPE tokenizer (OpenAI's clip/simple_tokenizer.py), and
// the SentencePiece tokenizers of SigLIP / SigLIP2 (from_sentencepiece, below).
//
//   auto tok = zsclip::Tokenizer::from_file("bpe_simple_vocab_16e6.txt.gz");
//   std::vector<int32_t> ids = tok.encode("A photo of a cat.");  // 320 1125 539 320 2368 269
//   std::string text = tok.decode(ids);                          // "a photo of a cat . "
//   zsclip::IdTensor batch = tok.tokenize({"a dog", "a cat"});   // [2, 77]: sot ... eot, zeros
//
// A Tokenizer is immutable after construction: its const methods are safe to call from several
// threads at once (the BPE cache inside is sharded and locked). Copies are cheap and share state.
//
// encode() follows SimpleTokenizer.encode step by step:
//   1. Bytes -> text. Invalid UTF-8 becomes U+FFFD per bad sequence, as Python's
//      bytes.decode("utf-8", errors="replace") does (maximal-subpart rule).
//   2. ftfy.fix_text, reduced to its character-level fixes, in ftfy 6's order: remove ANSI terminal
//      escapes (ESC [ digits/; letter); C1 controls U+0080-U+009F read as Windows-1252 (undefined
//      bytes stay); Latin ligatures (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ, Ĳ ĳ ŉ and the DŽ/LJ/NJ digraphs) spelt out;
//      full-width/half-width forms U+FF01-U+FFEF -> their NFKC form and U+3000 -> space; curly
//      quotes ‘ ’ ‚ ‛ ʼ -> ' and “ ” „ ‟ -> "; \r\n, \r, U+2028, U+2029, U+0085 -> \n; NFC;
//      then removal of U+0000-U+0008, U+000B, U+000E-U+001F, U+007F, U+206A-U+206F, U+FEFF,
//      U+FFF9-U+FFFC (tab, \n, form feed and \r stay).
//      Out of scope: mojibake repair (fix_encoding, restore_byte_a0, lossy/inconsistent UTF-8) and
//      ftfy's own HTML unescaping (the reference data was made with ftfy replaced by the identity).
//   3. html.unescape twice (Python's rules: HTML5 names with and without ';', longest prefix for
//      the ones without, numeric references with Python's remapping of invalid code points), strip.
//   4. Every run of Python whitespace (str.isspace) -> one space, strip; then Python's str.lower()
//      (full mapping: İ -> i̇, final sigma).
//   5. Split with CLIP's pattern (specials, 's 't 're 've 'm 'll 'd, letter runs, single digits,
//      runs of other non-space characters), each piece -> bytes -> byte symbols with </w> on the
//      last, merged by lowest BPE rank, then ids.
// Unicode data (categories, case, NFC) comes from utf8proc, so characters new in a Unicode version
// that Python's or regex's tables lack may differ.
//
// SentencePiece tokenizers (type "sentencepiece", SigLIP and SigLIP2; Tokenizer::from_sentencepiece
// or from_config with config.json format_version 3):
//   * a SentencePiece .model (T5-style unigram spiece.model, Gemma-style BPE tokenizer.model) is
//     run by the SentencePiece library itself (Debian's libsentencepiece), with the normalizer the
//     model file holds;
//   * a HuggingFace tokenizer.json is read only when it is of the Gemma kind: model "BPE" with
//     byte_fallback, normalizer Replace(" " -> "▁") (a Sequence with Prepend allowed),
//     pre-tokenizer none or a Split on " " (which the normalizer has already removed). zsclip runs
//     it as HF tokenizers and transformers.js do: the added tokens are cut out first (leftmost,
//     longest; lstrip/rstrip honoured), each other part is normalized and merged as one word,
//     lowest merge rank first, leftmost among equal ranks; a symbol outside the vocabulary becomes
//     its UTF-8 bytes <0xNN> (unk when a byte piece is missing); consecutive unks fuse when
//     fuse_unk. Anything else (WordPiece, Unigram, byte-level BPE, dropout, suffixes, regex splits,
//     other normalizers) is refused with Error(kUnsupported) naming the field.
//   Text cleaning (SentencePieceOptions::clean) before the vocabulary sees the text:
//   * kCanonicalize: open_clip's _clean_canonicalize (open_clip SigLIP folders): html.unescape
//     twice, strip, "_" -> space, ASCII string.punctuation deleted, str.lower(), whitespace runs ->
//     one space. open_clip runs ftfy.fix_text first; zsclip does only with ftfy = true (the
//     character-level ftfy above), as the reference data were made with ftfy as the identity.
//   * kSiglipHF: transformers' SiglipTokenizer (HF SiglipModel folders, .model only): "▁" +
//     text (its own "▁" turned into spaces), lower-cased a character at a time (no final-sigma
//     rule), cut at the special-token strings (the pieces of eos, pad and unk; whitespace next to
//     them stripped), each other part with ASCII punctuation deleted ("_" too: no space),
//     whitespace runs -> one space, stripped, and encoded after "<unk>" with the model's
//     add_dummy_prefix off (the pieces of "<unk>" then dropped); a "▁" before a special token is
//     dropped; eos is added unless the ids already end with it.
//   * kNone: the text as given (HF's Gemma tokenizers). A .model then sees it as it is: literal
//     special-token strings ("<eos>") are text to SentencePiece, where HF's Gemma tokenizers would
//     map them to their ids; a tokenizer.json cuts its added tokens out (as HF does) in every mode.
//   The same checkpoint in its open_clip and HF layouts may therefore give different ids:
//   "sea_waves" ("_" a space or deleted), "Tom &amp; Jerry" (unescaped or not).
//   Ids: [bos] + pieces[:context_length - specials] + [eos], then pad_id to context_length
//   (open_clip SigLIP: pieces[:63] + [1], padded with 1; SigLIP2: padded with 0). Invalid UTF-8
//   becomes U+FFFD first, as for CLIP.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "zsclip/tensor.h"

namespace zsclip {

// Options of Tokenizer::from_file.
//   num_merges (-1)        merge lines to use after the header line; -1: as SimpleTokenizer, the
//                          first min(lines, 48894) (OpenAI's file holds 262144; 48894 are used)
//   cache_capacity (65536) pieces whose BPE result is kept (bounded, shared by all threads); 0:
//   none sot_token, eot_token   the special tokens as text spells them (ids: the last two of the
//                          vocabulary, or vocab.json's); open_clip: "<start_of_text>",
//                          "<end_of_text>"
//   context_length (77)    what encode_with_specials/tokenize use when not given one (>= 2);
//                          Model::tokenizer and from_config set the model's
struct TokenizerOptions {
  int64_t num_merges = -1;
  int64_t cache_capacity = 65536;
  int64_t context_length = 77;
  std::string sot_token = "<|startoftext|>";
  std::string eot_token = "<|endoftext|>";
};

// Whose text cleaning a SentencePiece tokenizer applies (see above).
enum class TextCleaning { kNone, kCanonicalize, kSiglipHF };

// Options of Tokenizer::from_sentencepiece (config.json: tokenizer.clean, ftfy, pad_id, eos_id,
// bos_id, add_eos; context_length is text.context_length).
struct SentencePieceOptions {
  TextCleaning clean = TextCleaning::kNone;
  bool ftfy = false;  // kCanonicalize only
  int64_t context_length = 64;
  int32_t pad_id = 0;
  int32_t eos_id = 1;   // appended when add_eos
  int32_t bos_id = -1;  // prepended when >= 0
  bool add_eos = true;
};

struct ModelConfig;

class Tokenizer {
 public:
  // Reads a merges file, gzip-compressed (as shipped) or plain text. Throws Error: kNotFound when
  // absent, kPermissionDenied when unreadable, kInvalidConfig when corrupt, empty or too short.
  static Tokenizer from_file(const std::string& path, const TokenizerOptions& options = {});
  // HuggingFace CLIPTokenizer files: vocab.json ({token: id}) and merges.txt ("#version" header,
  // then one "a b" pair a line in rank order). Ids come from vocab.json; the merges, the text
  // cleaning and the splitting are OpenAI's, so a vocab.json made from OpenAI's vocabulary gives
  // OpenAI's ids exactly. num_merges -1: as CLIPTokenizer, the first min(lines, 48894).
  static Tokenizer from_hf_files(const std::string& vocab_json, const std::string& merges_txt,
                                 const TokenizerOptions& options = {});
  // The tokenizer a model's config.json describes (format, files, special tokens, merges).
  static Tokenizer from_config(const ModelConfig& config, int64_t cache_capacity = 65536);
  // A tokenizer from merge pairs in the byte-symbol alphabet (as written in the merges file).
  static Tokenizer from_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                               const TokenizerOptions& options = {});
  // A SentencePiece tokenizer: `path` is a SentencePiece .model or a Gemma-kind tokenizer.json
  // (told apart by the name's ending: .json or not). Throws Error: kNotFound / kPermissionDenied
  // for the file, kInvalidConfig for a corrupt one (naming it and what is wrong), kUnsupported for
  // a tokenizer.json of another kind or kSiglipHF with a tokenizer.json, kInvalidArgument for ids
  // outside the vocabulary or a context too short for the special tokens.
  static Tokenizer from_sentencepiece(const std::string& path,
                                      const SentencePieceOptions& options = {});

  // == SimpleTokenizer().encode(text). SentencePiece: the cleaned text's piece ids, no specials.
  std::vector<int32_t> encode(std::string_view text) const;
  // == SimpleTokenizer().decode(ids); throws Error(kInvalidArgument) for an id outside the vocab.
  std::string decode(const std::vector<int32_t>& ids) const;
  // clip.tokenize for one text without padding: [sot, ...bpe, eot]. truncate=true keeps
  // context_length ids with eot last; truncate=false throws Error(kInvalidText) when too long.
  // context_length 0: this tokenizer's context_length() (77, or the model's). SentencePiece:
  // [bos] + pieces + [eos] as configured, cut the same way. full_length (when given) receives the
  // length before any cut (pieces + special tokens).
  std::vector<int32_t> encode_with_specials(std::string_view text, int64_t context_length = 0,
                                            bool truncate = true,
                                            int64_t* full_length = nullptr) const;
  // clip.tokenize: [texts.size(), context_length], padded with pad_id() (CLIP: 0).
  IdTensor tokenize(const std::vector<std::string>& texts, int64_t context_length = 0,
                    bool truncate = true) const;

  const std::string& type() const;  // "clip_bpe" | "sentencepiece"
  // The start / end tokens and their ids; SentencePiece: the bos / eos pieces as configured, ""
  // and -1 where there is none (bos_id -1, add_eos false).
  const std::string& sot_token() const;
  const std::string& eot_token() const;
  int32_t sot_id() const;
  int32_t eot_id() const;
  int32_t pad_id() const;      // what tokenize() pads rows with: CLIP 0, SentencePiece pad_id
  int64_t vocab_size() const;  // SentencePiece: pieces (tokenizer.json: max id + 1)
  int64_t num_merges() const;  // BPE merges (a .model: 0; the library keeps its own)
  int64_t context_length() const { return context_length_; }  // TokenizerOptions::context_length
  // The token string (byte symbols, "</w>" at a word end; SentencePiece: the piece) of an id;
  // throws for ids outside the vocab.
  std::string token(int32_t id) const;

  // True when this and `other` share one vocabulary and merge table (copies do).
  bool shares_state_with(const Tokenizer& other) const { return impl_ == other.impl_; }

  class Impl;  // opaque: src/text/tokenizer_impl.h

 private:
  Tokenizer(std::shared_ptr<const Impl> impl, int64_t context_length)
      : impl_(std::move(impl)), context_length_(context_length) {}
  std::shared_ptr<const Impl> impl_;
  int64_t context_length_ = 77;
};

}  // namespace zsclip
