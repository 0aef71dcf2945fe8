// Pillow-exact resampling, written from the algorithm's description (see include/zsclip/image.h):
// separable passes, horizontal first into clipped 8-bit, fixed-point weights with 22 fraction bits.
#include "image/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "zsclip/error.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

namespace zsclip::detail {
namespace {

constexpr int kPrecisionBits = 22;

double bicubic_kernel(double x) {
  // Keys' cubic convolution with a = -0.5, support 2.
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double bilinear_kernel(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Fixed-point weights of one pass, for outputs [out_begin, out_end).
struct Coefficients {
  int ksize = 0;
  std::vector<int> first;        // first input index per output
  std::vector<int> count;        // number of inputs per output
  std::vector<int32_t> weights;  // ksize per output
};

void compute_coefficients(int in_size, int out_size, int out_begin, int out_end,
                          Interpolation interpolation, Coefficients* c) {
  const bool cubic = interpolation == Interpolation::kBicubic;
  const double support_base = cubic ? 2.0 : 1.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support_base * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const int n = out_end - out_begin;
  c->ksize = ksize;
  c->first.assign(n, 0);
  c->count.assign(n, 0);
  c->weights.assign(static_cast<size_t>(n) * ksize, 0);
  std::vector<double> k(ksize);
  const double ss = 1.0 / filterscale;
  for (int o = out_begin; o < out_end; ++o) {
    const double center = (o + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    const int cnt = std::max(xmax - xmin, 0);
    double total = 0.0;
    for (int j = 0; j < cnt; ++j) {
      const double arg = (j + xmin - center + 0.5) * ss;
      const double w = cubic ? bicubic_kernel(arg) : bilinear_kernel(arg);
      k[j] = w;
      total += w;
    }
    int32_t* out = &c->weights[static_cast<size_t>(o - out_begin) * ksize];
    for (int j = 0; j < cnt; ++j) {
      const double w = total != 0.0 ? k[j] / total : k[j];
      const double f = w * (1 << kPrecisionBits);
      out[j] = static_cast<int32_t>(w < 0 ? f - 0.5 : f + 0.5);
    }
    c->first[o - out_begin] = xmin;
    c->count[o - out_begin] = cnt;
  }
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows [row_begin, row_end) of src; output rows are packed (n_out * C bytes).
template <int C>
void horizontal_pass(const PixelView& src, int row_begin, int row_end, const Coefficients& co,
                     uint8_t* dst) {
  const int n_out = static_cast<int>(co.first.size());
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* in = src.data + static_cast<size_t>(y) * src.stride;
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * n_out * C;
    for (int x = 0; x < n_out; ++x) {
      const int32_t* w = &co.weights[static_cast<size_t>(x) * co.ksize];
      const uint8_t* p = in + static_cast<size_t>(co.first[x]) * C;
      const int cnt = co.count[x];
      int32_t acc[C];
      for (int c = 0; c < C; ++c) acc[c] = 1 << (kPrecisionBits - 1);
      for (int j = 0; j < cnt; ++j) {
        const int32_t wj = w[j];
        for (int c = 0; c < C; ++c) acc[c] += p[j * C + c] * wj;
      }
      for (int c = 0; c < C; ++c) out[x * C + c] = clip8(acc[c]);
    }
  }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define ZSCLIP_HAVE_SSE41_PATH 1
// The same integer arithmetic, one pixel's channels per SSE4.1 lane group (exact: 32-bit products).
template <int C>
__attribute__((target("sse4.1"))) void horizontal_pass_sse41(const PixelView& src, int row_begin,
                                                             int row_end, const Coefficients& co,
                                                             uint8_t* dst) {
  const int n_out = static_cast<int>(co.first.size());
  const __m128i round = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* in = src.data + static_cast<size_t>(y) * src.stride;
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * n_out * C;
    for (int x = 0; x < n_out; ++x) {
      const int32_t* w = &co.weights[static_cast<size_t>(x) * co.ksize];
      const int first = co.first[x];
      int cnt = co.count[x];
      // A 4-byte load of a 3-byte pixel reads one byte past it: never past the row's end.
      const bool last_is_edge = C == 3 && cnt > 0 && first + cnt == src.width;
      if (last_is_edge) --cnt;
      const uint8_t* p = in + static_cast<size_t>(first) * C;
      __m128i acc = round;
      for (int j = 0; j < cnt; ++j) {
        int32_t px;
        std::memcpy(&px, p + j * C, 4);
        const __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(w[j])));
      }
      if (last_is_edge) {
        const uint8_t* q = p + cnt * C;
        const __m128i v = _mm_setr_epi32(q[0], q[1], q[2], 0);
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(w[cnt])));
      }
      const __m128i shifted = _mm_srai_epi32(acc, kPrecisionBits);
      const __m128i packed =
          _mm_packus_epi16(_mm_packs_epi32(shifted, shifted), shifted);  // clip to 0..255
      const int32_t bytes = _mm_cvtsi128_si32(packed);
      if (C == 4) {
        std::memcpy(out + x * 4, &bytes, 4);
      } else {
        std::memcpy(out + x * 3, &bytes, 3);
      }
    }
  }
}

// One channel: four taps per step, summed across lanes at the end (integer addition is
// associative).
__attribute__((target("sse4.1"))) void horizontal_pass_sse41_gray(const PixelView& src,
                                                                  int row_begin, int row_end,
                                                                  const Coefficients& co,
                                                                  uint8_t* dst) {
  const int n_out = static_cast<int>(co.first.size());
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* in = src.data + static_cast<size_t>(y) * src.stride;
    uint8_t* out = dst + static_cast<size_t>(y - row_begin) * n_out;
    for (int x = 0; x < n_out; ++x) {
      const int32_t* w = &co.weights[static_cast<size_t>(x) * co.ksize];
      const uint8_t* p = in + co.first[x];
      const int cnt = co.count[x];
      __m128i acc = _mm_setzero_si128();
      int j = 0;
      for (; j + 4 <= cnt; j += 4) {
        int32_t px;
        std::memcpy(&px, p + j, 4);
        const __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
        acc = _mm_add_epi32(
            acc, _mm_mullo_epi32(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + j))));
      }
      acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(1, 0, 3, 2)));
      acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(2, 3, 0, 1)));
      int32_t sum = (1 << (kPrecisionBits - 1)) + _mm_cvtsi128_si32(acc);
      for (; j < cnt; ++j) sum += p[j] * w[j];
      out[x] = clip8(sum);
    }
  }
}
#endif

