// The inner loops of exact search: IEEE float16 <-> float32, and dot products of stored rows with
// queries. AVX2/FMA/F16C versions are chosen at run time when the CPU has them; the portable
// versions give the same results up to float summation order.
#pragma once

#include <cstdint>

#include "zsclip/index.h"

namespace zsclip::index_detail {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even; overflow -> inf; NaN stays NaN

// n values of `dtype` at src -> float32.
void widen(const void* src, IndexDtype dtype, int64_t n, float* out);
// n float32 -> float16 (round to nearest even).
void narrow_to_half(const float* src, int64_t n, uint16_t* out);

// out[i] = <row i, q> for n rows of d values of `dtype` starting at rows.
void dot_rows(const void* rows, IndexDtype dtype, int64_t n, int64_t d, const float* q, float* out);
// out[i * nq + j] = <row i, query j> for nq queries (row-major [nq, d]); each row is widened once.
void dot_rows_multi(const void* rows, IndexDtype dtype, int64_t n, int64_t d, const float* queries,
                    int64_t nq, float* out);

// True when the AVX2/FMA/F16C loops are in use (for benchmarks and tests).
bool simd_kernels_active();
// Forces the portable loops (tests compare the two).
void force_portable_kernels(bool on);

}  // namespace zsclip::index_detail
