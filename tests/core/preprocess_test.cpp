// CLIP preprocessing: parity with OpenAI's _transform on ../shared images, with torchvision/PIL on
// the fixtures of tools/make_preprocess_fixtures.py, error handling, and batches.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "process_util.h"
#include "test_util.h"
#include "zsclip/error.h"
#include "zsclip/image.h"
#include "zsclip/preprocess.h"

namespace {

using zsclip::ErrorCode;
using zsclip::testing::read_file;
using zsclip::testing::shared_path;
using zsclip::testing::temp_dir;
using zsclip::testing::test_data;

std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Max |a - b| and the number of elements beyond `tol`.
std::pair<double, size_t> compare(const float* a, const std::vector<float>& b, double tol) {
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    worst = std::max(worst, d);
    bad += d >= tol;
  }
  return {worst, bad};
}

// Asserts `fn` throws zsclip::Error with `code` and a message containing `needle`.
template <typename Fn>
void expect_error(Fn fn, ErrorCode code, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected zsclip::Error(" << zsclip::error_code_name(code) << ")";
  } catch (const zsclip::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << e.what() << " lacks " << needle;
  }
}

TEST(Preprocess, SharedImagesMatchOpenAI) {
  ZSCLIP_REQUIRE_SHARED("images/astronaut.png");
  ZSCLIP_REQUIRE_SHARED("clip/openai-tiny/pixels/astronaut.f32");
  const zsclip::Preprocessor pre;
  ASSERT_EQ(pre.image_size(), 224);
  const float* stdv = pre.config().std.data();
  const double one_level = 1.0 / 255.0 / *std::min_element(stdv, stdv + 3);
  struct Item {
    const char* file;
    bool exact;
  };
  for (const Item& it :
       {Item{"astronaut.png", true}, Item{"chelsea.png", true}, Item{"coffee.png", true},
        Item{"rocket.jpg", true}, Item{"camera.png", true}, Item{"horse.png", false},
        Item{"green_palette.png", false}}) {
    SCOPED_TRACE(it.file);
    const std::string stem = std::string(it.file).substr(0, std::string(it.file).rfind('.'));
    const auto expected = read_f32(shared_path("clip/openai-tiny/pixels/" + stem + ".f32"));
    ASSERT_EQ(expected.size(), 3u * 224 * 224);
    const zsclip::FloatTensor t = pre.from_file(shared_path(std::string("images/") + it.file));
    ASSERT_EQ(t.shape, (std::vector<int64_t>{3, 224, 224}));
    const auto [worst, bad] = compare(t.ptr(), expected, it.exact ? 1e-6 : one_level);
    EXPECT_EQ(bad, 0u) << "max |d| = " << worst;
  }
}

TEST(Preprocess, SharedTruncatedJpegIsRefused) {
  ZSCLIP_REQUIRE_SHARED("images/truncated.jpg");
  const zsclip::Preprocessor pre;
  expect_error([&] { pre.from_file(shared_path("images/truncated.jpg")); },
               ErrorCode::kInvalidImage, "truncated.jpg");
  expect_error([&] { pre.from_file(shared_path("images/truncated.jpg")); },
               ErrorCode::kInvalidImage, "truncated");
}

TEST(Preprocess, FixturesMatchTorchvision) {
  const auto j = nlohmann::json::parse(read_file(test_data("preprocess/cases.json")));
  ASSERT_GE(j.at("preprocess").size(), 20u);
  for (const auto& c : j.at("preprocess")) {
    const std::string input = c.at("input");
    const int n = c.at("image_size");
    SCOPED_TRACE(input + " n=" + std::to_string(n) + " " + c.at("expected").get<std::string>());
    zsclip::PreprocessConfig cfg;
    cfg.image_size = n;
    const std::string interp = c.at("interpolation");
    cfg.interpolation = interp == "bicubic"    ? zsclip::Interpolation::kBicubic
                        : interp == "bilinear" ? zsclip::Interpolation::kBilinear
                                               : zsclip::Interpolation::kNearest;
    cfg.resize = c.at("resize") == "stretch"       ? zsclip::ResizeRule::kStretch
                 : c.at("resize") == "longer_side" ? zsclip::ResizeRule::kLongerSide
                                                   : zsclip::ResizeRule::kShorterSide;
    cfg.fill = c.value("fill", 0);
    cfg.apply_exif_orientation = c.at("exif");
    const zsclip::Preprocessor pre(cfg);
    const auto expected = read_f32(test_data("preprocess/" + c.at("expected").get<std::string>()));
    const zsclip::FloatTensor t = pre.from_file(test_data("preprocess/" + input));
    ASSERT_EQ(t.data.size(), expected.size());
    const auto [worst, bad] = compare(t.ptr(), expected, 1e-6);
    EXPECT_EQ(bad, 0u) << "max |d| = " << worst;
  }
}

