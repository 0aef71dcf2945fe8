// Decode + CLIP preprocessing per image on ../shared/images, one thread (compare with
// benchmarks/preprocess_python.py, PIL + torchvision with torch.set_num_threads(1)).
//   build-img/bin/preprocess_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>
#include <vector>

#include "zsclip/image.h"
#include "zsclip/preprocess.h"

namespace {

const char* const kImages[] = {"astronaut.png", "camera.png", "chelsea.png",      "coffee.png",
                               "horse.png",     "rocket.jpg", "green_palette.png"};

std::vector<std::string> image_paths() {
  std::vector<std::string> out;
  for (const char* name : kImages) {
    const std::string p = std::string(ZSCLIP_SHARED_DIR) + "/images/" + name;
    if (std::filesystem::exists(p)) out.push_back(p);
  }
  return out;
}

// CPU milliseconds per image (Google Benchmark divides by the CPU time of all iterations).
void set_ms_per_image(benchmark::State& state, size_t images) {
  state.counters["ms_per_image"] = benchmark::Counter(
      static_cast<double>(images) / 1000.0,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

// All shared images in turn; items_per_second gives images per second.
void BM_FromFile(benchmark::State& state) {
  const auto paths = image_paths();
  if (paths.empty()) return state.SkipWithError("../shared/images is absent");
  const zsclip::Preprocessor pre;
  std::vector<float> out(pre.item_floats());
  for (auto _ : state) {
    for (const auto& p : paths) pre.from_file_into(p, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(paths.size()));
  set_ms_per_image(state, paths.size());
}
BENCHMARK(BM_FromFile)->Unit(benchmark::kMillisecond);

void BM_DecodeOnly(benchmark::State& state) {
  const auto paths = image_paths();
  if (paths.empty()) return state.SkipWithError("../shared/images is absent");
  for (auto _ : state)
    for (const auto& p : paths) benchmark::DoNotOptimize(zsclip::decode_image_file(p).data.data());
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(paths.size()));
  set_ms_per_image(state, paths.size());
}
BENCHMARK(BM_DecodeOnly)->Unit(benchmark::kMillisecond);

// Resize + crop + normalise on already decoded images.
void BM_PreprocessDecoded(benchmark::State& state) {
  const auto paths = image_paths();
  if (paths.empty()) return state.SkipWithError("../shared/images is absent");
  std::vector<zsclip::Image8> images;
  for (const auto& p : paths) images.push_back(zsclip::decode_image_file(p));
  const zsclip::Preprocessor pre;
  std::vector<float> out(pre.item_floats());
  for (auto _ : state) {
    for (const auto& im : images) pre.from_image_into(im, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(paths.size()));
  set_ms_per_image(state, paths.size());
}
BENCHMARK(BM_PreprocessDecoded)->Unit(benchmark::kMillisecond);

// Batch of all images in N parallel parts on the default runtime (0 = its threads: the cores).
void BM_BatchFiles(benchmark::State& state) {
  auto paths = image_paths();
  if (paths.empty()) return state.SkipWithError("../shared/images is absent");
  const zsclip::Preprocessor pre;
  std::vector<float> out(pre.item_floats() * paths.size());
  for (auto _ : state)
    benchmark::DoNotOptimize(
        pre.batch_files_into(paths, out.data(), static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(paths.size()));
}
BENCHMARK(BM_BatchFiles)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
