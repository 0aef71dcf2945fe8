#include "zsclip/utf8.h"

#include <cstdio>

#include "zsclip/error.h"

namespace zsclip::utf8 {

std::u32string decode(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = s[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int need;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    char32_t cp;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      cp = b & 0x0F;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      cp = b & 0x07;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool ok = true;
    for (int k = 0; k < need; ++k, ++j) {
      const unsigned char c = j < n ? s[j] : 0;
      const unsigned char l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
      if (j >= n || c < l || c > h) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    if (ok) {
      out.push_back(cp);
    } else {
      out.push_back(0xFFFD);  // the valid prefix (lead byte plus good continuations) is one error
    }
    i = j;
  }
  return out;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append(out, c);
  return out;
}

size_t first_invalid(std::string_view s) {
  size_t ascii = 0;
  while (ascii < s.size() && static_cast<unsigned char>(s[ascii]) < 0x80) ++ascii;
  if (ascii == s.size()) return std::string::npos;
  // Up to the first replacement the decoder made, every code point re-encodes to the same bytes.
  size_t pos = ascii;
  std::string enc;
  for (char32_t c : utf8::decode(s.substr(ascii))) {
    enc.clear();
    utf8::append(enc, c);
    if (s.compare(pos, enc.size(), enc) != 0) return pos;
    pos += enc.size();
  }
  return std::string::npos;
}

std::string replace_invalid(std::string_view s) {
  if (is_valid(s)) return std::string(s);
  return utf8::encode(utf8::decode(s));
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