TEST(Preprocess, FixtureErrorsAreRefused) {
  const auto j = nlohmann::json::parse(read_file(test_data("preprocess/cases.json")));
  const zsclip::Preprocessor pre;
  for (const auto& c : j.at("errors")) {
    const std::string input = c.at("input");
    SCOPED_TRACE(input);
    try {
      pre.from_file(test_data("preprocess/" + input));
      ADD_FAILURE() << "expected an error";
    } catch (const zsclip::Error& e) {
      EXPECT_EQ(std::string(zsclip::error_code_name(e.code())), c.at("code").get<std::string>())
          << e.what();
      EXPECT_NE(std::string(e.what()).find(input), std::string::npos) << e.what();
    }
  }
}

TEST(Preprocess, BadFilesGiveClearErrors) {
  const std::string dir = temp_dir("preprocess_errors");
  const zsclip::Preprocessor pre;
  const std::string good = read_file(test_data("preprocess/rgb_97x61.png"));
  ASSERT_GT(good.size(), 100u);

  write_file(dir + "/empty.png", "");
  expect_error([&] { pre.from_file(dir + "/empty.png"); }, ErrorCode::kInvalidImage, "empty.png");
  expect_error([&] { pre.from_file(dir + "/empty.png"); }, ErrorCode::kInvalidImage, "empty");

  std::string noise(3000, '\0');
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 11);
  write_file(dir + "/noise.jpg", noise);
  expect_error([&] { pre.from_file(dir + "/noise.jpg"); }, ErrorCode::kInvalidImage, "noise.jpg");

  std::filesystem::create_directories(dir + "/folder.png");
  expect_error([&] { pre.from_file(dir + "/folder.png"); }, ErrorCode::kInvalidArgument,
               "directory");

  expect_error([&] { pre.from_file(dir + "/missing.png"); }, ErrorCode::kNotFound, "missing.png");

  // Cut a valid PNG at several points: header only, mid-IDAT, just before IEND.
  for (size_t keep : {size_t{20}, good.size() / 2, good.size() - 5}) {
    SCOPED_TRACE(keep);
    write_file(dir + "/cut.png", good.substr(0, keep));
    expect_error([&] { pre.from_file(dir + "/cut.png"); }, ErrorCode::kInvalidImage, "cut.png");
  }
  // A JPEG cut in the middle of its entropy-coded data.
  const std::string jpg = read_file(test_data("preprocess/gradient_211x150.jpg"));
  write_file(dir + "/cut.jpg", jpg.substr(0, jpg.size() * 2 / 3));
  expect_error([&] { pre.from_file(dir + "/cut.jpg"); }, ErrorCode::kInvalidImage, "truncated");

  // A PNG whose IHDR declares 100000 x 100000 pixels: refused before any decoding.
  std::string huge = good;
  const unsigned char dims[8] = {0x00, 0x01, 0x86, 0xA0, 0x00, 0x01, 0x86, 0xA0};  // 100000, 100000
  huge.replace(16, 8, reinterpret_cast<const char*>(dims), 8);
  write_file(dir + "/huge.png", huge);
  expect_error([&] { pre.from_file(dir + "/huge.png"); }, ErrorCode::kInvalidImage,
               "100000x100000");
  expect_error([&] { pre.from_file(dir + "/huge.png"); }, ErrorCode::kInvalidImage, "huge.png");
  // Same for a JPEG whose frame header (SOF0) declares 65535 x 65535.
  std::string huge_jpg = jpg;
  const size_t sof = huge_jpg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  huge_jpg.replace(sof + 5, 4, "\xFF\xFF\xFF\xFF");
  write_file(dir + "/huge.jpg", huge_jpg);
  expect_error([&] { pre.from_file(dir + "/huge.jpg"); }, ErrorCode::kInvalidImage, "65535x65535");
  // The limit is configurable: a small image over a small limit is refused too.
  zsclip::DecodeOptions small;
  small.max_pixels = 100;
  expect_error([&] { zsclip::decode_image_buffer(good.data(), good.size(), "tiny-limit", small); },
               ErrorCode::kInvalidImage, "97x61");

  // Unreadable file: kPermissionDenied. Root reads anything, so the read runs in a child process
  // as the user nobody (and the control, a readable copy, must still be read there).
  write_file(dir + "/locked.png", good);
  write_file(dir + "/readable.png", good);
  ::chmod((dir + "/locked.png").c_str(), 0);
  ::chmod((dir + "/readable.png").c_str(), 0644);
  const int rc = zsclip::testing::run_in_child([&] {
    if (!zsclip::testing::drop_root()) return 2;
    pre.from_file(dir + "/readable.png");
    try {
      pre.from_file(dir + "/locked.png");
    } catch (const zsclip::Error& e) {
      const bool named = std::string(e.what()).find("locked.png") != std::string::npos;
      return e.code() == ErrorCode::kPermissionDenied && named ? 0 : 3;
    }
    return 4;
  });
  EXPECT_EQ(rc, 0) << "2: cannot become nobody; 3: wrong code or message; 4: read; 98: the "
                      "readable copy failed";
  ::chmod((dir + "/locked.png").c_str(), 0644);
}

