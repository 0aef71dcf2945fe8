// cifar100_zeroshot — CLIP's zero-shot evaluation on the CIFAR-100 test set, with zsclip.
//
//   build/bin/cifar100_zeroshot --model DIR --data DIR [--limit N] [--batch-size N]
//       [--templates NAME|FILE] [--predictions FILE.csv] [--report DIR]
//
// What it does, as OpenAI's zero-shot notebook does it:
//   1. the 100 class names CLIP uses for CIFAR-100 (zsclip::builtin_classes("cifar100")) are put
//      into the 18 CIFAR prompt templates ("a photo of a {}.", ...), embedded by the text encoder
//      and averaged per class (zsclip::ZeroShotHead);
//   2. each 32x32 test image is upsampled exactly as PIL does it in CLIP's preprocessing (bicubic
//      resize of the shorter side to the model's size, centre crop, normalise:
//      zsclip::Preprocessor);
//   3. the image encoder embeds a batch, and the head scores it against the 100 classes.
//
// Reproducing the CLIP paper's number (ViT-B/32: 65.1% top-1 on CIFAR-100) on a machine with
// internet access (one shell command a line):
//   # the weights: the URL listed for "ViT-B/32" in _MODELS in openai/CLIP's clip/clip.py
//   # (clip.load("ViT-B/32") also downloads it, to ~/.cache/clip/ViT-B-32.pt)
//   vocab=bpe_simple_vocab_16e6.txt.gz model=models/vit-b-32
//   wget https://github.com/openai/CLIP/raw/main/clip/$vocab
//   wget https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz
//   tar xzf cifar-100-binary.tar.gz
//   /usr/bin/python3 models/export_clip.py --checkpoint ViT-B-32.pt --vocab $vocab --out $model
//   build/bin/cifar100_zeroshot --model $model --data cifar-100-binary --report report
// The run embeds 1800 prompts, then the 10000 test images (some minutes on a laptop's CPU).
//
// The data is CIFAR-100's "binary version": DIR/test.bin holds 10000 records of 3074 bytes each:
// the coarse label (0-19), the fine label (0-99), then the 32x32 image as a red, a green and a blue
// plane of 1024 bytes each, row by row. The fine labels index the same alphabetical class list that
// CLIP's names follow, so a label and a predicted class index can be compared directly.
#include <zsclip/classifier.h>
#include <zsclip/zero_shot.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cifar100_report.h"

namespace {

constexpr int kSide = 32;
constexpr size_t kPlane = kSide * kSide;
constexpr size_t kRecordBytes = 2 + 3 * kPlane;  // coarse label, fine label, R, G, B planes
constexpr int kFineClasses = 100, kCoarseClasses = 20, kTopK = 5;
constexpr uintmax_t kMaxDataBytes = 50000 * kRecordBytes;  // train.bin; test.bin holds 10000

const char* const kUsage = R"(usage: cifar100_zeroshot --model DIR --data DIR [options]

Zero-shot CLIP accuracy on the CIFAR-100 test set (binary version).

  --model DIR           a model exported by models/export_clip.py (config.json and encoders);
                        default: $ZSCLIP_MODEL
  --data DIR            CIFAR-100 binary folder containing test.bin (or the path of a .bin file)
  --limit N             evaluate the first N test images only (default: all)
  --batch-size N        images per encoder call (default 64)
  --templates NAME|FILE prompt templates: a built-in set (openai-cifar, openai-imagenet, simple)
                        or a file with one template containing "{}" a line (default openai-cifar)
  --predictions FILE    write a CSV "index,label,top1,top2,top3,top4,top5": one row per image, the
                        true fine label and the five best predictions, all as indices into CLIP's
                        CIFAR-100 class list (0 = apple ... 99 = worm; same order as the dataset)
  --report DIR          write DIR/per_class_accuracy.csv, DIR/confusion.png, DIR/samples.png
  --help                show this help

Prints top-1 and top-5 accuracy and the throughput on stdout; a progress bar on stderr when it is a
terminal. Exit status: 0 success, 1 error (bad data, model or output path), 2 usage error.
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string model, data, templates = "openai-cifar", predictions, report;
  int limit = 0;  // 0: every image
  int batch_size = 64;
  bool model_from_env = false;  // --model came from $ZSCLIP_MODEL
};

