// Tests of examples/cifar100_zeroshot.cpp: the built program runs on a small CIFAR-100-format file
// (photos of ../shared/images scaled to 32x32 and synthetic patterns) with the openai-tiny export,
// and its predictions are compared with the library's ZeroShotClassifier::classify_image on the
// same 32x32 pictures. Labels are chosen from those reference predictions, so the expected
// accuracies are known exactly. The data file is written by the test itself (see write_cifar).
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "model_util.h"
#include "zsclip/classifier.h"
#include "zsclip/image.h"
#include "zsclip/zero_shot.h"

namespace {

namespace fs = std::filesystem;
using namespace zsclip::testing;

constexpr int kSide = 32, kImages = 40, kExtra = 4;  // kExtra records lie beyond --limit
constexpr size_t kRecord = 3074;

// The example sits next to the CLI in build/bin.
std::string example_path() {
  return (fs::path(ZSCLIP_CLI).parent_path() / "cifar100_zeroshot").string();
}

CliResult run_example(const std::string& args) {
  static int counter = 0;
  // The process id keeps runs of tests that ctest starts in parallel apart.
  const std::string base =
      temp_dir("cifar100_run" + std::to_string(::getpid()) + "_" + std::to_string(counter++)) +
      "/run";
  const std::string cmd = "timeout 300 " + sh(example_path()) + " " + args + " > " +
                          sh(base + ".out") + " 2> " + sh(base + ".err") + " < /dev/null";
  CliResult r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  return r;
}

// A 32x32 RGB picture, interleaved, with its CIFAR label.
struct Picture {
  std::vector<uint8_t> rgb;
  int label = 0;
};

zsclip::Image8 to_image8(const std::vector<uint8_t>& rgb) {
  zsclip::Image8 im;
  im.width = im.height = kSide;
  im.channels = 3;
  im.mode = zsclip::PixelMode::kRGB;
  im.data = rgb;
  return im;
}

// Photos shrunk with OpenCV's area filter, then deterministic gradients, stripes and discs.
std::vector<std::vector<uint8_t>> make_pictures(int count) {
  std::vector<std::vector<uint8_t>> out;
  for (const char* name :
       {"astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "horse.png"}) {
    cv::Mat bgr = cv::imread(shared_path(std::string("images/") + name), cv::IMREAD_COLOR);
    if (bgr.empty()) continue;
    cv::Mat small, rgb;
    cv::resize(bgr, small, cv::Size(kSide, kSide), 0, 0, cv::INTER_AREA);
    cv::cvtColor(small, rgb, cv::COLOR_BGR2RGB);
    out.emplace_back(rgb.data, rgb.data + 3 * kSide * kSide);
  }
  uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u, (state >> 24) & 0xff; };
  while (static_cast<int>(out.size()) < count) {
    const int k = static_cast<int>(out.size());
    const int a = next(), b = next(), c = next(), r = 4 + next() % 12, cx = next() % 32,
              cy = next() % 32;
    std::vector<uint8_t> rgb(3 * kSide * kSide);
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) {
        uint8_t* px = &rgb[3 * (y * kSide + x)];
        switch (k % 3) {
          case 0:  // gradient
            px[0] = static_cast<uint8_t>((a + 8 * x) & 0xff),
            px[1] = static_cast<uint8_t>((b + 8 * y) & 0xff), px[2] = static_cast<uint8_t>(c);
            break;
          case 1:  // stripes
            px[0] = px[1] = px[2] =
                ((x + y) / (1 + r / 4)) % 2 ? static_cast<uint8_t>(a) : static_cast<uint8_t>(b);
            break;
          default:  // a disc on a plain background
            const bool in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
            px[0] = in ? a : 255 - a, px[1] = in ? b : 255 - b, px[2] = in ? c : 255 - c;
        }
      }
    out.push_back(std::move(rgb));
  }
  return out;
}

