#include "text/unicode.h"

#include <utf8proc.h>

#include <cstdlib>

namespace zsclip::text {

bool is_py_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
         p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}

bool is_pattern_orphan(char32_t c) {
  if (c < 0x80 || is_letter(c) || is_number(c)) return false;
  const auto ci = static_cast<utf8proc_int32_t>(c);
  for (utf8proc_int32_t v : {utf8proc_tolower(ci), utf8proc_toupper(ci), utf8proc_totitle(ci)}) {
    if (v != ci && (is_letter(static_cast<char32_t>(v)) || is_number(static_cast<char32_t>(v)))) {
      return true;
    }
  }
  return false;
}

namespace {

std::u32string utf8proc_transform(std::u32string_view text, utf8proc_option_t options) {
  const std::string in = utf8::encode(text);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t len =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                   static_cast<utf8proc_ssize_t>(in.size()), &out, options);
  if (len < 0 || out == nullptr) {
    std::free(out);
    return std::u32string(text);  // cannot happen for valid scalar values; keep the text as is
  }
  std::u32string result =
      utf8::decode(std::string_view(reinterpret_cast<const char*>(out), static_cast<size_t>(len)));
  std::free(out);
  return result;
}

}  // namespace

std::u32string nfc(std::u32string_view text) {
  bool simple = true;
  // Below U+0300 every character is NFC-stable and none combines with a neighbour.
  for (char32_t c : text) {
    if (c >= 0x300) {
      simple = false;
      break;
    }
  }
  if (simple) return std::u32string(text);
  return utf8proc_transform(text,
                            static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
}

std::u32string nfkc_char(char32_t c) {
  return utf8proc_transform(
      std::u32string_view(&c, 1),
      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
}

namespace {

// Case_Ignorable: Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter / MidNumLet / Single_Quote.
bool is_case_ignorable(char32_t c) {
  switch (c) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0xB7:
    case 0x387:
    case 0x55F:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return true;
    default:
      break;
  }
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
         cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

// Cased: Lu, Ll, Lt, or Other_Lowercase / Other_Uppercase (approximated by having a case mapping
// or utf8proc's lower/upper flag).
bool is_cased(char32_t c) {
  const auto ci = static_cast<utf8proc_int32_t>(c);
  const auto cat = utf8proc_category(ci);
  if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT)
    return true;
  if (utf8proc_islower(ci) || utf8proc_isupper(ci)) return true;
  return utf8proc_tolower(ci) != ci || utf8proc_toupper(ci) != ci || utf8proc_totitle(ci) != ci;
}

bool final_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  char32_t c = 0;
  bool found = false;
  while (j > 0) {
    c = s[--j];
    if (!is_case_ignorable(c)) {
      found = true;
      break;
    }
  }
  if (!found || !is_cased(c)) return false;
  for (size_t k = i + 1; k < s.size(); ++k) {
    if (!is_case_ignorable(s[k])) return !is_cased(s[k]);
  }
  return true;
}

}  // namespace

std::u32string py_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {
      out.push_back(U'i');  // SpecialCasing: İ -> i + COMBINING DOT ABOVE
      out.push_back(0x307);
    } else if (c == 0x3A3) {
      out.push_back(final_sigma(text, i) ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

}  // namespace zsclip::text
