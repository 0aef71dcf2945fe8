// open_clip's preprocessing modes, bit-exact against open_clip's own output (../shared/clip/
// openclip-{gelu,knobs,longest}/pixels): resize_mode shortest / squash / longest (resize the longer
// side, pad centred with fill_color), bicubic and bilinear, their mean/std. Torch-free: the config
// is built from each folder's reference.json preprocess_cfg, as the exporter writes it.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/preprocess.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

PreprocessConfig config_of(const nlohmann::json& pc) {
  PreprocessConfig c;
  c.image_size = pc["size"][0].get<int>();
  for (int i = 0; i < 3; ++i) {
    c.mean[i] = pc["mean"][i].get<float>();
    c.std[i] = pc["std"][i].get<float>();
  }
  c.interpolation =
      pc["interpolation"] == "bilinear" ? Interpolation::kBilinear : Interpolation::kBicubic;
  const std::string mode = pc["resize_mode"];
  c.resize = mode == "longest"  ? ResizeRule::kLongerSide
             : mode == "squash" ? ResizeRule::kStretch
                                : ResizeRule::kShorterSide;
  c.crop = mode == "squash" ? CropRule::kNone : CropRule::kCenter;
  c.fill = pc.value("fill_color", 0);
  return c;
}

class OpenClipPixels : public ::testing::TestWithParam<std::string> {};

TEST_P(OpenClipPixels, BitExactFromFiles) {
  const std::string dir = "clip/" + GetParam();
  ZSCLIP_REQUIRE_SHARED(dir + "/reference.json");
  const auto ref = nlohmann::json::parse(read_file(shared_path(dir + "/reference.json")));
  const Preprocessor pre(config_of(ref["preprocess_cfg"]));
  for (const auto& im : ref["images"]) {
    const FloatTensor got = pre.from_file(shared_path("images/" + im["file"].get<std::string>()));
    const std::string want = read_file(shared_path(dir + "/" + im["pixels"].get<std::string>()));
    ASSERT_EQ(want.size(), got.data.size() * sizeof(float)) << im["file"];
    size_t differ = 0;
    for (size_t k = 0; k < got.data.size(); ++k)
      differ += std::memcmp(want.data() + 4 * k, &got.data[k], 4) != 0;
    EXPECT_EQ(differ, 0u) << GetParam() << " " << im["file"] << ": " << differ << " floats differ";
  }
}

INSTANTIATE_TEST_SUITE_P(Folders, OpenClipPixels,
                         ::testing::Values("openclip-gelu", "openclip-knobs", "openclip-longest"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string s = p.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

// Longer side: sizes are rounded half to even and the padding is centred, the floor half first.
TEST(PreprocessLongest, PadsCentredWithFill) {
  PreprocessConfig c;
  c.image_size = 8;
  c.resize = ResizeRule::kLongerSide;
  c.mean = {0.f, 0.f, 0.f};
  c.std = {1.f, 1.f, 1.f};
  c.fill = 255;
  c.interpolation = Interpolation::kNearest;
  const Preprocessor pre(c);
  // 16x5 white-ish image: ratio 2, height round(2.5) = 2 (half to even), padded 3 above, 3 below.
  std::vector<uint8_t> rgb(16 * 5 * 3, 10);
  const FloatTensor t = pre.from_rgb(rgb.data(), 16, 5);
  const float pad = 1.0f, px = 10.0f / 255.0f;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x)
      EXPECT_FLOAT_EQ(t.data[static_cast<size_t>(y * 8 + x)], (y >= 3 && y < 5) ? px : pad)
          << y << "," << x;
  // 5x16 (portrait): the padding goes left and right.
  const FloatTensor u = pre.from_rgb(rgb.data(), 5, 16);
  for (int x = 0; x < 8; ++x)
    EXPECT_FLOAT_EQ(u.data[static_cast<size_t>(4 * 8 + x)], (x >= 3 && x < 5) ? px : pad) << x;
}

TEST(PreprocessLongest, CropNoneNeedsStretch) {
  PreprocessConfig c;
  c.resize = ResizeRule::kLongerSide;
  c.crop = CropRule::kNone;
  EXPECT_THROW(Preprocessor{c}, Error);
  c.crop = CropRule::kCenter;
  c.fill = 300;
  EXPECT_THROW(Preprocessor{c}, Error);
}

}  // namespace
}  // namespace zsclip