void horizontal_dispatch(const PixelView& src, int row_begin, int row_end, const Coefficients& co,
                         uint8_t* dst) {
#ifdef ZSCLIP_HAVE_SSE41_PATH
  static const bool sse41 = __builtin_cpu_supports("sse4.1");
  if (sse41 && src.channels == 3) return horizontal_pass_sse41<3>(src, row_begin, row_end, co, dst);
  if (sse41 && src.channels == 4) return horizontal_pass_sse41<4>(src, row_begin, row_end, co, dst);
  if (sse41 && src.channels == 1)
    return horizontal_pass_sse41_gray(src, row_begin, row_end, co, dst);
#endif
  switch (src.channels) {
    case 1:
      return horizontal_pass<1>(src, row_begin, row_end, co, dst);
    case 3:
      return horizontal_pass<3>(src, row_begin, row_end, co, dst);
    case 4:
      return horizontal_pass<4>(src, row_begin, row_end, co, dst);
    default:
      return horizontal_pass<2>(src, row_begin, row_end, co, dst);
  }
}

// Vertical pass: `rows` points at input row `row_offset` of the (horizontally resized) image.
void vertical_pass(const uint8_t* rows, size_t row_stride, int row_offset, int row_bytes,
                   const Coefficients& co, uint8_t* dst, std::vector<int32_t>& acc) {
  const int n_out = static_cast<int>(co.first.size());
  acc.resize(row_bytes);
  for (int y = 0; y < n_out; ++y) {
    const int32_t* w = &co.weights[static_cast<size_t>(y) * co.ksize];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    int32_t* a = acc.data();
    for (int j = 0; j < co.count[y]; ++j) {
      const uint8_t* p = rows + static_cast<size_t>(co.first[y] + j - row_offset) * row_stride;
      const int32_t wj = w[j];
      for (int i = 0; i < row_bytes; ++i) a[i] += p[i] * wj;
    }
    uint8_t* out = dst + static_cast<size_t>(y) * row_bytes;
    for (int i = 0; i < row_bytes; ++i) out[i] = clip8(a[i]);
  }
}

