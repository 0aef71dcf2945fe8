// zsclip bench: throughput of a model on this machine (encoder, whole pipeline, text, head,
// memory).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/cli.h"
#include "zsclip/classifier.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/model.h"
#include "zsclip/profile.h"
#include "zsclip/runtime.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// MiB that ModelConfig::verify_files(text_files) hashes.
double verified_mib(const ModelConfig& c, bool text_files) {
  double bytes = 0;
  for (const auto& [name, check] : c.file_checks)
    if (text_files || (name != c.text_encoder_file && name != c.tokenizer.vocab_file &&
                       name != c.tokenizer.merges_file))
      bytes += static_cast<double>(check.bytes);
  return bytes / (1024.0 * 1024.0);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A /proc/self/status size ("VmHWM:", "VmRSS:") in MiB; -1 where /proc is missing.
double proc_status_mib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

// Peak resident set in MiB: VmHWM (resettable per process), else ru_maxrss.
double peak_rss_mib() {
  if (const double hwm = proc_status_mib("VmHWM:"); hwm >= 0) return hwm;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

std::vector<std::string> default_images() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const std::string dir : {std::string(ZSCLIP_SOURCE_MODELS_DIR) + "/../../shared/images",
                                std::string(ZSCLIP_SOURCE_MODELS_DIR) + "/../examples/images"}) {
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
      if (e.path().filename() == "truncated.jpg") continue;  // a deliberately broken file
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp")
        out.push_back(e.path().string());
    }
    if (!out.empty()) break;
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t file_size_or_zero(const std::string& p) {
  std::error_code ec;
  auto s = fs::file_size(p, ec);
  return ec ? 0 : static_cast<uint64_t>(s);
}

int run_bench(const Args& args) {
  const std::string dir = model_dir(args);
  const int batch = args.get_int("--batch-size", 1, 4096);
  const int iterations = args.get_int("--iterations", 1, 100000);
  const int text_classes = args.get_int("--text-classes", 0, 100000);
  const int head_classes = args.get_int("--head-classes", 1, 1000000);
  std::vector<std::string> images = args.all("--images");
  for (const auto& p : args.positional()) images.push_back(p);
  if (images.empty()) images = default_images();
  if (images.empty()) throw UsageError("no images: give --images FILE...");

  RuntimeOptions ro;
  ro.threads = args.get_int("--threads", 0, 1024);
  ro.intra_op_threads = args.get_int("--intra-op-threads", 0, 1024);
  ro.blas_threads = args.get_int("--blas-threads", 0, 1024);
  ro.quantized_engine = args.get("--qengine");
  ModelOptions mo;
  mo.device = args.get("--device");
  mo.runtime = Runtime::create(ro);
  mo.streams = args.get_int("--streams", 0, 1024);
  mo.optimize = !args.has("--no-optimize");
  mo.verify_files = !args.has("--no-verify");
  apply_precision_options(args, mo);
  mo.optimize_for_inference = args.has("--optimize-for-inference");
  mo.load_text_encoder = text_classes > 0;
  const double rss_before = peak_rss_mib();
  auto t0 = Clock::now();
  Model model = Model::load(dir, mo);
  report_precision(model);
  const double load_s = seconds_since(t0);
  const double rss_after_load = peak_rss_mib();
  const double resident_after_load = std::max(0.0, proc_status_mib("VmRSS:"));  // 0: no /proc
  const ModelConfig& c = model.config();
  // The files' size/hash check on its own (part of load_seconds unless --no-verify); the files are
  // in the page cache now, as they are for the check inside a load that follows an export or a
  // copy.
  double verify_s = 0;
  if (mo.verify_files) {
    auto tv = Clock::now();
    c.verify_files(mo.load_text_encoder);
    verify_s = seconds_since(tv);
  }
  uint64_t file_bytes =
      file_size_or_zero(c.path_of(c.image_encoder_file)) +
      file_size_or_zero(c.path_of(c.projection_file)) +
      (mo.load_text_encoder ? file_size_or_zero(c.path_of(c.text_encoder_file)) : 0);

  // Encoder only: one preprocessed batch (images repeated to fill it), encoded `iterations` times.
  Preprocessor pre(c.preprocess);
  const int64_t side = model.image_size(), d = model.embed_dim();
  const size_t per = static_cast<size_t>(3 * side * side);
  std::vector<std::string> batch_paths;
  for (int i = 0; i < batch; ++i)
    batch_paths.push_back(images[static_cast<size_t>(i) % images.size()]);
  std::vector<float> pixels(per * static_cast<size_t>(batch));
  auto status = pre.batch_files_into(batch_paths, pixels.data());
  for (size_t i = 0; i < status.size(); ++i)
    if (!status[i].ok) throw Error(status[i].code, status[i].error);
  std::vector<float> feats(static_cast<size_t>(batch * d));
  model.encode_images(pixels.data(), batch, feats.data());  // warm-up at this batch size
  if (args.has("--features-out"))
    io::write_file_atomic(args.get("--features-out"), "features file", feats.data(),
                          feats.size() * sizeof(float));
  t0 = Clock::now();
  for (int it = 0; it < iterations; ++it) model.encode_images(pixels.data(), batch, feats.data());
  const double enc_s = seconds_since(t0);
  const double enc_ips = batch * iterations / enc_s;
  if (args.has("--profile")) {  // after the timing: the profiler's own cost stays out of it
    ProfileScope profile;
    for (int it = 0; it < iterations; ++it) model.encode_images(pixels.data(), batch, feats.data());
    profile.write(args.get("--profile"));
  }

  // Head: head_classes random unit class vectors, classified for every image's features.
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd;
  FloatTensor w({head_classes, d});
  for (auto& v : w.data) v = nd(rng);
  std::vector<std::string> labels;
  for (int i = 0; i < head_classes; ++i) labels.push_back("class " + std::to_string(i));
  ZeroShotHead head =
      ZeroShotHead::from_weights(labels, std::move(w), model.logit_scale_exp(), model);
  FloatTensor f({batch, d}, std::vector<float>(feats));
  int head_reps = 0;
  t0 = Clock::now();
  do {
    auto preds = head.classify(f, 5);
    ++head_reps;
  } while (seconds_since(t0) < 0.3);
  const double head_ms_per_image = seconds_since(t0) * 1000.0 / (head_reps * batch);

  // Whole pipeline: decode + preprocess (worker thread) + encode + head, batch * iterations files.
  ClassifierOptions co;
  co.batch_size = batch;
  ZeroShotClassifier clf(model, head, co);
  std::vector<std::string> many;
  for (int i = 0; i < batch * iterations; ++i)
    many.push_back(images[static_cast<size_t>(i) % images.size()]);
  t0 = Clock::now();
  auto results = clf.classify_files(many);
  const double pipe_s = seconds_since(t0);
  for (const auto& r : results)
    if (!r.ok) throw Error(r.code, r.source + ": " + r.error);
  const double pipe_ips = static_cast<double>(many.size()) / pipe_s;

  // Text: ZeroShotHead::build (tokenize + encode + ensemble) over 80 templates x text_classes.
  double prompts_per_s = 0;
  int prompts = 0;
  if (text_classes > 0) {
    model.tokenizer();  // loaded before the clock starts
    const auto& templates = builtin_templates("openai-imagenet");
    std::vector<std::string> tl(
        builtin_classes("imagenet").begin(),
        builtin_classes("imagenet").begin() + std::min<size_t>(text_classes, 1000));
    prompts = static_cast<int>(templates.size() * tl.size());
    HeadBuildOptions ho;
    ho.truncate = true;  // a speed figure: a small model's short context cuts some ImageNet prompts
    t0 = Clock::now();
    ZeroShotHead::build(model, tl, templates, ho);
    prompts_per_s = prompts / seconds_since(t0);
  }

  const double enc_ms_per_image = 1000.0 / enc_ips;
  json out = {{"model", dir},
              {"device", model.device()},
              {"threads", mo.runtime->threads()},
              {"streams", mo.streams},
              {"intra_op_threads", mo.runtime->intra_op_threads()},
              {"blas_threads", mo.runtime->blas_threads()},
              {"qengine", ro.quantized_engine},
              {"quantization", c.quantization},
              {"dtype", model.dtype()},
              {"linear_kernels", model.linear_kernels()},
              {"linear_primitive", model.linear_primitive()},
              {"cpu_isa", model.cpu_isa()},
              {"int8_kernel", model.int8_kernel()},
              {"spread_single", mo.spread_single},
              {"batch_size", batch},
              {"iterations", iterations},
              {"images", images.size()},
              {"load_seconds", load_s},
              {"verify_seconds", verify_s},
              {"verified_mib", mo.verify_files ? verified_mib(c, mo.load_text_encoder) : 0.0},
              {"model_file_mib", static_cast<double>(file_bytes) / (1024.0 * 1024.0)},
              {"peak_rss_mib_before_load", rss_before},
              {"peak_rss_mib_after_load", rss_after_load},
              {"rss_mib_after_load", resident_after_load},
              {"peak_rss_over_file_size",
               rss_after_load * 1024.0 * 1024.0 / std::max<double>(1, file_bytes)},
              {"encode_images_per_s", enc_ips},
              {"encode_ms_per_batch", 1000.0 * enc_s / iterations},
              {"pipeline_images_per_s", pipe_ips},
              {"pipeline_ms_per_batch", 1000.0 * pipe_s * batch / static_cast<double>(many.size())},
              {"text_prompts", prompts},
              {"text_prompts_per_s", prompts_per_s},
              {"head_classes", head_classes},
              {"head_ms_per_image", head_ms_per_image},
              {"head_fraction_of_encoder", head_ms_per_image / enc_ms_per_image},
              {"peak_rss_mib", peak_rss_mib()}};
  if (args.has("--json")) {
    std::cout << dump_json(out, 2) << "\n";
  } else {
    for (auto it = out.begin(); it != out.end(); ++it)
      std::cout << it.key() << ": " << dump_json(it.value()) << "\n";
  }
  return 0;
}

ZSCLIP_COMMAND(Command{
    "bench",
    "[--model DIR] [--batch-size N] [--threads N] [--iterations N] [--json] [--images FILE]...",
    "measure images/s (encoder and whole pipeline), text prompts/s, head cost, load time and "
    "memory",
    "Images default to ../shared/images (all but truncated.jpg) if present, else examples/images; "
    "they are repeated to fill the batches. The pipeline figure is "
    "ZeroShotClassifier::classify_files "
    "(decode, preprocess, encode, a --head-classes head) over batch-size x iterations files. Text "
    "prompts/s is ZeroShotHead::build over 80 ImageNet templates x --text-classes classes (0 skips "
    "it and the text encoder). Peak RSS is VmHWM right after Model::load.",
    run_bench});

}  // namespace
}  // namespace zsclip::cli
