#include "text/clean.h"

#include <array>
#include <type_traits>

#include "text/html_unescape.h"
#include "text/unicode.h"

namespace zsclip::text {
namespace {

// Windows-1252 for 0x80-0x9F; the five undefined bytes stay (ftfy's "sloppy" codec).
constexpr std::array<char32_t, 32> kCp1252C1 = {
    0x20AC, 0x81,   0x201A, 0x192,  0x201E, 0x2026, 0x2020, 0x2021, 0x2C6,  0x2030, 0x160,
    0x2039, 0x152,  0x8D,   0x17D,  0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x2DC,  0x2122, 0x161,  0x203A, 0x153,  0x9D,   0x17E,  0x178};

// ftfy's fix_latin_ligatures table.
const char32_t* ligature(char32_t c) {
  switch (c) {
    case 0x132:
      return U"IJ";
    case 0x133:
      return U"ij";
    case 0x149:
      return U"\u02BCn";
    case 0x1F1:
      return U"DZ";
    case 0x1F2:
      return U"Dz";
    case 0x1F3:
      return U"dz";
    case 0x1C4:
      return U"D\u017D";
    case 0x1C5:
      return U"D\u017E";
    case 0x1C6:
      return U"d\u017E";
    case 0x1C7:
      return U"LJ";
    case 0x1C8:
      return U"Lj";
    case 0x1C9:
      return U"lj";
    case 0x1CA:
      return U"NJ";
    case 0x1CB:
      return U"Nj";
    case 0x1CC:
      return U"nj";
    case 0xFB00:
      return U"ff";
    case 0xFB01:
      return U"fi";
    case 0xFB02:
      return U"fl";
    case 0xFB03:
      return U"ffi";
    case 0xFB04:
      return U"ffl";
    case 0xFB05:
      return U"\u017Ft";
    case 0xFB06:
      return U"st";
    default:
      return nullptr;
  }
}

// ftfy's width map: U+FF01..U+FFEF -> NFKC where that differs, computed once from utf8proc.
const std::array<std::u32string, 0xFFF0 - 0xFF01>& width_map() {
  static const auto* table = [] {
    auto* t = new std::array<std::u32string, 0xFFF0 - 0xFF01>();
    for (char32_t c = 0xFF01; c < 0xFFF0; ++c) {
      std::u32string alt = nfkc_char(c);
      if (alt != std::u32string(1, c)) (*t)[c - 0xFF01] = std::move(alt);
    }
    return t;
  }();
  return *table;
}

bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

bool is_ascii_alpha(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

std::u32string ftfy_fix(std::u32string_view in) {
  bool plain = true;  // pure printable ASCII plus \t \n: every fix below is the identity
  for (char32_t c : in) {
    if (c >= 0x7F || (c < 0x20 && c != '\t' && c != '\n')) {
      plain = false;
      break;
    }
  }
  if (plain) return std::u32string(in);

  std::u32string s;
  s.reserve(in.size());
  // remove_terminal_escapes: ESC [ (digits|;)* letter
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == 0x1B && i + 1 < in.size() && in[i + 1] == '[') {
      size_t k = i + 2;
      while (k < in.size() && ((in[k] >= '0' && in[k] <= '9') || in[k] == ';')) ++k;
      if (k < in.size() && is_ascii_alpha(in[k])) {
        i = k;
        continue;
      }
    }
    s.push_back(in[i]);
  }
  // fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes (per character)
  std::u32string t;
  t.reserve(s.size());
  for (char32_t c : s) {
    if (c >= 0x80 && c <= 0x9F) c = kCp1252C1[c - 0x80];
    if (const char32_t* lig = ligature(c)) {
      for (; *lig; ++lig) {
        const char32_t l = *lig;
        t.push_back(l == 0x2BC ? U'\'' : l);  // ŉ's ʼ is then uncurled
      }
      continue;
    }
    if (c == 0x3000) {
      t.push_back(' ');
      continue;
    }
    if (c >= 0xFF01 && c < 0xFFF0) {
      const std::u32string& alt = width_map()[c - 0xFF01];
      if (!alt.empty()) {
        for (char32_t a : alt) {
          if (a == 0x2BC || (a >= 0x2018 && a <= 0x201B))
            a = '\'';
          else if (a >= 0x201C && a <= 0x201F)
            a = '"';
          t.push_back(a);
        }
        continue;
      }
    }
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B))
      c = '\'';
    else if (c >= 0x201C && c <= 0x201F)
      c = '"';
    t.push_back(c);
  }
  // fix_line_breaks
  s.clear();
  for (size_t i = 0; i < t.size(); ++i) {
    const char32_t c = t[i];
    if (c == '\r') {
      if (i + 1 < t.size() && t[i + 1] == '\n') ++i;
      s.push_back('\n');
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      s.push_back('\n');
    } else {
      s.push_back(c);
    }
  }
  // NFC, then remove_control_chars
  t = nfc(s);
  s.clear();
  for (char32_t c : t) {
    if (!is_removed_control(c)) s.push_back(c);
  }
  return s;
}

