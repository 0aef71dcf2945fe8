// Bad and odd images through the classifier API and the CLI: each bad one is an error naming the
// file (never a crash or a hang), and every other image in the batch is still classified.
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <random>

#include "model_util.h"
#include "zsclip/classifier.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;

struct Input {
  std::string path;
  bool good;
};

void put_be32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (24 - 8 * i));
}

// Writes every odd input into `dir` and returns them in batch order.
std::vector<Input> make_inputs(const std::string& dir) {
  std::vector<Input> in;
  auto write = [&](const std::string& name, const std::string& bytes, bool good) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    in.push_back({dir + "/" + name, good});
  };
  const std::string good_png = read_file(source_path("examples/images/blue_star.png"));
  in.push_back({source_path("examples/images/red_circle.png"), true});
  write("empty.png", "", false);
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  write("random_bytes.jpg", noise, false);
  write("truncated.png", good_png.substr(0, good_png.size() / 2), false);
  std::string jpg = read_file(test_data("preprocess/gradient_211x150.jpg"));
  write("truncated.jpg", jpg.substr(0, jpg.size() * 2 / 3), false);
  // A valid PNG whose header claims 100000 x 100000 pixels (CRC fixed so only the size is wrong).
  std::vector<uchar> small;
  cv::imencode(".png", cv::Mat(4, 4, CV_8UC3, cv::Scalar(10, 20, 30)), small);
  std::string huge(small.begin(), small.end());
  put_be32(huge, 16, 100000);
  put_be32(huge, 20, 100000);
  put_be32(huge, 29,
           static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(huge.data() + 12), 17)));
  write("huge_header.png", huge, false);
  std::filesystem::create_directories(dir + "/a_directory.png");
  in.push_back({dir + "/a_directory.png", false});
  in.push_back({dir + "/missing.png", false});
  in.push_back(
      {test_data("preprocess/l16_5x5.png"), false});  // 16-bit grey: refused (Pillow's mode I)
  in.push_back({test_data("preprocess/cmyk_8x8.jpg"), false});  // CMYK: refused
  in.push_back({test_data("preprocess/rgb_1x1.png"), true});
  in.push_back({test_data("preprocess/rgb_300x2.png"), true});
  in.push_back({test_data("preprocess/rgb_3x200.png"), true});
  in.push_back({test_data("preprocess/rgb16_19x23.png"), true});
  in.push_back({test_data("preprocess/exif6_97x61.jpg"), true});
  in.push_back({source_path("examples/images/green_triangle.png"), true});
  return in;
}

const std::vector<std::string> kLabels = {"red circle", "blue star", "green triangle",
                                          "yellow square"};

TEST(BadImages, ApiReportsEachAndKeepsTheOthers) {
  const auto inputs = make_inputs(temp_dir("bad_images_api"));
  ClassifierOptions co;
  co.batch_size = 4;
  auto clf = ZeroShotClassifier::create(source_path("models/shapes"), kLabels,
                                        builtin_templates("simple"), {}, co);
  std::vector<std::string> paths;
  for (const auto& i : inputs) paths.push_back(i.path);
  auto results = clf.classify_files(paths);
  ASSERT_EQ(results.size(), inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    EXPECT_EQ(results[k].source, inputs[k].path);
    EXPECT_EQ(results[k].ok, inputs[k].good) << inputs[k].path << ": " << results[k].error;
    if (!inputs[k].good) {
      const std::string name = std::filesystem::path(inputs[k].path).filename().string();
      EXPECT_NE(results[k].error.find(name), std::string::npos) << results[k].error;
      EXPECT_TRUE(results[k].top.empty());
      // The single-image call throws the same kind of error, quickly.
      auto start = std::chrono::steady_clock::now();
      try {
        clf.classify_file(inputs[k].path);
        ADD_FAILURE() << inputs[k].path << " was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), results[k].code) << e.what();
      }
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    } else {
      ASSERT_EQ(results[k].probs.size(), kLabels.size());
      Classification one = clf.classify_file(inputs[k].path);
      EXPECT_EQ(one.top[0].label, results[k].top[0].label);
    }
  }
  EXPECT_EQ(results.front().top[0].label, "red circle");
  EXPECT_EQ(results.back().top[0].label, "green triangle");
}

TEST(BadImages, CliReportsEachAndKeepsTheOthers) {
  const auto inputs = make_inputs(temp_dir("bad_images_cli"));
  std::string args = "classify --json --batch-size 3 --labels " +
                     sh("red circle,blue star,green triangle,yellow square");
  for (const auto& i : inputs) args += " " + sh(i.path);
  CliResult r = run_cli(args);
  EXPECT_EQ(r.status, 1) << r.err;  // not a signal: 1 means "some images failed"
  json out = json::parse(r.out);
  ASSERT_EQ(out.size(), inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    EXPECT_EQ(out[k]["file"], inputs[k].path);
    EXPECT_EQ(out[k].contains("error"), !inputs[k].good) << out[k].dump();
    if (!inputs[k].good)
      EXPECT_NE(r.err.find(std::filesystem::path(inputs[k].path).filename().string()),
                std::string::npos);
    else
      EXPECT_EQ(out[k]["probs"].size(), kLabels.size());
  }
  // Every bad file is also refused by `zsclip preprocess` with a non-zero exit and its name.
  const std::string out_file = temp_dir("bad_images_pre") + "/x.f32";
  for (const auto& i : inputs) {
    if (i.good) continue;
    CliResult p = run_cli("preprocess --image-size 32 --out " + sh(out_file) + " " + sh(i.path));
    EXPECT_EQ(p.status, 1) << i.path;
    EXPECT_NE(p.err.find(std::filesystem::path(i.path).filename().string()), std::string::npos)
        << p.err;
  }
}

}  // namespace
}  // namespace zsclip