// Pillow's nearest resize is an affine scale: source coordinate starts at scale/2 and grows by
// `scale` per pixel (accumulated in double), truncated to an index.
// Returns the indices for outputs [begin, end) (the sum still runs from output 0).
std::vector<int> nearest_table(int in_size, int out_size, int begin, int end) {
  std::vector<int> t(end - begin);
  const double scale = static_cast<double>(in_size) / out_size;
  double pos = scale * 0.5;
  for (int i = 0; i < end; ++i) {
    if (i >= begin) {
      const int v = pos < 0.0 ? -1 : static_cast<int>(pos);
      t[i - begin] = std::min(std::max(v, 0), in_size - 1);
    }
    pos += scale;
  }
  return t;
}

}  // namespace

void resample_region(const PixelView& src, int out_w, int out_h, Interpolation interpolation,
                     int x0, int y0, int x1, int y1, uint8_t* dst) {
  const int C = src.channels;
  if (out_w < 1 || out_h < 1 || src.width < 1 || src.height < 1 || C < 1 || C > 4 || x0 < 0 ||
      y0 < 0 || x1 > out_w || y1 > out_h || x0 >= x1 || y0 >= y1)
    throw Error(ErrorCode::kInvalidArgument, "resample: invalid sizes or region");
  const int region_w = x1 - x0;
  const size_t row_bytes = static_cast<size_t>(region_w) * C;

  if (interpolation == Interpolation::kNearest) {
    const std::vector<int> xt = nearest_table(src.width, out_w, x0, x1);
    const std::vector<int> yt = nearest_table(src.height, out_h, y0, y1);
    for (int y = y0; y < y1; ++y) {
      const uint8_t* in = src.data + static_cast<size_t>(yt[y - y0]) * src.stride;
      uint8_t* out = dst + static_cast<size_t>(y - y0) * row_bytes;
      for (int x = x0; x < x1; ++x)
        for (int c = 0; c < C; ++c)
          out[(x - x0) * C + c] = in[static_cast<size_t>(xt[x - x0]) * C + c];
    }
    return;
  }

  thread_local Coefficients hco, vco;
  thread_local std::vector<uint8_t> temp;
  thread_local std::vector<int32_t> acc;
  const bool need_h = out_w != src.width;
  const bool need_v = out_h != src.height;

  // Input rows the vertical pass reads (all output rows' windows).
  int row_begin = y0, row_end = y1;
  if (need_v) {
    compute_coefficients(src.height, out_h, y0, y1, interpolation, &vco);
    row_begin = src.height;
    row_end = 0;
    for (size_t i = 0; i < vco.first.size(); ++i) {
      if (vco.count[i] == 0) continue;
      row_begin = std::min(row_begin, vco.first[i]);
      row_end = std::max(row_end, vco.first[i] + vco.count[i]);
    }
    if (row_begin >= row_end) row_begin = row_end = 0;
  }

  const uint8_t* hrows;  // row `row_begin` of the horizontally resized region
  size_t hstride;
  if (need_h) {
    compute_coefficients(src.width, out_w, x0, x1, interpolation, &hco);
    uint8_t* target = dst;
    if (need_v) {
      temp.resize(static_cast<size_t>(row_end - row_begin) * row_bytes);
      target = temp.data();
    }
    horizontal_dispatch(src, row_begin, row_end, hco, target);
    if (!need_v) return;
    hrows = temp.data();
    hstride = row_bytes;
  } else {
    hrows = src.data + static_cast<size_t>(row_begin) * src.stride + static_cast<size_t>(x0) * C;
    hstride = src.stride;
    if (!need_v) {
      for (int y = y0; y < y1; ++y)
        std::copy_n(hrows + static_cast<size_t>(y - y0) * hstride, row_bytes,
                    dst + static_cast<size_t>(y - y0) * row_bytes);
      return;
    }
  }
  vertical_pass(hrows, hstride, row_begin, static_cast<int>(row_bytes), vco, dst, acc);
}

void premultiply_alpha(uint8_t* p, size_t count) {
  for (size_t i = 0; i < count; ++i, p += 4) {
    const unsigned a = p[3];
    for (int c = 0; c < 3; ++c) {
      const unsigned t = p[c] * a + 128;  // x * a / 255, rounded
      p[c] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
    }
  }
}

void unpremultiply_alpha(uint8_t* p, size_t count) {
  for (size_t i = 0; i < count; ++i, p += 4) {
    const unsigned a = p[3];
    if (a == 0 || a == 255) continue;
    for (int c = 0; c < 3; ++c) {
      const unsigned v = (255u * p[c]) / a;  // truncating, clipped
      p[c] = static_cast<uint8_t>(v > 255 ? 255 : v);
    }
  }
}

}  // namespace zsclip::detail
