// The text steps of SimpleTokenizer.encode before BPE (internal; see zsclip/tokenizer.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace zsclip::text {

// The character-level part of ftfy.fix_text (documented in zsclip/tokenizer.h).
std::u32string ftfy_fix(std::u32string_view text);
// ftfy_fix, html_unescape twice, strip (Python whitespace).
std::u32string basic_clean(std::u32string_view text);
// Every run of Python whitespace -> one space; strip.
std::u32string whitespace_clean(std::u32string_view text);
// whitespace_clean(basic_clean(decode(bytes))).lower()
std::u32string normalize_text(std::string_view utf8);

// Python's string.punctuation: the 32 ASCII characters !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~.
bool is_ascii_punctuation(char32_t c);
// str.strip(): Python whitespace removed at both ends.
std::u32string_view py_strip(std::u32string_view s);
// open_clip's _clean_canonicalize (SigLIP folders): [ftfy_fix when `ftfy`], html_unescape twice,
// strip; canonicalize_text: "_" -> " ", string.punctuation deleted, str.lower(), whitespace_clean.
std::u32string canonicalize(std::u32string_view text, bool ftfy);
// transformers' SiglipTokenizer.canonicalize_text: string.punctuation deleted ("_" included),
// re.sub(r"\s+", " "), strip.
std::u32string siglip_canonicalize(std::u32string_view text);

// A piece of CLIP's pattern match: [begin, end) in the normalized text.
struct Piece {
  size_t begin;
  size_t end;
};
// The two special tokens the pattern matches first (ASCII). OpenAI/HF: <|startoftext|>,
// <|endoftext|>; open_clip: <start_of_text>, <end_of_text>.
struct Specials {
  std::u32string sot, eot;
};
const Specials& openai_specials();
// findall of SOT|EOT|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// with IGNORECASE, on lower-cased text.
std::vector<Piece> split_pieces(std::u32string_view text,
                                const Specials& specials = openai_specials());
// The same on ASCII text.
std::vector<Piece> split_pieces(std::string_view ascii,
                                const Specials& specials = openai_specials());
// For printable ASCII (with \t \n \f \r) without '&', every step up to the split reduces to
// collapsing whitespace and lower-casing: writes that to `out` and returns true; else false.
bool ascii_fast_path(std::string_view text, std::string& out);

}  // namespace zsclip::text
