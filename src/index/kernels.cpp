#include "index/kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define ZSCLIP_X86 1
#endif

namespace zsclip::index_detail {

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: value = man * 2^-24, exact in float32
    float f = std::ldexp(static_cast<float>(man), -24);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | (abs > 0x7f800000u ? 0x7e00 : 0x7c00);  // NaN, inf
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                       // below the smallest normal half (2^-14)
    if (abs < 0x33000000u) return sign;          // below half of the smallest subnormal (2^-25)
    const uint32_t exp = abs >> 23, man = (abs & 0x7fffff) | 0x800000;
    const uint32_t shift =
        126 - exp;  // value = man * 2^(exp-150); in units of 2^-24: man >> (126-exp)
    uint32_t q = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1))) ++q;
    return sign | static_cast<uint16_t>(q);
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: still right
  return sign | static_cast<uint16_t>(h);
}

namespace {

std::atomic<bool> g_force_portable{false};

// ---- portable loops: eight independent partial sums, which compilers vectorise ----
inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int i = 0; i < 8; ++i) acc[i] += a[k + i] * b[k + i];
  float tail = 0;
  for (; k < n; ++k) tail += a[k] * b[k];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

void widen_portable(const uint16_t* src, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = half_to_float(src[i]);
}

void dot_rows_portable(const void* rows, IndexDtype dtype, int64_t n, int64_t d, const float* q,
                       float* out) {
  if (dtype == IndexDtype::kFloat32) {
    const float* r = static_cast<const float*>(rows);
    for (int64_t i = 0; i < n; ++i) out[i] = dot_f32(r + i * d, q, d);
    return;
  }
  std::vector<float> buf(static_cast<size_t>(d));
  const uint16_t* r = static_cast<const uint16_t*>(rows);
  for (int64_t i = 0; i < n; ++i) {
    widen_portable(r + i * d, d, buf.data());
    out[i] = dot_f32(buf.data(), q, d);
  }
}

#ifdef ZSCLIP_X86
#define ZSCLIP_SIMD __attribute__((target("avx2,fma,f16c")))

ZSCLIP_SIMD inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
ZSCLIP_SIMD inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
ZSCLIP_SIMD inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
inline float scalar(float x) { return x; }
inline float scalar(uint16_t x) { return half_to_float(x); }

// Two rows at a time share each load of the query; two accumulators per row hide FMA latency.
template <typename T>
ZSCLIP_SIMD void dot_rows_simd(const T* r, int64_t n, int64_t d, const float* q, float* out) {
  const int64_t d8 = d / 8 * 8, d16 = d / 16 * 16;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const T* a = r + i * d;
    const T* b = a + d;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(),
           b1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k < d16; k += 16) {
      const __m256 q0 = load8(q + k), q1 = load8(q + k + 8);
      a0 = _mm256_fmadd_ps(load8(a + k), q0, a0);
      a1 = _mm256_fmadd_ps(load8(a + k + 8), q1, a1);
      b0 = _mm256_fmadd_ps(load8(b + k), q0, b0);
      b1 = _mm256_fmadd_ps(load8(b + k + 8), q1, b1);
    }
    for (; k < d8; k += 8) {
      const __m256 q0 = load8(q + k);
      a0 = _mm256_fmadd_ps(load8(a + k), q0, a0);
      b0 = _mm256_fmadd_ps(load8(b + k), q0, b0);
    }
    float sa = hsum(_mm256_add_ps(a0, a1)), sb = hsum(_mm256_add_ps(b0, b1));
    for (; k < d; ++k) {
      sa += scalar(a[k]) * q[k];
      sb += scalar(b[k]) * q[k];
    }
    out[i] = sa;
    out[i + 1] = sb;
  }
  for (; i < n; ++i) {  // the same operations in the same order as a row of a pair
    const T* a = r + i * d;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k < d16; k += 16) {
      a0 = _mm256_fmadd_ps(load8(a + k), load8(q + k), a0);
      a1 = _mm256_fmadd_ps(load8(a + k + 8), load8(q + k + 8), a1);
    }
    for (; k < d8; k += 8) a0 = _mm256_fmadd_ps(load8(a + k), load8(q + k), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; k < d; ++k) s += scalar(a[k]) * q[k];
    out[i] = s;
  }
}

ZSCLIP_SIMD void widen_simd(const uint16_t* src, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(src + i));
  for (; i < n; ++i) out[i] = half_to_float(src[i]);
}

