// The zero-shot head on its own: 1000 classes x 512 dims (ViT-B/32's embedding), random unit class
// weights, one image's features per iteration (classify_one: logits, softmax, top-5) and a batch
// of 16.
#include <benchmark/benchmark.h>

#include <random>

#include "zsclip/zero_shot.h"

namespace {

zsclip::ZeroShotHead make_head(int64_t classes, int64_t dim) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  zsclip::FloatTensor w({classes, dim});
  for (auto& v : w.data) v = nd(rng);
  std::vector<std::string> labels;
  for (int64_t i = 0; i < classes; ++i) labels.push_back("class " + std::to_string(i));
  return zsclip::ZeroShotHead::from_weights(labels, std::move(w), 100.f, "bench");
}

zsclip::FloatTensor features(int64_t n, int64_t dim) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  zsclip::FloatTensor f({n, dim});
  for (auto& v : f.data) v = nd(rng);
  return f;
}

void BM_Head_ClassifyOne(benchmark::State& state) {
  auto head = make_head(state.range(0), 512);
  auto f = features(1, 512);
  for (auto _ : state) benchmark::DoNotOptimize(head.classify_one(f.row(0), 5));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Head_ClassifyOne)->Arg(1000)->Arg(100)->Unit(benchmark::kMicrosecond);

void BM_Head_ClassifyBatch16(benchmark::State& state) {
  auto head = make_head(state.range(0), 512);
  auto f = features(16, 512);
  for (auto _ : state) benchmark::DoNotOptimize(head.classify(f, 5));
  state.SetItemsProcessed(16 * state.iterations());
}
BENCHMARK(BM_Head_ClassifyBatch16)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
