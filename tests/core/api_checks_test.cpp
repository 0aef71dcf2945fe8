// Public entry points of zsclip::core that take caller-made data: a HostTensor whose shape does not
// match its data, non-finite features, out-of-range options and oversized pixel buffers are errors
// (kInvalidArgument / kInvalidImage), never a read past the end, a NaN probability or a clamp.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>

#include <cmath>
#include <functional>
#include <limits>

#include "zsclip/error.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

void expect_error(const std::function<void()>& fn, ErrorCode code, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "accepted (expected \"" << needle << "\")";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

ZeroShotHead head64() {
  FloatTensor w({2, 64}, 0.f);
  w.at(0, 0) = 1.f;
  w.at(1, 1) = 1.f;
  return ZeroShotHead::from_weights({"x", "y"}, std::move(w), 100.f, "fp");
}

TEST(ApiChecks, HeadChecksTheShapeAgainstTheData) {
  const ZeroShotHead h = head64();
  // [2, 64] promised, 3 floats given: this returned 0.96 after reading past the data.
  const FloatTensor short_data({2, 64}, std::vector<float>{1, 2, 3});
  expect_error([&] { h.classify(short_data); }, ErrorCode::kInvalidArgument,
               "needs 128 values, but the data holds 3");
  expect_error([&] { h.logits(short_data); }, ErrorCode::kInvalidArgument, "[2, 64]");
  const FloatTensor negative({-1, 64}, std::vector<float>{});
  expect_error([&] { h.classify(negative); }, ErrorCode::kInvalidArgument, "negative");
  expect_error([&] { h.classify(FloatTensor({2, 63})); }, ErrorCode::kInvalidArgument, "[N, 64]");
  expect_error(
      [&] {
        ZeroShotHead::from_weights({"a"}, FloatTensor({1, 4}, std::vector<float>{1}), 1.f, "");
      },
      ErrorCode::kInvalidArgument, "weights");
  expect_error(
      [] {
        ZeroShotHead().classify(FloatTensor({1, 4}, 1.f));
      },
      ErrorCode::kInvalidArgument, "empty");
  // A valid call still works, including N = 0.
  FloatTensor x({1, 64}, 0.f);
  x.at(0, 1) = 2.f;
  EXPECT_EQ(h.classify(x, 1)[0].top[0].label, "y");
  EXPECT_TRUE(h.classify(FloatTensor({0, 64}), 1).empty());
}

TEST(ApiChecks, NonFiniteFeaturesAreAnError) {
  const ZeroShotHead h = head64();
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    FloatTensor x({2, 64}, 0.5f);
    x.at(1, 7) = bad;
    expect_error([&] { h.classify(x); }, ErrorCode::kInvalidArgument, "[1, 7] is not finite");
    expect_error([&] { h.classify_one(x.row(1)); }, ErrorCode::kInvalidArgument, "not finite");
    std::vector<float> out(2);
    expect_error([&] { h.probs(x.row(1), out.data()); }, ErrorCode::kInvalidArgument, "not finite");
  }
  expect_error([&] { h.classify_one(nullptr); }, ErrorCode::kInvalidArgument, "null");
}

TEST(ApiChecks, OptionsOutOfRangeAreErrorsNotClamps) {
  const ZeroShotHead h = head64();
  const FloatTensor x({1, 64}, 1.f);
  for (int k : {0, -3}) {
    expect_error([&] { h.classify(x, k); }, ErrorCode::kInvalidArgument, "top_k");
    expect_error([&] { h.classify_one(x.ptr(), k); }, ErrorCode::kInvalidArgument, "top_k");
  }
  EXPECT_EQ(h.classify(x, 99)[0].top.size(), 2u) << "more than C gives C";
  const Preprocessor pre;
  std::vector<float> out(pre.item_floats());
  expect_error([&] { pre.batch_files_into({"a.png"}, out.data(), -1); },
               ErrorCode::kInvalidArgument, "threads");
  TokenizerOptions o;
  o.context_length = 1;
  expect_error([&] { Tokenizer::from_merges({}, o); }, ErrorCode::kInvalidArgument,
               "context_length");
}

TEST(ApiChecks, TokenizerDefaultsToItsContextLength) {
  TokenizerOptions o;
  o.context_length = 16;
  const Tokenizer tok = Tokenizer::from_merges({{"a", "b"}}, o);
  EXPECT_EQ(tok.context_length(), 16);
  EXPECT_EQ(tok.tokenize({"ab", "x"}).shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(tok.tokenize({"ab"}, 5).shape, (std::vector<int64_t>{1, 5}));
  const std::string long_text = "a b c d e f g h i j k l m n o p q r";
  EXPECT_EQ(tok.encode_with_specials(long_text).size(), 16u);
  EXPECT_THROW(tok.encode_with_specials(long_text, 0, /*truncate=*/false), Error);
  EXPECT_EQ(Tokenizer::from_merges({}).tokenize({"x"}).shape, (std::vector<int64_t>{1, 77}));
}

TEST(ApiChecks, PixelBuffersGetTheDecodersLimit) {
  const Preprocessor pre;
  const std::vector<uint8_t> tiny(64, 128);
  // 2^30 x 2^30 used to end in bad_alloc or the OOM killer; the buffer must not even be read.
  expect_error([&] { pre.from_rgb(tiny.data(), 1 << 30, 1 << 30); }, ErrorCode::kInvalidImage,
               "exceeds the limit of 178956970 pixels");
  const cv::Mat huge(1 << 15, 1 << 15, CV_8UC3,
                     const_cast<uint8_t*>(tiny.data()));  // a header only
  expect_error([&] { pre.from_mat(huge); }, ErrorCode::kInvalidImage, "32768x32768");
  PreprocessConfig cfg;
  cfg.image_size = 8;
  cfg.max_pixels = 15;
  const Preprocessor small(cfg);
  expect_error([&] { small.from_rgb(tiny.data(), 4, 4); }, ErrorCode::kInvalidImage, "4x4");
  Image8 im;
  im.width = im.height = 4;
  im.channels = 3;
  im.data.assign(48, 7);
  expect_error([&] { small.from_image(im); }, ErrorCode::kInvalidImage, "16 pixels");
  EXPECT_EQ(small.from_rgb(tiny.data(), 3, 5).shape, (std::vector<int64_t>{3, 8, 8}));
}

}  // namespace
}  // namespace zsclip