TEST(Preprocess, BatchKeepsGoodImagesWhenOneIsBad) {
  const std::string dir = temp_dir("preprocess_batch");
  write_file(dir + "/bad.png", "not an image at all");
  zsclip::PreprocessConfig cfg;
  cfg.image_size = 32;
  const zsclip::Preprocessor pre(cfg);
  const std::vector<std::string> paths = {test_data("preprocess/rgb_97x61.png"), dir + "/bad.png",
                                          test_data("preprocess/l_45x70.png"), dir + "/absent.png",
                                          test_data("preprocess/rgba_57x40.png")};
  for (int threads : {1, 2, 0}) {
    SCOPED_TRACE(threads);
    std::vector<zsclip::Preprocessor::ItemStatus> status;
    const zsclip::FloatTensor batch = pre.batch_files(paths, &status, threads);
    ASSERT_EQ(batch.shape, (std::vector<int64_t>{5, 3, 32, 32}));
    ASSERT_EQ(status.size(), 5u);
    const size_t per = 3 * 32 * 32;
    for (size_t i = 0; i < paths.size(); ++i) {
      const bool bad = i == 1 || i == 3;
      EXPECT_EQ(status[i].ok, !bad) << i;
      if (bad) {
        EXPECT_NE(status[i].error.find(i == 1 ? "bad.png" : "absent.png"), std::string::npos)
            << status[i].error;
        EXPECT_EQ(status[i].code, i == 1 ? ErrorCode::kInvalidImage : ErrorCode::kNotFound);
        for (size_t k = 0; k < per; ++k) ASSERT_EQ(batch.data[i * per + k], 0.0f);
      } else {
        const zsclip::FloatTensor one = pre.from_file(paths[i]);
        EXPECT_EQ(0, std::memcmp(one.ptr(), batch.ptr() + i * per, per * sizeof(float))) << i;
      }
    }
  }
}

