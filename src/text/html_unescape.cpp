#include "text/html_unescape.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "text/unicode.h"

namespace zsclip::text {
namespace {

struct HtmlEntity {
  const char* name;
  const char* value;  // UTF-8
};
struct InvalidCharref {
  uint32_t number;
  uint32_t replacement;
};

#include "text/html_entities.inc"

const HtmlEntity* find_entity(const std::string& name) {
  const auto* begin = std::begin(kHtmlEntities);
  const auto* end = std::end(kHtmlEntities);
  const auto* it = std::lower_bound(
      begin, end, name,
      [](const HtmlEntity& e, const std::string& n) { return std::strcmp(e.name, n.c_str()) < 0; });
  return it != end && name == it->name ? it : nullptr;
}

void append_decoded(std::u32string& out, const char* utf8) { out += utf8::decode(utf8); }

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char32_t c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int hex_value(char32_t c) {
  if (is_ascii_digit(c)) return static_cast<int>(c - '0');
  return static_cast<int>((c | 0x20) - 'a' + 10);
}

void append_numeric(std::u32string& out, uint64_t num) {
  for (const auto& r : kInvalidCharrefs) {
    if (r.number == num) {
      out.push_back(r.replacement);
      return;
    }
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
    return;
  }
  if (std::binary_search(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints),
                         static_cast<uint32_t>(num))) {
    return;  // Python drops these
  }
  out.push_back(static_cast<char32_t>(num));
}

bool is_name_char(char32_t c) {
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
         c != ';';
}

}  // namespace

std::u32string html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char32_t c = s[i];
    if (c != '&' || i + 1 >= n) {
      out.push_back(c);
      ++i;
      continue;
    }
    size_t j = i + 1;
    if (s[j] == '#') {
      // &#123;? or &#x1F;?  (a bare "&#" matches no alternative: '#' is no name character)
      size_t k = j + 1;
      const bool hex = k < n && (s[k] == 'x' || s[k] == 'X');
      if (hex) ++k;
      const size_t digits_begin = k;
      uint64_t num = 0;
      while (k < n && (hex ? is_hex_digit(s[k]) : is_ascii_digit(s[k]))) {
        // Saturate: anything this large is > 0x10FFFF and maps to U+FFFD anyway.
        if (num <= 0xFFFFFFFFull)
          num = num * (hex ? 16 : 10) + static_cast<uint64_t>(hex_value(s[k]));
        ++k;
      }
      if (k == digits_begin) {
        out.push_back(c);
        ++i;
        continue;
      }
      if (k < n && s[k] == ';') ++k;
      append_numeric(out, num);
      i = k;
      continue;
    }
    size_t k = j;
    while (k < n && k - j < 32 && is_name_char(s[k])) ++k;
    if (k == j) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (k < n && s[k] == ';') ++k;
    const std::u32string_view ref = s.substr(j, k - j);  // the name, with its ';' if any
    const std::string ref_utf8 = utf8::encode(ref);
    if (const HtmlEntity* e = find_entity(ref_utf8)) {
      append_decoded(out, e->value);
      i = k;
      continue;
    }
    bool replaced = false;
    for (size_t x = ref.size() - 1; x > 1; --x) {
      if (const HtmlEntity* e = find_entity(utf8::encode(ref.substr(0, x)))) {
        append_decoded(out, e->value);
        out.append(ref.substr(x));
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.push_back('&');
      out.append(ref);
    }
    i = k;
  }
  return out;
}

}  // namespace zsclip::text
