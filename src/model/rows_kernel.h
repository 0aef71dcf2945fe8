// zsclip's own float32 linear layer for few rows on AVX2, over the weights oneDNN's AVX2 1x1
// convolution packed (OIhw8i8o): for row counts where that convolution tiles poorly (a prompt's
// 9 tokens), src/model/linear_ops.cpp calls this instead. No LibTorch or oneDNN headers.
#pragma once

#include <cstdint>

namespace zsclip::detail {

// Whether this CPU runs rows_linear_avx2 (AVX2 and FMA; x86-64 GCC/Clang builds).
bool rows_kernel_available();

// y[M, N] = x[M, K] . W^T + bias (bias may be null), row-major x and y, W in oneDNN's OIhw8i8o
// layout for O = N, I = K (blocks of 8 outputs, each [ceil(K / 8) * 8][8]). Spreads over the
// calling thread's OpenMP team.
void rows_linear_avx2(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                      const float* bias, float* y);

}  // namespace zsclip::detail