std::u32string_view py_strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::u32string basic_clean(std::u32string_view text) {
  std::u32string s = ftfy_fix(text);
  s = html_unescape(html_unescape(s));
  return std::u32string(py_strip(s));
}

std::u32string whitespace_clean(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  bool in_space = false;
  for (char32_t c : text) {
    if (is_py_space(c)) {
      in_space = true;
    } else {
      if (in_space && !out.empty()) out.push_back(' ');
      in_space = false;
      out.push_back(c);
    }
  }
  return out;
}

std::u32string normalize_text(std::string_view utf8) {
  return py_lower(whitespace_clean(basic_clean(utf8::decode(utf8))));
}

bool is_ascii_punctuation(char32_t c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}

std::u32string canonicalize(std::u32string_view text, bool ftfy) {
  std::u32string s = ftfy ? ftfy_fix(text) : std::u32string(text);
  s = html_unescape(html_unescape(s));
  std::u32string kept;
  kept.reserve(s.size());
  for (char32_t c : py_strip(s)) {
    if (c == '_')
      kept.push_back(' ');
    else if (!is_ascii_punctuation(c))
      kept.push_back(c);
  }
  return whitespace_clean(py_lower(kept));
}

std::u32string siglip_canonicalize(std::u32string_view text) {
  std::u32string kept;
  kept.reserve(text.size());
  for (char32_t c : text)
    if (!is_ascii_punctuation(c)) kept.push_back(c);
  return whitespace_clean(kept);
}

namespace {

// A literal of the pattern matched under IGNORECASE on lower-cased text: 's' also matches 'ſ'.
template <typename CharT>
char32_t at(std::basic_string_view<CharT> text, size_t k) {
  return static_cast<char32_t>(static_cast<std::make_unsigned_t<CharT>>(text[k]));
}

template <typename CharT>
bool match_literal(std::basic_string_view<CharT> text, size_t pos, std::u32string_view lit) {
  if (text.size() - pos < lit.size()) return false;
  for (size_t k = 0; k < lit.size(); ++k) {
    const char32_t c = at(text, pos + k);
    if (c == lit[k]) continue;
    if (lit[k] == 's' && (c == 'S' || c == 0x17F)) continue;
    if (is_ascii_alpha(lit[k]) && c == lit[k] - 32) continue;
    return false;
  }
  return true;
}

}  // namespace

template <typename CharT>
std::vector<Piece> split_pieces_impl(std::basic_string_view<CharT> text, const Specials& specials) {
  const std::u32string_view kSot = specials.sot;
  const std::u32string_view kEot = specials.eot;
  static constexpr std::u32string_view kContractions[] = {U"'s", U"'t",  U"'re", U"'ve",
                                                          U"'m", U"'ll", U"'d"};
  std::vector<Piece> pieces;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const char32_t c = static_cast<char32_t>(static_cast<std::make_unsigned_t<CharT>>(text[i]));
    if (c == '<') {
      if (match_literal(text, i, kSot)) {
        pieces.push_back({i, i + kSot.size()});
        i += kSot.size();
        continue;
      }
      if (match_literal(text, i, kEot)) {
        pieces.push_back({i, i + kEot.size()});
        i += kEot.size();
        continue;
      }
    } else if (c == '\'') {
      bool matched = false;
      for (std::u32string_view lit : kContractions) {
        if (match_literal(text, i, lit)) {
          pieces.push_back({i, i + lit.size()});
          i += lit.size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    if (is_letter(c)) {
      size_t k = i + 1;
      while (k < n && is_letter(at(text, k))) ++k;
      pieces.push_back({i, k});
      i = k;
      continue;
    }
    if (is_number(c)) {
      pieces.push_back({i, i + 1});
      ++i;
      continue;
    }
    if (is_py_space(c) || is_pattern_orphan(c)) {
      ++i;
      continue;
    }
    size_t k = i + 1;
    while (k < n && !is_py_space(at(text, k)) && !is_letter(at(text, k)) &&
           !is_number(at(text, k)) && !is_pattern_orphan(at(text, k))) {
      ++k;
    }
    pieces.push_back({i, k});
    i = k;
  }
  return pieces;
}

const Specials& openai_specials() {
  static const Specials s{U"<|startoftext|>", U"<|endoftext|>"};
  return s;
}

std::vector<Piece> split_pieces(std::u32string_view text, const Specials& specials) {
  return split_pieces_impl(text, specials);
}
std::vector<Piece> split_pieces(std::string_view ascii, const Specials& specials) {
  return split_pieces_impl(ascii, specials);
}

bool ascii_fast_path(std::string_view text, std::string& out) {
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    // Non-ASCII, '&' (HTML), DEL and controls other than \t \n \f \r take the full path.
    if (c >= 0x7F || c == '&' || (c < 0x20 && c != '\t' && c != '\n' && c != '\f' && c != '\r'))
      return false;
  }
  out.clear();
  out.reserve(text.size());
  bool in_space = false;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(' ');
    in_space = false;
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
  }
  return true;
}

}  // namespace zsclip::text