int parse_positive(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const long v = std::stol(value, &used);
    if (used == value.size() && v >= 1 && v <= 1000000000) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw UsageError(flag + " expects a positive integer, got \"" + value + "\"");
}

// Accepts "--flag value" and "--flag=value".
Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i], value;
    bool inline_value = false;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    static const char* const kValued[] = {"--model",     "--data",        "--limit", "--batch-size",
                                          "--templates", "--predictions", "--report"};
    if (std::find(std::begin(kValued), std::end(kValued), flag) == std::end(kValued))
      throw UsageError("unknown option " + flag);
    if (!inline_value) {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      value = argv[++i];
    }
    if (value.empty()) throw UsageError(flag + " needs a non-empty value");
    if (flag == "--model")
      o.model = value;
    else if (flag == "--data")
      o.data = value;
    else if (flag == "--limit")
      o.limit = parse_positive(flag, value);
    else if (flag == "--batch-size")
      o.batch_size = parse_positive(flag, value);
    else if (flag == "--templates")
      o.templates = value;
    else if (flag == "--predictions")
      o.predictions = value;
    else
      o.report = value;
  }
  if (o.model.empty()) {
    const char* env = std::getenv("ZSCLIP_MODEL");
    if (env == nullptr || *env == '\0')
      throw UsageError("--model is required (or set $ZSCLIP_MODEL)");
    o.model = env;
    o.model_from_env = true;
  }
  if (o.data.empty()) throw UsageError("--data is required");
  return o;
}

// The records of test.bin, checked: every label in range, the size a whole number of records.
struct Dataset {
  std::string path;
  std::vector<uint8_t> bytes;
  size_t size() const { return bytes.size() / kRecordBytes; }
  const uint8_t* record(size_t i) const { return bytes.data() + i * kRecordBytes; }
  int label(size_t i) const { return record(i)[1]; }
  const uint8_t* planes(size_t i) const { return record(i) + 2; }
};

Dataset load_dataset(const std::string& data) {
  namespace fs = std::filesystem;
  using zsclip::Error;
  using zsclip::ErrorCode;
  Dataset d;
  std::error_code ec;
  d.path = fs::is_directory(data, ec) ? (fs::path(data) / "test.bin").string() : data;
  const fs::file_status status = fs::status(d.path, ec);
  if (!fs::exists(status))
    throw Error(ErrorCode::kNotFound,
                d.path + ": no such file (--data must be the CIFAR-100 binary folder)");
  // Refused before reading: a device or FIFO (which may never end), or more than the 50000 records
  // of CIFAR-100's train.bin.
  if (!fs::is_regular_file(status))
    throw Error(ErrorCode::kInvalidArgument, d.path + ": not a regular file");
  const uintmax_t size = fs::file_size(d.path, ec);
  if (ec || size > kMaxDataBytes)
    throw Error(ErrorCode::kInvalidArgument, d.path + ": " + std::to_string(size) +
                                                 " bytes, more than the largest CIFAR-100 file");
  std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(d.path.c_str(), "rb"), &std::fclose);
  if (!in) {
    const int err = errno;
    throw Error(zsclip::error_code_from_errno(err),
                d.path + ": cannot open: " + std::strerror(err));
  }
  d.bytes.resize(static_cast<size_t>(size));
  if (std::fread(d.bytes.data(), 1, d.bytes.size(), in.get()) != d.bytes.size() ||
      std::fgetc(in.get()) != EOF)
    throw Error(ErrorCode::kIo, d.path + ": read error (or the file changed while it was read)");
  if (d.bytes.empty() || d.bytes.size() % kRecordBytes != 0)
    throw Error(ErrorCode::kInvalidArgument,
                d.path + ": size " + std::to_string(d.bytes.size()) +
                    " bytes is not a positive multiple of the " + std::to_string(kRecordBytes) +
                    "-byte CIFAR-100 record (is it the CIFAR-10 file?)");
  for (size_t i = 0; i < d.size(); ++i) {
    const int coarse = d.record(i)[0], fine = d.record(i)[1];
    if (fine >= kFineClasses || coarse >= kCoarseClasses)
      throw Error(ErrorCode::kInvalidArgument,
                  d.path + ": record " + std::to_string(i) + " (byte offset " +
                      std::to_string(i * kRecordBytes) + ") has " +
                      (fine >= kFineClasses
                           ? "fine label " + std::to_string(fine) + " (must be < 100)"
                           : "coarse label " + std::to_string(coarse) + " (must be < 20)"));
  }
  return d;
}