TEST(Preprocess, EntryPointsAgree) {
  zsclip::PreprocessConfig cfg;
  cfg.image_size = 40;
  const zsclip::Preprocessor pre(cfg);
  for (const char* name : {"rgb_97x61.png", "l_45x70.png", "rgba_57x40.png"}) {
    SCOPED_TRACE(name);
    const std::string path = test_data(std::string("preprocess/") + name);
    const zsclip::FloatTensor ref = pre.from_file(path);
    const size_t bytes = ref.data.size() * sizeof(float);
    const std::string encoded = read_file(path);
    EXPECT_EQ(0, std::memcmp(pre.from_buffer(encoded.data(), encoded.size(), name).ptr(), ref.ptr(),
                             bytes));
    const zsclip::Image8 im = zsclip::decode_image_file(path);
    EXPECT_EQ(0, std::memcmp(pre.from_image(im).ptr(), ref.ptr(), bytes));
    const cv::Mat mat = cv::imread(path, cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(mat.empty());
    EXPECT_EQ(0, std::memcmp(pre.from_mat(mat).ptr(), ref.ptr(), bytes));
    std::vector<float> into(ref.data.size(), -1.0f);
    pre.from_file_into(path, into.data());
    EXPECT_EQ(0, std::memcmp(into.data(), ref.ptr(), bytes));
    if (im.channels == 3) {
      // Strided RGB rows (5 bytes of padding each).
      const size_t stride = static_cast<size_t>(im.width) * 3 + 5;
      std::vector<uint8_t> padded(stride * im.height, 7);
      for (int y = 0; y < im.height; ++y)
        std::memcpy(&padded[y * stride], &im.data[static_cast<size_t>(y) * im.width * 3],
                    im.width * 3);
      EXPECT_EQ(0, std::memcmp(pre.from_rgb(padded.data(), im.width, im.height, stride).ptr(),
                               ref.ptr(), bytes));
    }
  }
}

TEST(Preprocess, DecodeKeepsPillowModes) {
  struct Item {
    const char* file;
    zsclip::PixelMode mode;
    int channels;
  };
  for (const Item& it : {Item{"p_36x50.png", zsclip::PixelMode::kPalette, 3},
                         Item{"bin_41x23.png", zsclip::PixelMode::kBinary, 1},
                         Item{"l_45x70.png", zsclip::PixelMode::kGray, 1},
                         Item{"la_33x29.png", zsclip::PixelMode::kRGBA, 4},
                         Item{"l_45x70.jpg", zsclip::PixelMode::kGray, 1},
                         Item{"rgb16_19x23.png", zsclip::PixelMode::kRGB, 3}}) {
    SCOPED_TRACE(it.file);
    const zsclip::Image8 im =
        zsclip::decode_image_file(test_data(std::string("preprocess/") + it.file));
    EXPECT_EQ(im.mode, it.mode);
    EXPECT_EQ(im.channels, it.channels);
  }
}

TEST(Preprocess, InvalidArgumentsAreRefused) {
  zsclip::PreprocessConfig cfg;
  cfg.crop = zsclip::CropRule::kNone;
  expect_error([&] { zsclip::Preprocessor p(cfg); }, ErrorCode::kInvalidConfig, "crop");
  cfg = {};
  cfg.image_size = 0;
  expect_error([&] { zsclip::Preprocessor p(cfg); }, ErrorCode::kInvalidConfig, "image_size");
  const zsclip::Preprocessor pre;
  expect_error([&] { pre.from_rgb(nullptr, 3, 3); }, ErrorCode::kInvalidArgument, "from_rgb");
  expect_error([&] { pre.from_mat(cv::Mat()); }, ErrorCode::kInvalidArgument, "from_mat");
  expect_error([&] { pre.from_mat(cv::Mat(4, 4, CV_32FC3)); }, ErrorCode::kInvalidArgument,
               "8-bit");
  zsclip::Image8 broken;
  broken.width = 4;
  broken.height = 4;
  broken.channels = 3;
  expect_error([&] { pre.from_image(broken); }, ErrorCode::kInvalidArgument, "Image8");
}

}  // namespace

namespace {

TEST(Preprocess, ExtremeAspectRatiosStayBounded) {
  // 1 x 100000: the resized long side is 22.4 million pixels (15 GB for the whole 224-wide resize
  // as 8-bit RGB), but only the crop is computed. In a child whose address space allows 256 MiB
  // more, both orientations must work and give exactly what a constant colour gives.
  const zsclip::Preprocessor pre;
  std::vector<uint8_t> column(100000 * 3);
  for (size_t i = 0; i < column.size(); ++i)
    column[i] = static_cast<uint8_t>(i % 3 == 0 ? 10 : i % 3 == 1 ? 120 : 250);
  std::vector<uint8_t> patch(3 * 3 * 3);
  for (size_t i = 0; i < patch.size(); ++i) patch[i] = column[i];
  const zsclip::FloatTensor want = pre.from_rgb(patch.data(), 3, 3);
  const int rc = zsclip::testing::run_in_child([&] {
    const bool limited = zsclip::testing::limit_address_space(256ll << 20);
    for (auto dims : {std::pair<int, int>{1, 100000}, std::pair<int, int>{100000, 1}}) {
      const zsclip::FloatTensor t = pre.from_rgb(column.data(), dims.first, dims.second);
      if (t.shape != std::vector<int64_t>{3, 224, 224}) return 3;
      if (t.data != want.data) return 4;
    }
    return limited ? 0 : 1;
  });
  if (rc == 1)
    GTEST_SKIP() << "correct, but the address space could not be limited (sanitizer build)";
  EXPECT_EQ(rc, 0) << "3: wrong shape; 4: not the constant colour; 98: out of memory";
}

}  // namespace
