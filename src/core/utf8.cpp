#include "core/utf8.h"

#include <cstdio>

#include "text/unicode.h"
#include "zsclip/error.h"

namespace zsclip::utf8 {

size_t first_invalid(std::string_view s) {
  size_t ascii = 0;
  while (ascii < s.size() && static_cast<unsigned char>(s[ascii]) < 0x80) ++ascii;
  if (ascii == s.size()) return std::string::npos;
  // Up to the first replacement the decoder made, every code point re-encodes to the same bytes.
  size_t pos = ascii;
  std::string enc;
  for (char32_t c : text::decode_utf8_replace(s.substr(ascii))) {
    enc.clear();
    text::append_utf8(enc, c);
    if (s.compare(pos, enc.size(), enc) != 0) return pos;
    pos += enc.size();
  }
  return std::string::npos;
}

std::string replace_invalid(std::string_view s) {
  if (is_valid(s)) return std::string(s);
  return text::encode_utf8(text::decode_utf8_replace(s));
}

std::string hex(std::string_view s) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * s.size());
  for (char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::string printable(std::string_view s, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < s.size() && out.size() < max_bytes) {
    const size_t bad = first_invalid(s.substr(i));
    size_t good = bad == std::string::npos ? s.size() - i : bad;
    if (good > max_bytes - out.size()) {  // cut whole characters only
      good = max_bytes - out.size();
      while (good > 0 && (static_cast<unsigned char>(s[i + good]) & 0xC0) == 0x80) --good;
      out.append(s.substr(i, good));
      i += good;
      break;
    }
    out.append(s.substr(i, good));
    i += good;
    if (i < s.size()) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(s[i]));
      out += buf;
      ++i;
    }
  }
  if (i < s.size()) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

void check(std::string_view s, const std::string& subject) {
  const size_t bad = first_invalid(s);
  if (bad == std::string::npos) return;
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(s[bad]));
  throw Error(ErrorCode::kInvalidText, subject + " is not valid UTF-8 (byte " + byte +
                                           " at offset " + std::to_string(bad) + "): \"" +
                                           printable(s) + "\"");
}

}  // namespace zsclip::utf8
