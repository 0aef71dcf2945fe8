// Model fingerprints (config.json "fingerprint") tie saved heads and indexes to the weights they
// were made with. An empty one (a config.json without "fingerprint", or a head or index that
// records none) identifies nothing: it matches no fingerprint, not even another empty one.
#pragma once

#include <string>

namespace zsclip::detail {

inline bool fingerprints_match(const std::string& a, const std::string& b) {
  return !a.empty() && a == b;
}

// `"<fp>"`, or `no fingerprint` for an empty one (for messages).
inline std::string describe_fingerprint(const std::string& fp) {
  return fp.empty() ? std::string("no fingerprint") : "fingerprint \"" + fp + "\"";
}

}  // namespace zsclip::detail
