// Pillow-exact resampling: zsclip::resize against Image.resize outputs made by
// tools/make_preprocess_fixtures.py (tests/data/preprocess/cases.json, "resize").
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "image/resample.h"
#include "test_util.h"
#include "zsclip/error.h"
#include "zsclip/image.h"

namespace {

using zsclip::testing::read_file;
using zsclip::testing::test_data;

zsclip::Interpolation interpolation_of(const std::string& name) {
  if (name == "bicubic") return zsclip::Interpolation::kBicubic;
  if (name == "bilinear") return zsclip::Interpolation::kBilinear;
  return zsclip::Interpolation::kNearest;
}

struct ResizeCase {
  std::string input, mode, filter, expected;
  int width, height;
};

std::vector<ResizeCase> load_cases() {
  const auto j = nlohmann::json::parse(read_file(test_data("preprocess/cases.json")));
  std::vector<ResizeCase> out;
  for (const auto& c : j.at("resize"))
    out.push_back({c.at("input"), c.at("mode"), c.at("filter"), c.at("expected"), c.at("size")[0],
                   c.at("size")[1]});
  return out;
}

TEST(Resample, MatchesPillowOnFixtures) {
  const auto cases = load_cases();
  ASSERT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input + " -> " + std::to_string(c.width) + "x" + std::to_string(c.height) + " " +
                 c.filter);
    const zsclip::Image8 im = zsclip::decode_image_file(test_data("preprocess/" + c.input));
    EXPECT_STREQ(zsclip::pixel_mode_name(im.mode), c.mode == "LA" ? "RGBA" : c.mode.c_str());
    const zsclip::Image8 out = zsclip::resize(im, c.width, c.height, interpolation_of(c.filter));
    const std::string expected = read_file(test_data("preprocess/" + c.expected));
    ASSERT_EQ(out.data.size(), expected.size());
    size_t differ = 0;
    for (size_t i = 0; i < expected.size(); ++i)
      differ += out.data[i] != static_cast<uint8_t>(expected[i]);
    EXPECT_EQ(differ, 0u) << "bytes differing from PIL's Image.resize";
  }
}

TEST(Resample, RegionEqualsCropOfFullResize) {
  // The preprocessor resamples only the crop; every output pixel must be the full resize's.
  std::vector<uint8_t> src(37 * 23 * 3);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  const zsclip::detail::PixelView v{src.data(), 37, 23, 3, 37 * 3};
  for (auto interp : {zsclip::Interpolation::kBicubic, zsclip::Interpolation::kBilinear,
                      zsclip::Interpolation::kNearest}) {
    std::vector<uint8_t> full(50 * 19 * 3), part(11 * 7 * 3);
    zsclip::detail::resample_region(v, 50, 19, interp, 0, 0, 50, 19, full.data());
    zsclip::detail::resample_region(v, 50, 19, interp, 20, 5, 31, 12, part.data());
    for (int y = 0; y < 7; ++y)
      EXPECT_EQ(0, std::memcmp(&part[y * 11 * 3], &full[((y + 5) * 50 + 20) * 3], 11 * 3));
  }
}

TEST(Resample, SameSizeIsACopyAndRgbaKeepsColours) {
  zsclip::Image8 im;
  im.width = 2;
  im.height = 1;
  im.channels = 4;
  im.mode = zsclip::PixelMode::kRGBA;
  im.data = {200, 100, 50, 3, 1, 2, 3, 0};  // premultiplying would lose these colours
  const auto out = zsclip::resize(im, 2, 1, zsclip::Interpolation::kBicubic);
  EXPECT_EQ(out.data, im.data);
}

TEST(Resample, RejectsBadArguments) {
  zsclip::Image8 im;
  im.width = 2;
  im.height = 2;
  im.channels = 3;
  im.data.assign(12, 0);
  EXPECT_THROW(zsclip::resize(im, 0, 3, zsclip::Interpolation::kBicubic), zsclip::Error);
  im.data.resize(5);
  try {
    zsclip::resize(im, 3, 3, zsclip::Interpolation::kBicubic);
    FAIL() << "expected zsclip::Error";
  } catch (const zsclip::Error& e) {
    EXPECT_EQ(e.code(), zsclip::ErrorCode::kInvalidArgument);
  }
}

}  // namespace
