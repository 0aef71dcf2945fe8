// zsclip's own float32 linear layer for few rows on AVX2 (see rows_kernel.h).
//
// Why: oneDNN 2.6's AVX2 1x1 convolution, which runs the float32 linear layers below AVX-512, is
// tuned for hundreds of rows (its "spatial" dimension). At a prompt's 9 rows it reaches about 46
// GFLOP/s a core, reading the weights from memory at 10 GB/s where a core can read 33. Here each
// thread takes whole panels of 4 blocks of 8 outputs of the weights (oneDNN's OIhw8i8o layout, read
// as it is: for one block the 8 outputs' weights of input k are the 8 floats at 8k, and the blocks
// are consecutive), and a pass keeps 3 rows x 4 blocks = 12 sums in registers (7 loads a 12 FMAs).
// The first pass over a panel reads its weights from memory, the next ones from L2 while they
// prefetch the next panel, so every pass but the very first runs from cache: 9 rows x 512 x 2048
// at 109 GFLOP/s on one core (the convolution: about 48), 50 x 768 x 3072 at 111 (99-107).
// Each output is one fused multiply-add chain over k in order, float32 throughout.
#include "model/rows_kernel.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ZSCLIP_ROWS_KERNEL 1
#endif

namespace zsclip::detail {

#ifdef ZSCLIP_ROWS_KERNEL
namespace {

// R rows x B blocks of 8 outputs: y[r, 8 b + j] = bias + sum_k x[r, k] w_b[8 k + j], where w_b is
// block b's [K][8] weights (blocks `stride` floats apart). `valid`: outputs of the last block that
// exist (8 unless N is not a multiple of 8). Meanwhile it asks for `pf_lines` cache lines from
// `pf` (the next panel's weights, into L2; at most K).
template <int R, int B>
__attribute__((target("avx2,fma"))) void tile(const float* x, int64_t ldx, int64_t K,
                                              const float* w, int64_t stride, const float* bias,
                                              float* y, int64_t ldy, int valid, const char* pf,
                                              int64_t pf_lines) {
  __m256 acc[R][B];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) acc[r][b] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    if (k < pf_lines) _mm_prefetch(pf + 64 * k, _MM_HINT_T1);  // a line an iteration
    __m256 wv[B];
#pragma GCC unroll 4
    for (int b = 0; b < B; ++b) wv[b] = _mm256_loadu_ps(w + b * stride + 8 * k);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(x + r * ldx + k);
#pragma GCC unroll 4
      for (int b = 0; b < B; ++b) acc[r][b] = _mm256_fmadd_ps(xv, wv[b], acc[r][b]);
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < B; ++b) {
    const int n = b == B - 1 ? valid : 8;
    alignas(32) float bias8[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (bias) std::memcpy(bias8, bias + 8 * b, sizeof(float) * static_cast<size_t>(n));
    const __m256 bv = _mm256_load_ps(bias8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 v = _mm256_add_ps(acc[r][b], bv);
      float* out = y + r * ldy + 8 * b;
      if (n == 8) {
        _mm256_storeu_ps(out, v);
      } else {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, v);
        std::memcpy(out, tmp, sizeof(float) * static_cast<size_t>(n));
      }
    }
  }
}

using TileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, const float*, float*,
                        int64_t, int, const char*, int64_t);

template <int B>
TileFn tile_for_rows(int rows) {
  return rows == 1 ? tile<1, B> : rows == 2 ? tile<2, B> : tile<3, B>;
}

}  // namespace

bool rows_kernel_available() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

void rows_linear_avx2(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                      const float* bias, float* y) {
  constexpr int64_t kRows = 3;   // rows a pass: 3 rows x 4 blocks = 12 sums in registers
  constexpr int64_t kPanel = 4;  // blocks of 8 outputs a task: 32 outputs
  const int64_t blocks = (N + 7) / 8;
  const int64_t stride = (K + 7) / 8 * 64;  // floats from one block's weights to the next
  const int64_t panels = (blocks + kPanel - 1) / kPanel;
  const int64_t passes = (M + kRows - 1) / kRows;  // over each panel
  // The first pass over a panel reads its weights from memory, the others from L2; those others
  // prefetch the next panel's (contiguous: blocks are consecutive), so its first pass finds them
  // in L2 too.
  const int64_t block_lines = stride * static_cast<int64_t>(sizeof(float)) / 64;
  // Threads: the calling thread's OpenMP team (ScopedIntraOpThreads), each on whole panels.
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t b0 = p * kPanel, b1 = std::min(blocks, b0 + kPanel);
    const char* next = reinterpret_cast<const char*>(w + b1 * stride);
    const int64_t next_lines = std::min(kPanel, blocks - b1) * block_lines;  // 0 after the last
    const int64_t per_pass = passes > 1 ? (next_lines + passes - 2) / (passes - 1) : 0;
    for (int64_t g = 0; g < passes; ++g) {
      const int64_t r0 = g * kRows;
      const int rows = static_cast<int>(std::min(kRows, M - r0));
      const int64_t done = g > 0 ? (g - 1) * per_pass : next_lines;  // lines asked for before
      const char* pf = next + 64 * std::min(done, next_lines);
      const int64_t pf_lines = std::min(per_pass, next_lines - std::min(done, next_lines));
      for (int64_t b = b0; b < b1;) {
        const int64_t nb = b1 - b >= 4 ? 4 : 1;
        const TileFn fn = nb == 4 ? tile_for_rows<4>(rows) : tile_for_rows<1>(rows);
        const int valid = static_cast<int>(std::min<int64_t>(8, N - 8 * (b + nb - 1)));
        fn(x + r0 * K, K, K, w + b * stride, stride, bias ? bias + 8 * b : nullptr,
           y + r0 * N + 8 * b, N, valid, pf, b == b0 ? pf_lines : 0);
        b += nb;
      }
    }
  }
}

#else

bool rows_kernel_available() { return false; }
void rows_linear_avx2(const float*, int64_t, int64_t, const float*, int64_t, const float*, float*) {
}

#endif

}  // namespace zsclip::detail
