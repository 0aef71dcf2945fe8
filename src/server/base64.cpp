#include "server/base64.h"

#include <array>
#include <cstdint>

namespace zsclip::server {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view text, std::string* out, std::string* error) {
  static const std::array<int8_t, 256> table = make_table();
  size_t n = text.size();
  size_t pad = 0;
  while (n > 0 && text[n - 1] == '=' && pad < 2) {
    --n;
    ++pad;
  }
  if (pad > 0 && text.size() % 4 != 0) {
    *error = "padding '=' at a length that is not a multiple of 4";
    return false;
  }
  if (n % 4 == 1) {
    *error = "length " + std::to_string(text.size()) + " is not a valid base64 length";
    return false;
  }
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  auto bad_at = [&](size_t from) {
    for (size_t i = from; i < n; ++i)
      if (table[in[i]] < 0) {
        *error = "character " + std::to_string(static_cast<unsigned>(in[i])) + " at offset " +
                 std::to_string(i) + " is not in the base64 alphabet";
        return false;
      }
    return true;
  };
  out->resize(n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1));
  auto* o = reinterpret_cast<uint8_t*>(out->data());
  size_t i = 0;
  // Four characters -> three bytes; an invalid character has the value -1.
  for (; i + 4 <= n; i += 4, o += 3) {
    const int8_t a = table[in[i]], b = table[in[i + 1]], c = table[in[i + 2]], d = table[in[i + 3]];
    if ((a | b | c | d) < 0) return bad_at(i);
    const uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12) | (uint32_t(c) << 6) | uint32_t(d);
    o[0] = static_cast<uint8_t>(v >> 16);
    o[1] = static_cast<uint8_t>(v >> 8);
    o[2] = static_cast<uint8_t>(v);
  }
  if (i < n) {  // 2 or 3 characters left
    if (!bad_at(i)) return false;
    uint32_t v = (uint32_t(table[in[i]]) << 18) | (uint32_t(table[in[i + 1]]) << 12);
    if (n - i == 3) v |= uint32_t(table[in[i + 2]]) << 6;
    o[0] = static_cast<uint8_t>(v >> 16);
    if (n - i == 3) o[1] = static_cast<uint8_t>(v >> 8);
  }
  return true;
}

}  // namespace zsclip::server