// CIFAR-100 binary records: coarse label, fine label, R plane, G plane, B plane.
void write_cifar(const std::string& path, const std::vector<Picture>& pictures) {
  std::ofstream out(path, std::ios::binary);
  for (const Picture& p : pictures) {
    out.put(static_cast<char>(p.label % 20)).put(static_cast<char>(p.label));
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < kSide * kSide; ++i) out.put(static_cast<char>(p.rgb[3 * i + c]));
  }
}

struct Accuracy {
  double percent = -1;
  int hits = -1, total = -1;
};
Accuracy parse_accuracy(const std::string& out, const std::string& which) {
  std::smatch m;
  Accuracy a;
  if (std::regex_search(out, m,
                        std::regex(which + " accuracy: ([0-9.]+)% \\(([0-9]+)/([0-9]+)\\)")))
    a = {std::stod(m[1]), std::stoi(m[2]), std::stoi(m[3])};
  return a;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::istringstream ls(line);
    for (std::string cell; std::getline(ls, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    rows.push_back(cells);
  }
  return rows;
}

// Built once: the data file, and the library's predictions for every picture.
struct Shared {
  std::string dir, data_file;
  std::vector<Picture> pictures;                  // kImages + kExtra
  std::vector<zsclip::Classification> reference;  // of the first kImages, through classify_image
  int expected_top1 = 0, expected_top5 = 0;
};

class Cifar100Test : public ::testing::Test {
 protected:
  void SetUp() override {
    ZSCLIP_REQUIRE_TINY_EXPORTS();
    ZSCLIP_REQUIRE_SHARED("images/chelsea.png");
    ASSERT_TRUE(fs::exists(example_path()))
        << "build the cifar100_zeroshot target: " << example_path();
  }
  // Built on first use only: ctest runs each test in its own process, and the error tests need no
  // model.
  static const Shared& shared() {
    if (!shared_) shared_ = build();
    return *shared_;
  }
  static std::unique_ptr<Shared> build() {
    auto s = std::make_unique<Shared>();
    s->dir = temp_dir("cifar100_" + std::to_string(::getpid()));
    s->data_file = s->dir + "/test.bin";
    const auto classifier = zsclip::ZeroShotClassifier::create(
        tiny_export("state_dict"), zsclip::builtin_classes("cifar100"),
        zsclip::builtin_templates("openai-cifar"));
    const auto rgb = make_pictures(kImages + kExtra);
    for (int i = 0; i < kImages + kExtra; ++i) {
      Picture p;
      p.rgb = rgb[i];
      if (i < kImages) {
        zsclip::Classification c =
            classifier.classify_image(to_image8(p.rgb), "picture " + std::to_string(i));
        std::vector<int> top;
        for (const auto& t : c.top) top.push_back(t.index);
        // Half the labels are the top-1 prediction, a quarter the third best, a quarter outside the
        // top 5.
        if (i % 2 == 0) {
          p.label = top[0];
        } else if (i % 4 == 1) {
          p.label = top[2];
        } else {
          p.label = (i * 37) % 100;
          while (std::find(top.begin(), top.end(), p.label) != top.end())
            p.label = (p.label + 1) % 100;
        }
        s->expected_top1 += p.label == top[0];
        s->expected_top5 += std::find(top.begin(), top.end(), p.label) != top.end();
        s->reference.push_back(std::move(c));
      } else {
        p.label = 99;
      }
      s->pictures.push_back(std::move(p));
    }
    write_cifar(s->data_file, s->pictures);
    return s;
  }
  static std::unique_ptr<Shared> shared_;
};
std::unique_ptr<Shared> Cifar100Test::shared_;

// Checks a predictions CSV against the reference; `exact` for batch size 1, where the encoder sees
// exactly what classify_image gives it. Batched encoder calls may round differently, so there two
// classes may only swap places when the reference gives them the same probability to 1e-6.
void check_predictions(const Shared& s, const std::string& csv, bool exact, int* top1_hits,
                       int* top5_hits) {
  const auto rows = read_csv(csv);
  ASSERT_EQ(rows.size(), size_t(kImages + 1)) << csv;
  EXPECT_EQ(rows[0],
            (std::vector<std::string>{"index", "label", "top1", "top2", "top3", "top4", "top5"}));
  *top1_hits = *top5_hits = 0;
  for (int i = 0; i < kImages; ++i) {
    const auto& row = rows[i + 1];
    ASSERT_EQ(row.size(), 7u) << "row " << i;
    EXPECT_EQ(std::stoi(row[0]), i);
    const int label = std::stoi(row[1]);
    EXPECT_EQ(label, s.pictures[i].label) << "row " << i;
    const auto& ref = s.reference[i];
    for (int k = 0; k < 5; ++k) {
      const int got = std::stoi(row[2 + k]), want = ref.top[k].index;
      ASSERT_TRUE(got >= 0 && got < 100) << "row " << i;
      if (exact) {
        EXPECT_EQ(got, want) << "image " << i << " top" << k + 1;
      } else if (got != want) {
        EXPECT_NEAR(ref.probs[got], ref.probs[want], 1e-6) << "image " << i << " top" << k + 1;
      }
    }
    *top1_hits += std::stoi(row[2]) == label;
    for (int k = 0; k < 5; ++k) *top5_hits += std::stoi(row[2 + k]) == label;
  }
}

TEST_F(Cifar100Test, PredictionsMatchTheLibraryAndAccuracyIsConsistent) {
  const Shared& s = shared();
  const std::string csv = s.dir + "/pred_b1.csv", report = s.dir + "/report_b1";
  const CliResult r = run_example("--model " + sh(tiny_export("state_dict")) + " --data " +
                                  sh(s.dir) + " --limit 40 --batch-size 1 --predictions " +
                                  sh(csv) + " --report " + sh(report));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos)
      << "progress bar drawn although stderr is no terminal";
  EXPECT_NE(r.out.find("images       40 of 44"), std::string::npos) << r.out;

  int top1 = 0, top5 = 0;
  check_predictions(s, csv, /*exact=*/true, &top1, &top5);
  const Accuracy a1 = parse_accuracy(r.out, "top-1"), a5 = parse_accuracy(r.out, "top-5");
  ASSERT_EQ(a1.total, kImages) << r.out;
  ASSERT_EQ(a5.total, kImages) << r.out;
  EXPECT_EQ(a1.hits, top1);
  EXPECT_EQ(a5.hits, top5);
  EXPECT_EQ(a1.hits, s.expected_top1);
  EXPECT_EQ(a5.hits, s.expected_top5);
  EXPECT_NEAR(a1.percent, 100.0 * top1 / kImages, 0.005);
  EXPECT_NEAR(a5.percent, 100.0 * top5 / kImages, 0.005);
  EXPECT_NE(r.out.find("images/s"), std::string::npos) << r.out;

  // per_class_accuracy.csv agrees with the predictions.
  const auto preds = read_csv(csv);
  std::map<int, std::array<int, 3>> per_class;  // count, top1, top5
  for (size_t i = 1; i < preds.size(); ++i) {
    auto& c = per_class[std::stoi(preds[i][1])];
    ++c[0];
    c[1] += preds[i][2] == preds[i][1];
    for (int k = 2; k < 7; ++k) c[2] += preds[i][k] == preds[i][1];
  }
  const auto classes_csv = read_csv(report + "/per_class_accuracy.csv");
  ASSERT_EQ(classes_csv.size(), 101u);
  EXPECT_EQ(classes_csv[0], (std::vector<std::string>{"class", "name", "count", "top1", "top5"}));
  const auto& names = zsclip::builtin_classes("cifar100");
  for (int c = 0; c < 100; ++c) {
    const auto& row = classes_csv[c + 1];
    ASSERT_EQ(row.size(), 5u) << "class " << c;
    EXPECT_EQ(row[0], std::to_string(c));
    EXPECT_EQ(row[1], names[c]);
    const auto it = per_class.find(c);
    if (it == per_class.end()) {
      EXPECT_EQ(row[2], "0");
      EXPECT_EQ(row[3], "");
    } else {
      EXPECT_EQ(std::stoi(row[2]), it->second[0]) << "class " << c;
      EXPECT_NEAR(std::stod(row[3]), double(it->second[1]) / it->second[0], 1e-4) << "class " << c;
      EXPECT_NEAR(std::stod(row[4]), double(it->second[2]) / it->second[0], 1e-4) << "class " << c;
    }
  }
  // The pictures are real PNGs of a sensible size: a 100x100 matrix scaled up, a grid of 32
  // samples.
  const cv::Mat confusion = cv::imread(report + "/confusion.png", cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(confusion.empty());
  EXPECT_EQ(confusion.type(), CV_8UC3);
  EXPECT_GE(confusion.cols, 500);
  EXPECT_GE(confusion.rows, 500);
  EXPECT_LE(confusion.cols, 4000);
  const cv::Mat samples = cv::imread(report + "/samples.png", cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(samples.empty());
  EXPECT_GE(samples.cols, 8 * 64);
  EXPECT_GE(samples.rows, 4 * 64);
  EXPECT_LE(samples.cols, 4000);
  // The heat map is not blank: a matrix with 40 images has cells of different colours.
  cv::Mat grey;
  cv::cvtColor(confusion, grey, cv::COLOR_BGR2GRAY);
  double lo = 0, hi = 0;
  cv::minMaxLoc(grey, &lo, &hi);
  EXPECT_LT(lo, hi);
}

TEST_F(Cifar100Test, BatchedRunGivesTheSamePredictions) {
  const Shared& s = shared();
  const std::string csv = s.dir + "/pred_b16.csv";
  // 40 images in batches of 16: two full batches and a partial one, prepared while encoding.
  const CliResult r =
      run_example("--model=" + sh(tiny_export("state_dict")) + " --data=" + sh(s.data_file) +
                  " --limit=40 --batch-size=16 --templates openai-cifar --predictions " + sh(csv));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  int top1 = 0, top5 = 0;
  check_predictions(s, csv, /*exact=*/false, &top1, &top5);
  EXPECT_EQ(parse_accuracy(r.out, "top-1").hits, top1) << r.out;
  EXPECT_EQ(parse_accuracy(r.out, "top-5").hits, top5) << r.out;
}

TEST_F(Cifar100Test, TemplateFileAndBuiltinNameGiveTheSameResult) {
  const Shared& s = shared();
  const std::string templ = s.dir + "/templates.txt";
  std::ofstream(templ) << "a photo of a {}.\n";  // the built-in "simple" set
  const std::string common =
      "--model " + sh(tiny_export("state_dict")) + " --data " + sh(s.dir) + " --limit 8 ";
  const CliResult by_file =
      run_example(common + "--templates " + sh(templ) + " --predictions " + sh(s.dir + "/t1.csv"));
  const CliResult by_name =
      run_example(common + "--templates simple --predictions " + sh(s.dir + "/t2.csv"));
  ASSERT_EQ(by_file.status, 0) << by_file.err;
  ASSERT_EQ(by_name.status, 0) << by_name.err;
  EXPECT_EQ(read_file(s.dir + "/t1.csv"), read_file(s.dir + "/t2.csv"));
  EXPECT_EQ(read_csv(s.dir + "/t1.csv").size(), 9u);
  // The rows are what the library gives with that one template (ties as in check_predictions).
  const auto classifier = zsclip::ZeroShotClassifier::create(tiny_export("state_dict"),
                                                             zsclip::builtin_classes("cifar100"),
                                                             zsclip::builtin_templates("simple"));
  const auto rows = read_csv(s.dir + "/t1.csv");
  for (int i = 0; i < 8; ++i) {
    const auto c = classifier.classify_image(to_image8(s.pictures[i].rgb));
    for (int k = 0; k < 5; ++k) {
      const int got = std::stoi(rows[i + 1][2 + k]), want = c.top[k].index;
      if (got != want) {
        EXPECT_NEAR(c.probs[got], c.probs[want], 1e-6) << "image " << i << " top" << k + 1;
      }
    }
  }
}

TEST_F(Cifar100Test, BadDataIsRefusedNamingTheFile) {
  const std::string model = " --model " + sh(tiny_export("state_dict"));
  auto expect_refused = [&](const std::string& data, const std::vector<std::string>& words) {
    const CliResult r = run_example("--data " + sh(data) + model);
    EXPECT_EQ(r.status, 1) << data << ": " << r.out << r.err;
    for (const auto& w : words)
      EXPECT_NE(r.err.find(w), std::string::npos) << "no '" << w << "' in: " << r.err;
  };
  // Four valid records (grey pictures, labels 7, 8, 9, 10) to damage.
  std::vector<Picture> four(4);
  for (int i = 0; i < 4; ++i)
    four[i] = {std::vector<uint8_t>(3 * kSide * kSide, static_cast<uint8_t>(40 * i)), 7 + i};
  const std::string good = temp_dir("cifar100_good");
  write_cifar(good + "/test.bin", four);
  const std::string bytes = read_file(good + "/test.bin");
  ASSERT_EQ(bytes.size(), 4 * kRecord);

  const std::string bad_size = temp_dir("cifar100_bad_size");
  std::ofstream(bad_size + "/test.bin", std::ios::binary) << bytes.substr(0, 2 * kRecord + 10);
  expect_refused(bad_size, {bad_size + "/test.bin", std::to_string(2 * kRecord + 10), "3074"});

  const std::string empty = temp_dir("cifar100_empty");
  std::ofstream(empty + "/test.bin", std::ios::binary);
  expect_refused(empty, {empty + "/test.bin", "size 0"});

  const std::string bad_label = temp_dir("cifar100_bad_label");
  std::string records = bytes.substr(0, 4 * kRecord);
  records[3 * kRecord + 1] = static_cast<char>(100);  // record 3: fine label 100
  std::ofstream(bad_label + "/test.bin", std::ios::binary) << records;
  expect_refused(bad_label, {bad_label + "/test.bin", "record 3", "fine label 100"});

  const std::string bad_coarse = temp_dir("cifar100_bad_coarse");
  records = bytes.substr(0, 4 * kRecord);
  records[1 * kRecord] = static_cast<char>(20);  // record 1: coarse label 20
  std::ofstream(bad_coarse + "/test.bin", std::ios::binary) << records;
  expect_refused(bad_coarse, {bad_coarse + "/test.bin", "record 1", "coarse label 20"});

  const std::string missing = good + "/no_such_dir";
  expect_refused(missing, {missing});
  const std::string no_bin = temp_dir("cifar100_no_bin");
  expect_refused(no_bin, {no_bin + "/test.bin"});
}

TEST_F(Cifar100Test, UsageErrorsExitWithStatus2) {
  const std::string data = temp_dir("cifar100_usage");
  write_cifar(data + "/test.bin", {Picture{std::vector<uint8_t>(3 * kSide * kSide, 128), 5}});
  const std::string ok = "--model " + sh(tiny_export("state_dict")) + " --data " + sh(data);
  for (const std::string& args :
       {ok + " --bogus", ok + " --limit 0", ok + " --batch-size x", ok + " --limit",
        "--data " + sh(data), "--model " + sh(tiny_export("state_dict"))}) {
    const CliResult r = run_example(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find("usage:"), std::string::npos) << args;
  }
  const CliResult help = run_example("--help");
  EXPECT_EQ(help.status, 0);
  for (const char* flag :
       {"--model", "--data", "--limit", "--batch-size", "--templates", "--predictions", "--report"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  // An unknown template set is an error of the run (exit 1), reported before the model loads.
  const CliResult templ = run_example(ok + " --templates no-such-set");
  EXPECT_EQ(templ.status, 1) << templ.err;
  EXPECT_NE(templ.err.find("no-such-set"), std::string::npos) << templ.err;
}

}  // namespace
