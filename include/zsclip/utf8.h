// zsclip/utf8.h — UTF-8 for text that ends up in JSON or in a head file (labels, templates, file
// names): checks, renderings of arbitrary bytes for messages and JSON, and the decoder and encoder
// the tokenizers use (the bottom layer: no other zsclip header needed).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace zsclip::utf8 {

// Code points of `bytes`; each maximal invalid subpart is one U+FFFD (as replace_invalid).
std::u32string decode(std::string_view bytes);
// UTF-8 of one code point appended to `out`, and of a whole text.
void append(std::string& out, char32_t c);
std::string encode(std::u32string_view text);

// The offset of the first byte that is not part of well-formed UTF-8 (no overlong forms, no
// surrogates, nothing above U+10FFFF), or std::string::npos when all of `s` is well formed.
size_t first_invalid(std::string_view s);
inline bool is_valid(std::string_view s) { return first_invalid(s) == std::string::npos; }
// Python's bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal invalid subpart.
std::string replace_invalid(std::string_view s);
// Every byte as two lower-case hex digits: "a\xff" -> "61ff".
std::string hex(std::string_view s);
// For messages: well-formed UTF-8 kept, other bytes written \xHH, cut after about max_bytes.
std::string printable(std::string_view s, size_t max_bytes = 80);
// Throws Error(kInvalidText) naming `subject` ("labels.txt: label 3"), the offending byte and its
// offset, unless `s` is well-formed UTF-8.
void check(std::string_view s, const std::string& subject);

}  // namespace zsclip::utf8