// CIFAR stores three colour planes; Pillow (and zsclip) take interleaved RGB pixels.
zsclip::Image8 to_image(const uint8_t* planes) {
  zsclip::Image8 image;
  image.width = image.height = kSide;
  image.channels = 3;
  image.mode = zsclip::PixelMode::kRGB;
  image.data.resize(3 * kPlane);
  for (size_t p = 0; p < kPlane; ++p)
    for (size_t c = 0; c < 3; ++c) image.data[3 * p + c] = planes[c * kPlane + p];
  return image;
}

// The same picture as an OpenCV BGR matrix, for the sample grid.
cv::Mat to_bgr_mat(const uint8_t* planes) {
  cv::Mat bgr(kSide, kSide, CV_8UC3);
  for (size_t p = 0; p < kPlane; ++p)
    for (size_t c = 0; c < 3; ++c) bgr.data[3 * p + (2 - c)] = planes[c * kPlane + p];
  return bgr;
}

void draw_progress(size_t done, size_t total, double seconds) {
  const int width = 40, filled = static_cast<int>(width * done / total);
  std::fprintf(stderr, "\r[%s%s] %zu/%zu  %.1f images/s ", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), done, total,
               seconds > 0 ? done / seconds : 0.0);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

std::string percent(size_t hits, size_t total) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(2) << 100.0 * hits / total << "% (" << hits << "/" << total
    << ")";
  return s.str();
}

