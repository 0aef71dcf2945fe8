// Base64 (RFC 4648, standard alphabet) for BYTES tensor elements sent in plain JSON bodies.
#pragma once

#include <string>
#include <string_view>

namespace zsclip::server {

std::string base64_encode(std::string_view bytes);
// Decodes `text` (padding optional; whitespace and other characters are refused). Returns false
// and sets `error` (naming the offending offset) when `text` is not base64.
bool base64_decode(std::string_view text, std::string* out, std::string* error);

}  // namespace zsclip::server
