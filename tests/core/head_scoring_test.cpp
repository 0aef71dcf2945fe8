// Sigmoid scoring (models with a logit_bias, SigLIP-style) in the zero-shot head: per-class
// sigmoid(logit + bias), saved and reloaded (format 2 head files), refused where inconsistent.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "test_util.h"
#include "zsclip/error.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

ZeroShotHead sigmoid_head() {
  FloatTensor w({3, 2});
  w.data = {1.f, 0.f, 0.f, 1.f, 1.f, 1.f};
  return ZeroShotHead::from_weights({"x", "y", "xy"}, w, 10.f, "fp", {"{}"}, Scoring::kSigmoid,
                                    -2.5f);
}

TEST(HeadScoring, SigmoidIsPerClassWithTheBias) {
  const ZeroShotHead h = sigmoid_head();
  EXPECT_EQ(h.scoring(), Scoring::kSigmoid);
  EXPECT_EQ(h.logit_bias(), -2.5f);
  FloatTensor x({1, 2});
  x.data = {3.f, 4.f};  // cos with x: 0.6, y: 0.8, xy: 7 / (5 sqrt 2)
  const std::vector<double> cos = {0.6, 0.8, 7.0 / (5.0 * std::sqrt(2.0))};
  const auto p = h.classify(x, 3)[0];
  const FloatTensor logits = h.logits(x);
  double sum = 0;
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(logits.data[size_t(c)], 10.0 * cos[size_t(c)], 1e-5);  // logits exclude the bias
    EXPECT_NEAR(p.probs[size_t(c)], 1.0 / (1.0 + std::exp(-(10.0 * cos[size_t(c)] - 2.5))), 1e-6);
    sum += p.probs[size_t(c)];
  }
  EXPECT_GT(sum, 1.5);  // not a distribution over the classes
  EXPECT_EQ(p.top[0].label, "xy");
  std::vector<float> one(3);
  h.probs(x.ptr(), one.data());
  EXPECT_EQ(one, p.probs);
}

TEST(HeadScoring, SavedHeadsKeepScoringAndBias) {
  const std::string dir = temp_dir("head_scoring");
  sigmoid_head().save(dir + "/s.zshead");
  const ZeroShotHead g = ZeroShotHead::load(dir + "/s.zshead");
  EXPECT_EQ(g.scoring(), Scoring::kSigmoid);
  EXPECT_EQ(g.logit_bias(), -2.5f);
  const std::string bytes = read_file(dir + "/s.zshead");
  EXPECT_NE(bytes.find("\"format_version\":2"), std::string::npos);  // older readers refuse it
  // A softmax head stays format 1 (readable by older zsclip).
  FloatTensor w({1, 2}, 1.f);
  ZeroShotHead::from_weights({"a"}, w, 1.f, "fp").save(dir + "/m.zshead");
  EXPECT_NE(read_file(dir + "/m.zshead").find("\"format_version\":1"), std::string::npos);
  EXPECT_EQ(ZeroShotHead::load(dir + "/m.zshead").scoring(), Scoring::kSoftmax);
  // Sigmoid claimed in a format-1 header is refused, not scored with a softmax.
  std::string v1 = bytes;
  v1.replace(v1.find("\"format_version\":2"), 18, "\"format_version\":1");
  std::ofstream(dir + "/v1.zshead", std::ios::binary) << v1;
  EXPECT_THROW(ZeroShotHead::load(dir + "/v1.zshead"), Error);
}

TEST(HeadScoring, BiasNeedsSigmoid) {
  FloatTensor w({1, 2}, 1.f);
  EXPECT_THROW(ZeroShotHead::from_weights({"a"}, w, 1.f, "", {}, Scoring::kSoftmax, 1.f), Error);
  EXPECT_THROW(ZeroShotHead::from_weights({"a"}, w, 1.f, "", {}, Scoring::kSigmoid, NAN), Error);
}

}  // namespace
}  // namespace zsclip
