// Internal: checks that a caller's HostTensor is what it claims to be before any code indexes it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "zsclip/error.h"
#include "zsclip/tensor.h"

namespace zsclip::detail {

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// Throws Error(kInvalidArgument) naming `name` unless every dimension is >= 0 and their product
// equals data.size(): a shape that promises more values than the data holds would be read past
// the end.
template <typename T>
void check_tensor(const HostTensor<T>& t, const std::string& name) {
  uint64_t count = 1;
  for (int64_t d : t.shape) {
    if (d < 0)
      throw Error(ErrorCode::kInvalidArgument,
                  name + ": shape " + shape_string(t.shape) + " has a negative dimension");
    if (d != 0 && count > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) /
                              static_cast<uint64_t>(d))
      throw Error(ErrorCode::kInvalidArgument,
                  name + ": shape " + shape_string(t.shape) + " is too large");
    count *= static_cast<uint64_t>(d);
  }
  if (count != t.data.size())
    throw Error(ErrorCode::kInvalidArgument,
                name + ": shape " + shape_string(t.shape) + " needs " + std::to_string(count) +
                    " values, but the data holds " + std::to_string(t.data.size()));
}

// Throws Error(kInvalidArgument) naming the first NaN or infinity among n values, as row and
// column of rows of `row_length` values.
inline void check_finite(const float* values, size_t n, size_t row_length,
                         const std::string& name) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(values[i]))
      throw Error(ErrorCode::kInvalidArgument, name + ": value " + std::to_string(values[i]) +
                                                   " at [" + std::to_string(i / row_length) + ", " +
                                                   std::to_string(i % row_length) +
                                                   "] is not finite");
}

}  // namespace zsclip::detail
