// Internal: integers read from untrusted JSON (head files, index.json) with their width and sign
// checked. nlohmann's get<int>() narrows silently (2^40 reads as 0), accepts 1.5 as 1, and
// get<int64_t>() wraps an unsigned value above INT64_MAX to a negative one.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "zsclip/error.h"

namespace zsclip::detail {

// j.at(key) (a missing key throws nlohmann's out_of_range, as at() does) as an integer in
// [min_value, max_value]; else Error(code, "ORIGIN: field 'KEY' must be an integer in [MIN, MAX],
// got VALUE").
inline int64_t json_int(const nlohmann::json& j, const char* key, int64_t min_value,
                        int64_t max_value, const std::string& origin,
                        ErrorCode code = ErrorCode::kInvalidConfig) {
  const nlohmann::json& v = j.at(key);
  const bool ok = v.is_number_integer() &&
                  !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) &&
                  v.get<int64_t>() >= min_value && v.get<int64_t>() <= max_value;
  if (!ok)
    throw Error(code, origin + ": field '" + key + "' must be an integer in [" +
                          std::to_string(min_value) + ", " + std::to_string(max_value) + "], got " +
                          v.dump());
  return v.get<int64_t>();
}

}  // namespace zsclip::detail
