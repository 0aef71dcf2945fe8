// Unicode helpers of the tokenizer with Python's semantics (internal).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace zsclip::text {

// bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal invalid subpart.
std::u32string decode_utf8_replace(std::string_view bytes);
void append_utf8(std::string& out, char32_t c);
std::string encode_utf8(std::u32string_view text);

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
