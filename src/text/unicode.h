// Unicode helpers of the tokenizer with Python's semantics (internal).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "zsclip/utf8.h"  // the UTF-8 decoder and encoder (utf8::decode, utf8::encode)

namespace zsclip::text {

// str.isspace(): category Zs or bidirectional class WS, B or S.
bool is_py_space(char32_t c);
// \p{L} and \p{N}.
bool is_letter(char32_t c);
bool is_number(char32_t c);
// Matches no alternative of CLIP's pattern under IGNORECASE: neither L nor N, but a case variant is
// (U+0345): regex's negated class [^\s\p{L}\p{N}] then rejects it too, so findall skips it.
bool is_pattern_orphan(char32_t c);

// unicodedata.normalize("NFC", text).
std::u32string nfc(std::u32string_view text);
// NFKC of one character (for ftfy's width map).
std::u32string nfkc_char(char32_t c);
// str.lower(): full lowercase mapping (İ -> i + U+0307) with the final-sigma rule.
std::u32string py_lower(std::u32string_view text);

}  // namespace zsclip::text
