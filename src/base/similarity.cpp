#include "zsclip/similarity.h"

#include <cmath>
#include <string>

#include "zsclip/error.h"

namespace zsclip {
namespace {

double norm(const float* v, int64_t d) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) s += double(v[k]) * v[k];
  return std::sqrt(s);
}

void scale_to_unit(float* v, int64_t d) {
  const double n = norm(v, d);
  if (!(n > 0)) return;
  for (int64_t k = 0; k < d; ++k) v[k] = static_cast<float>(v[k] / n);
}

void require_2d(const FloatTensor& x, const char* what) {
  if (x.dim() != 2)
    throw Error(ErrorCode::kInvalidArgument, std::string(what) +
                                                 ": expected a 2-D [N, D] tensor, got " +
                                                 std::to_string(x.dim()) + " dimensions");
}

}  // namespace

std::vector<float> normalized(std::vector<float> v) {
  scale_to_unit(v.data(), static_cast<int64_t>(v.size()));
  return v;
}

void normalize_rows(FloatTensor& x) {
  require_2d(x, "normalize_rows");
  for (int64_t i = 0; i < x.size(0); ++i) scale_to_unit(x.row(i), x.size(1));
}

float cosine_similarity(const float* a, const float* b, int64_t d) {
  const double na = norm(a, d), nb = norm(b, d);
  if (!(na > 0) || !(nb > 0)) return 0.f;
  double dot = 0;
  for (int64_t k = 0; k < d; ++k) dot += double(a[k]) * b[k];
  return static_cast<float>(dot / (na * nb));
}

float cosine_similarity(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size())
    throw Error(ErrorCode::kInvalidArgument, "cosine_similarity: sizes " +
                                                 std::to_string(a.size()) + " and " +
                                                 std::to_string(b.size()) + " differ");
  return cosine_similarity(a.data(), b.data(), static_cast<int64_t>(a.size()));
}

FloatTensor cosine_similarity(const FloatTensor& a, const FloatTensor& b) {
  require_2d(a, "cosine_similarity");
  require_2d(b, "cosine_similarity");
  if (a.size(1) != b.size(1))
    throw Error(ErrorCode::kInvalidArgument, "cosine_similarity: widths " +
                                                 std::to_string(a.size(1)) + " and " +
                                                 std::to_string(b.size(1)) + " differ");
  FloatTensor out({a.size(0), b.size(0)});
  for (int64_t i = 0; i < a.size(0); ++i)
    for (int64_t j = 0; j < b.size(0); ++j)
      out.at(i, j) = cosine_similarity(a.row(i), b.row(j), a.size(1));
  return out;
}

}  // namespace zsclip