int run(const Options& opt) {
  // Cheap checks first: a bad data file or output path fails before the model loads.
  const Dataset data = load_dataset(opt.data);
  const size_t n = opt.limit > 0 ? std::min<size_t>(opt.limit, data.size()) : data.size();
  const std::vector<std::string> templates = zsclip::resolve_templates(opt.templates);
  std::ofstream predictions_csv;
  if (!opt.predictions.empty()) {
    predictions_csv.open(opt.predictions);
    if (!predictions_csv)
      throw zsclip::Error(zsclip::ErrorCode::kIo, "cannot write " + opt.predictions);
  }
  if (!opt.report.empty()) std::filesystem::create_directories(opt.report);

  const auto t_load = std::chrono::steady_clock::now();
  zsclip::ClassifierOptions classifier_options;
  classifier_options.batch_size = opt.batch_size;
  classifier_options.top_k = kTopK;
  const auto& classes = zsclip::builtin_classes("cifar100");
  const auto classifier =
      zsclip::ZeroShotClassifier::create(opt.model, classes, templates, {}, classifier_options);
  const zsclip::Model& model = classifier.model();
  const zsclip::ZeroShotHead& head = classifier.head();
  const zsclip::Preprocessor& preprocessor = classifier.preprocessor();
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  std::cout << "model        " << opt.model << " (" << model.config().name << ", "
            << model.image_size() << " px, " << model.device() << " " << model.dtype() << ")\n"
            << "templates    " << opt.templates << " (" << templates.size() << ")\n"
            << "classes      " << classes.size() << " (" << classes.size() * templates.size()
            << " prompts embedded; model and class weights ready in " << std::fixed
            << std::setprecision(1) << load_s << " s)\n"
            << "images       " << n << " of " << data.size() << " in " << data.path << "\n";

  // Batch b's pixels are prepared on a worker thread while the encoder runs on batch b-1.
  const size_t batch = static_cast<size_t>(opt.batch_size), per_image = preprocessor.item_floats();
  auto prepare = [&](size_t begin) {
    std::vector<float> pixels(std::min(batch, n - begin) * per_image);
    for (size_t i = begin; i < begin + pixels.size() / per_image; ++i)
      preprocessor.from_image_into(to_image(data.planes(i)),
                                   pixels.data() + (i - begin) * per_image);
    return pixels;
  };

  const bool show_progress = isatty(STDERR_FILENO);
  const size_t dim = static_cast<size_t>(model.embed_dim());
  std::vector<float> features;
  std::vector<cifar100::Outcome> outcomes;
  outcomes.reserve(n);
  const auto t_start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  };
  std::future<std::vector<float>> next = std::async(std::launch::async, prepare, 0);
  for (size_t begin = 0; begin < n; begin += batch) {
    const std::vector<float> pixels = next.get();
    if (begin + batch < n) next = std::async(std::launch::async, prepare, begin + batch);
    const size_t count = pixels.size() / per_image;
    features.resize(count * dim);
    model.encode_images(pixels.data(), static_cast<int64_t>(count), features.data());
    for (size_t j = 0; j < count; ++j) {
      const zsclip::Prediction p = head.classify_one(features.data() + j * dim, kTopK);
      cifar100::Outcome o;
      o.label = data.label(begin + j);
      for (int k = 0; k < kTopK; ++k) o.top[k] = p.top[k].index;
      outcomes.push_back(o);
    }
    if (show_progress) draw_progress(outcomes.size(), n, elapsed());
  }
  const double seconds = elapsed();

  size_t top1 = 0, top5 = 0;
  for (const auto& o : outcomes) {
    top1 += o.top1_correct();
    top5 += o.top5_correct();
  }
  std::cout << "top-1 accuracy: " << percent(top1, n) << "\n"
            << "top-5 accuracy: " << percent(top5, n) << "\n"
            << "speed: " << std::setprecision(1) << n / seconds << " images/s ("
            << std::setprecision(2) << seconds << " s, batch size " << batch << ")\n";

  if (predictions_csv.is_open()) {
    // Labels and predictions are indices into CLIP's CIFAR-100 class list
    // (builtin_classes("cifar100")).
    predictions_csv << "index,label,top1,top2,top3,top4,top5\n";
    for (size_t i = 0; i < n; ++i) {
      predictions_csv << i << "," << outcomes[i].label;
      for (int k : outcomes[i].top) predictions_csv << "," << k;
      predictions_csv << "\n";
    }
    if (!predictions_csv.flush())
      throw zsclip::Error(zsclip::ErrorCode::kIo, "cannot write " + opt.predictions);
    std::cout << "predictions  " << opt.predictions << "\n";
  }
  if (!opt.report.empty()) {
    namespace fs = std::filesystem;
    cifar100::write_per_class_csv((fs::path(opt.report) / "per_class_accuracy.csv").string(),
                                  classes, outcomes);
    cifar100::write_confusion_png((fs::path(opt.report) / "confusion.png").string(), kFineClasses,
                                  outcomes);
    // 32 samples spread evenly over the evaluated images.
    std::vector<cifar100::Sample> samples;
    const size_t shown = std::min<size_t>(32, n);
    for (size_t s = 0; s < shown; ++s) {
      const size_t i = s * n / shown;
      samples.push_back({to_bgr_mat(data.planes(i)), outcomes[i]});
    }
    cifar100::write_samples_png((fs::path(opt.report) / "samples.png").string(), classes, samples);
    std::cout << "report       " << opt.report
              << "/{per_class_accuracy.csv,confusion.png,samples.png}\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    options = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "cifar100_zeroshot: " << e.what() << "\n\n" << kUsage;
    return 2;
  }
  try {
    const int status = run(options);
    if (!std::cout.flush())
      throw zsclip::Error(zsclip::ErrorCode::kIo, "standard output: write failed");
    return status;
  } catch (const std::exception&
               e) {  // zsclip::Error (data, model, templates), cv::Exception, filesystem
    std::string message = e.what();
    if (options.model_from_env && message.find(options.model) != std::string::npos)
      message += " (the model directory comes from $ZSCLIP_MODEL)";
    std::cerr << "cifar100_zeroshot: error: " << message << "\n";
    return 1;
  }
}
