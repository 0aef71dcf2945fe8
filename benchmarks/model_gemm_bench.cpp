// The machine's GEMM ceiling as LibTorch reaches it: at::matmul on ViT-B/32-shaped operands
// (16 images x 50 tokens = 800 rows; width 768; MLP 3072). Arg 0: LibTorch intra-op threads,
// arg 1: OpenBLAS threads (0 = leave as is). Counter GFLOPs = 2*M*K*N per second.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <dlfcn.h>

namespace {

void set_blas_threads(int n) {
  using Fn = void (*)(int);
  if (auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); fn && n > 0)
    fn(n);
}

void run(benchmark::State& state, int64_t m, int64_t k, int64_t n) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  set_blas_threads(static_cast<int>(state.range(1)));
  at::InferenceMode guard;
  at::manual_seed(0);
  at::Tensor a = at::randn({m, k}), b = at::randn({k, n});
  at::Tensor c = at::matmul(a, b);
  for (auto _ : state) {
    c = at::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr<float>());
  }
  state.counters["GFLOPs"] = benchmark::Counter(
      2.0 * m * k * n * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void BM_Gemm_Mlp_800x768x3072(benchmark::State& s) { run(s, 800, 768, 3072); }
void BM_Gemm_Mlp_800x3072x768(benchmark::State& s) { run(s, 800, 3072, 768); }
void BM_Gemm_Qkv_800x768x2304(benchmark::State& s) { run(s, 800, 768, 2304); }

#define ZSCLIP_GEMM_ARGS                                                         \
  ->Args({1, 1})->Args({1, 2})->Args({2, 1})->Args({2, 2})->UseRealTime()->Unit( \
      benchmark::kMillisecond)
BENCHMARK(BM_Gemm_Mlp_800x768x3072) ZSCLIP_GEMM_ARGS;
BENCHMARK(BM_Gemm_Mlp_800x3072x768) ZSCLIP_GEMM_ARGS;
BENCHMARK(BM_Gemm_Qkv_800x768x2304) ZSCLIP_GEMM_ARGS;

}  // namespace

BENCHMARK_MAIN();