ZSCLIP_SIMD void narrow_simd(const float* src, int64_t n, uint16_t* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(
        reinterpret_cast<__m128i*>(out + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) out[i] = float_to_half(src[i]);
}

// Four float32 rows x two queries per step: six loads feed eight FMAs, all accumulators in
// registers (written out: an array of accumulators is kept in memory by GCC at -O2, 8x slower).
ZSCLIP_SIMD void dot_block_simd(const float* r, int64_t n, int64_t d, const float* qs, int64_t nq,
                                float* out) {
  const int64_t d8 = d / 8 * 8;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float *r0 = r + i * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
    int64_t j = 0;
    for (; j + 2 <= nq; j += 2) {
      const float* q0 = qs + j * d;
      const float* q1 = q0 + d;
      __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
             c11 = _mm256_setzero_ps();
      __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(),
             c31 = _mm256_setzero_ps();
      for (int64_t k = 0; k < d8; k += 8) {
        const __m256 x0 = _mm256_loadu_ps(q0 + k), x1 = _mm256_loadu_ps(q1 + k);
        __m256 v = _mm256_loadu_ps(r0 + k);
        c00 = _mm256_fmadd_ps(v, x0, c00);
        c01 = _mm256_fmadd_ps(v, x1, c01);
        v = _mm256_loadu_ps(r1 + k);
        c10 = _mm256_fmadd_ps(v, x0, c10);
        c11 = _mm256_fmadd_ps(v, x1, c11);
        v = _mm256_loadu_ps(r2 + k);
        c20 = _mm256_fmadd_ps(v, x0, c20);
        c21 = _mm256_fmadd_ps(v, x1, c21);
        v = _mm256_loadu_ps(r3 + k);
        c30 = _mm256_fmadd_ps(v, x0, c30);
        c31 = _mm256_fmadd_ps(v, x1, c31);
      }
      const __m256 acc[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
      for (int m = 0; m < 4; ++m) {
        const float* row = r0 + m * d;
        float s0 = hsum(acc[2 * m]), s1 = hsum(acc[2 * m + 1]);
        for (int64_t k = d8; k < d; ++k) {
          s0 += row[k] * q0[k];
          s1 += row[k] * q1[k];
        }
        out[(i + m) * nq + j] = s0;
        out[(i + m) * nq + j + 1] = s1;
      }
    }
    for (; j < nq; ++j)
      for (int m = 0; m < 4; ++m)
        dot_rows_simd(r0 + m * d, 1, d, qs + j * d, &out[(i + m) * nq + j]);
  }
  for (; i < n; ++i)
    for (int64_t j = 0; j < nq; ++j) dot_rows_simd(r + i * d, 1, d, qs + j * d, &out[i * nq + j]);
}

bool cpu_has_simd() {
  static const bool has = [] {
    __builtin_cpu_init();
    unsigned a = 0, b = 0, c = 0,
             d = 0;  // F16C: CPUID leaf 1, ECX bit 29 (clang has no "f16c" name)
    const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  }();
  return has;
}
#else
bool cpu_has_simd() { return false; }
#endif

}  // namespace

bool simd_kernels_active() { return cpu_has_simd() && !g_force_portable.load(); }
void force_portable_kernels(bool on) { g_force_portable.store(on); }

void widen(const void* src, IndexDtype dtype, int64_t n, float* out) {
  if (dtype == IndexDtype::kFloat32) {
    std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
#ifdef ZSCLIP_X86
  if (simd_kernels_active()) return widen_simd(static_cast<const uint16_t*>(src), n, out);
#endif
  widen_portable(static_cast<const uint16_t*>(src), n, out);
}

void narrow_to_half(const float* src, int64_t n, uint16_t* out) {
#ifdef ZSCLIP_X86
  if (simd_kernels_active()) return narrow_simd(src, n, out);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = float_to_half(src[i]);
}

void dot_rows(const void* rows, IndexDtype dtype, int64_t n, int64_t d, const float* q,
              float* out) {
#ifdef ZSCLIP_X86
  if (simd_kernels_active()) {
    if (dtype == IndexDtype::kFloat32)
      return dot_rows_simd(static_cast<const float*>(rows), n, d, q, out);
    return dot_rows_simd(static_cast<const uint16_t*>(rows), n, d, q, out);
  }
#endif
  dot_rows_portable(rows, dtype, n, d, q, out);
}

void dot_rows_multi(const void* rows, IndexDtype dtype, int64_t n, int64_t d, const float* queries,
                    int64_t nq, float* out) {
  constexpr int64_t kBlock = 32;  // 32 widened rows of 512 floats: 64 KiB, stays in L2
  std::vector<float> buf;
  const size_t item = dtype == IndexDtype::kFloat16 ? 2 : 4;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = std::min(kBlock, n - i0);
    const void* src = static_cast<const uint8_t*>(rows) + static_cast<size_t>(i0 * d) * item;
    const float* block = static_cast<const float*>(src);
    if (dtype == IndexDtype::kFloat16) {
      buf.resize(static_cast<size_t>(m * d));
      widen(src, dtype, m * d, buf.data());
      block = buf.data();
    }
#ifdef ZSCLIP_X86
    if (simd_kernels_active()) {
      dot_block_simd(block, m, d, queries, nq, out + i0 * nq);
      continue;
    }
#endif
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < nq; ++j)
        out[(i0 + i) * nq + j] = dot_f32(block + i * d, queries + j * d, d);
  }
}

}  // namespace zsclip::index_detail
