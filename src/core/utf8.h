// Internal: UTF-8 checks for text that ends up in JSON or in a head file (labels, templates, file
// names), and renderings of arbitrary bytes for messages and JSON.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace zsclip::utf8 {

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
