// Several threads calling one classifier at once, and one image's latency (benchmarks/README.md).
//
//   build-perf/bin/model_callers_bench --model DIR --callers N [--batches T] [--batch-size B]
//       [--latency-calls L] [--images FILE...]
//
// Throughput: N threads start together and share T calls of classify_files on B files each (T / N
// calls per thread), so every N does the same work; images/s = T * B / wall time, and the process's
// CPU time per image (user + system: what the work costs, whatever share of a busy machine the
// process got). Latency, after
// that, on the calling thread with everything warm: L calls of classify_buffer on one encoded image
// (decode, preprocess, encode, head) and L calls of model().encode_images on one preprocessed
// image; medians and 90th percentiles in ms. One JSON line on stdout. It uses only calls that
// existed before zsclip::Runtime (create, classify_files, classify_buffer, model().encode_images,
// preprocessor()), so the same file builds against an older zsclip for A/B runs.
#include <sys/resource.h>
#include <zsclip/classifier.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// CPU time (user + system) this process has used, in ms.
double cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0 +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir = "models/shapes";
  int callers = 1, batches = 8, batch_size = 16, latency_calls = 50;
  std::vector<std::string> images;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model")
      model_dir = next();
    else if (a == "--callers")
      callers = std::stoi(next());
    else if (a == "--batches")
      batches = std::stoi(next());
    else if (a == "--batch-size")
      batch_size = std::stoi(next());
    else if (a == "--latency-calls")
      latency_calls = std::stoi(next());
    else if (a == "--images")
      images.push_back(next());
    else
      images.push_back(a);
  }
  if (images.empty() || callers < 1 || batches % callers != 0) {
    std::cerr
        << "usage: model_callers_bench --model DIR --callers N [--batches T (a multiple of N)] "
           "[--batch-size B] [--latency-calls L] IMAGE...\n";
    return 2;
  }
  try {
    std::vector<std::string> labels;
    for (int i = 0; i < 10; ++i) labels.push_back("class " + std::to_string(i));
    zsclip::ClassifierOptions co;
    co.batch_size = batch_size;
    auto clf = zsclip::ZeroShotClassifier::create(model_dir, labels,
                                                  zsclip::builtin_templates("simple"), {}, co);
    std::vector<std::string> batch;
    for (int i = 0; i < batch_size; ++i)
      batch.push_back(images[static_cast<size_t>(i) % images.size()]);
    clf.classify_files(batch);  // warm: TorchScript's first calls, the pool, the allocator

    // Throughput: `callers` threads, batches / callers calls each, released together.
    std::atomic<bool> go{false};
    std::atomic<int> ready{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < callers; ++t)
      threads.emplace_back([&] {
        ++ready;
        while (!go.load()) std::this_thread::yield();
        for (int k = 0; k < batches / callers; ++k)
          for (const auto& r : clf.classify_files(batch)) bad += !r.ok;
      });
    while (ready.load() < callers) std::this_thread::yield();
    const auto t0 = Clock::now();
    const double cpu0 = cpu_ms();
    go = true;
    for (auto& t : threads) t.join();
    const double wall_ms = ms_since(t0);
    const double cpu_used_ms = cpu_ms() - cpu0;
    if (bad.load()) throw zsclip::Error(zsclip::ErrorCode::kInvalidImage, "some images failed");

    // Latency at batch 1, warm.
    const std::string bytes = read_all(images[0]);
    std::vector<double> call_ms, encode_ms;
    for (int i = 0; i < 3; ++i) clf.classify_buffer(bytes.data(), bytes.size(), images[0]);
    for (int i = 0; i < latency_calls; ++i) {
      const auto t = Clock::now();
      clf.classify_buffer(bytes.data(), bytes.size(), images[0]);
      call_ms.push_back(ms_since(t));
    }
    const zsclip::FloatTensor pixels = clf.preprocessor().from_file(images[0]);
    std::vector<float> features(static_cast<size_t>(clf.model().embed_dim()));
    for (int i = 0; i < latency_calls; ++i) {
      const auto t = Clock::now();
      clf.model().encode_images(pixels.ptr(), 1, features.data());
      encode_ms.push_back(ms_since(t));
    }
    std::cout << "{\"model\": \"" << model_dir << "\", \"callers\": " << callers
              << ", \"images\": " << batches * batch_size << ", \"seconds\": " << wall_ms / 1000.0
              << ", \"images_per_s\": " << batches * batch_size * 1000.0 / wall_ms
              << ", \"cpu_ms_per_image\": " << cpu_used_ms / (batches * batch_size)
              << ", \"classify_buffer_ms_median\": " << percentile(call_ms, 0.5)
              << ", \"classify_buffer_ms_p90\": " << percentile(call_ms, 0.9)
              << ", \"encode1_ms_median\": " << percentile(encode_ms, 0.5)
              << ", \"encode1_ms_p90\": " << percentile(encode_ms, 0.9) << "}\n";
  } catch (const zsclip::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
