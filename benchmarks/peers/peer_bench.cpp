// zsclip's side of the ONNX Runtime peer benchmark (benchmarks/peers/run.sh, benchmarks/README.md).
//
//   build-perf/bin/peer_bench --model DIR --tower image|text --input FILE [--warmup W] [--iters K]
//       [--threads T] [--streams S] [--intra-op-threads N] [--features-out FILE]
//
// Loads DIR with default ModelOptions and RuntimeOptions (changed only by the flags given), reads
// the whole input batch from FILE (image: raw float32 [B, 3, n, n], n from DIR's config; text: raw
// int64 ids [B, context_length], as the tokenizer gives them: zsclip cuts the columns after every
// row's end token itself), runs W untimed calls of encode_images / encode_texts on the whole batch,
// then K timed calls. Prints one JSON object on stdout: per-call ms, items/s (B * K / the timed
// calls' total time), the settings. --features-out writes the last call's features (raw float32
// [B, embed_dim]). Errors: a message on stderr and exit status 1 (2 for bad arguments).
#include <zsclip/error.h>
#include <zsclip/model.h>
#include <zsclip/runtime.h>

#include "zsclip/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string model, tower, input, features_out;
  int warmup = 2, iters = 5, threads = 0, streams = 0, intra_op_threads = 0;
  std::string precision = "auto", linear_kernels = "auto",
              profile;  // ModelOptions::dtype, linear_kernels
  bool spread_single = true, int8_text = false;
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "peer_bench: " << why
            << "\nusage: peer_bench --model DIR --tower image|text --input FILE [--warmup W] "
               "[--iters K] [--threads T] [--streams S] [--intra-op-threads N] "
               "[--precision auto|float32|bfloat16] [--linear-kernels auto|onednn|aten] "
               "[--spread-single 0|1] [--int8-text 0|1] [--features-out FILE] [--profile TRACE]\n";
  std::exit(2);
}

int to_int(const std::string& flag, const std::string& v, int lo) {
  try {
    size_t used = 0;
    const int n = std::stoi(v, &used);
    if (used == v.size() && n >= lo) return n;
  } catch (const std::exception&) {
  }
  usage(flag + " needs an integer >= " + std::to_string(lo) + ", got '" + v + "'");
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    if (f == "-h" || f == "--help") usage("zsclip's side of the ONNX Runtime peer benchmark");
    if (i + 1 >= argc) usage(f + " needs a value");
    const std::string v = argv[++i];
    if (f == "--model")
      a.model = v;
    else if (f == "--tower")
      a.tower = v;
    else if (f == "--input")
      a.input = v;
    else if (f == "--features-out")
      a.features_out = v;
    else if (f == "--warmup")
      a.warmup = to_int(f, v, 0);
    else if (f == "--iters")
      a.iters = to_int(f, v, 1);
    else if (f == "--threads")
      a.threads = to_int(f, v, 0);
    else if (f == "--streams")
      a.streams = to_int(f, v, 0);
    else if (f == "--int8-text")
      a.int8_text = to_int(f, v, 0) != 0;
    else if (f == "--profile")
      a.profile = v;
    else if (f == "--precision")
      a.precision = v;
    else if (f == "--linear-kernels")
      a.linear_kernels = v;
    else if (f == "--spread-single")
      a.spread_single = to_int(f, v, 0) != 0;
    else if (f == "--intra-op-threads")
      a.intra_op_threads = to_int(f, v, 0);
    else
      usage("unknown flag " + f);
  }
  if (a.model.empty() || a.input.empty()) usage("--model and --input are required");
  if (a.tower != "image" && a.tower != "text") usage("--tower must be image or text");
  return a;
}

// The file's bytes as `count` values of T, where count is whatever the size gives; the size must be
// a whole number of rows of `row` values.
template <typename T>
std::vector<T> read_rows(const std::string& path, int64_t row, int64_t* rows) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open input file " + path);
  const auto bytes = static_cast<int64_t>(in.tellg());
  const int64_t row_bytes = row * static_cast<int64_t>(sizeof(T));
  if (bytes <= 0 || bytes % row_bytes != 0)
    throw std::runtime_error("input file " + path + " has " + std::to_string(bytes) +
                             " bytes, not a whole number of rows of " + std::to_string(row_bytes));
  *rows = bytes / row_bytes;
  std::vector<T> data(static_cast<size_t>(bytes / static_cast<int64_t>(sizeof(T))));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(data.data()), bytes);
  if (!in) throw std::runtime_error("short read from " + path);
  return data;
}

int run(const Args& a) {
  zsclip::RuntimeOptions ro;
  ro.threads = a.threads;
  ro.intra_op_threads = a.intra_op_threads;
  zsclip::ModelOptions mo;
  mo.runtime = zsclip::Runtime::create(ro);
  mo.streams = a.streams;
  mo.dtype = a.precision;
  mo.linear_kernels = a.linear_kernels;
  mo.spread_single = a.spread_single;
  mo.int8_text = a.int8_text;
  mo.load_text_encoder = a.tower == "text";
  const auto t_load = Clock::now();
  const zsclip::Model model = zsclip::Model::load(a.model, mo);
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();

  int64_t batch = 0;
  zsclip::FloatTensor pixels;
  zsclip::IdTensor ids;
  if (a.tower == "image") {
    const int64_t n = model.preprocess_config().image_size;
    pixels.data = read_rows<float>(a.input, 3 * n * n, &batch);
    pixels.shape = {batch, 3, n, n};
  } else {
    const int64_t l = model.context_length();
    ids.data = read_rows<int64_t>(a.input, l, &batch);
    ids.shape = {batch, l};
  }
  zsclip::FloatTensor out;
  auto call = [&] {
    out = a.tower == "image" ? model.encode_images(pixels) : model.encode_texts(ids);
  };
  for (int i = 0; i < a.warmup; ++i) call();
  std::vector<double> ms;
  for (int i = 0; i < a.iters; ++i) {
    const auto t0 = Clock::now();
    call();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  if (!a.profile.empty()) {  // after the timing: the profiler's cost stays out of it
    zsclip::ProfileScope profile;
    for (int i = 0; i < a.iters; ++i) call();
    profile.write(a.profile);
  }
  double total_ms = 0;
  for (double m : ms) total_ms += m;
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());

  if (!a.features_out.empty()) {
    std::ofstream f(a.features_out, std::ios::binary);
    f.write(reinterpret_cast<const char*>(out.ptr()),
            static_cast<std::streamsize>(out.data.size() * sizeof(float)));
    if (!f) throw std::runtime_error("cannot write features to " + a.features_out);
  }
  nlohmann::json j;
  j["runner"] = "zsclip";
  j["model"] = a.model;
  j["tower"] = a.tower;
  j["batch"] = batch;
  j["warmup"] = a.warmup;
  j["iters"] = a.iters;
  j["threads"] = model.runtime()->threads();
  j["intra_op_threads"] = model.runtime()->intra_op_threads();
  j["streams"] = a.streams;
  j["dtype"] = model.dtype();
  j["linear_kernels"] = model.linear_kernels();
  j["cpu_isa"] = model.cpu_isa();
  j["int8_kernel"] = model.int8_kernel();
  j["linear_primitive"] = model.linear_primitive();
  j["quantization"] = model.config().quantization;
  j["load_s"] = load_s;
  j["ms"] = ms;
  j["median_ms"] = sorted[sorted.size() / 2];
  j["items_per_s"] = static_cast<double>(batch) * a.iters / (total_ms / 1000.0);
  j["out_shape"] = out.shape;
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::cerr << "peer_bench: " << e.what() << "\n";
    return 1;
  }
}
