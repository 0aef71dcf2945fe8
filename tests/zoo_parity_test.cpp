// Parity of the C++ pipeline with open_clip's and HuggingFace's checkpoints (../shared/clip/
// openclip-gelu, openclip-knobs, openclip-longest, hf-tiny), exported by tests/export_fixtures.sh:
// from image files and texts to pixels (bit-exact), token ids (identical), features, logits and
// zero-shot probabilities (softmax, and sigmoid for the model with a logit_bias), against each
// folder's reference.json computed by the upstream code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "model_util.h"
#include "zoo_fixture.h"
#include "zsclip/classifier.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
constexpr double kTol = 1e-4;  // of the largest magnitude, as for openai-tiny

class ZooParity : public ReferenceFolderTest {
 protected:
  bool sigmoid() const { return ref_.contains("logit_bias"); }
};

TEST_P(ZooParity, PixelsFromFilesAreBitExact) { expect_pixels_bit_exact(); }

TEST_P(ZooParity, TokenIdsAreIdentical) {
  const Tokenizer& tok = model_->tokenizer();
  const auto t = texts();
  IdTensor ids = tok.tokenize(t, model_->context_length());
  ASSERT_EQ(ids.size(1), model_->context_length());
  for (size_t j = 0; j < t.size(); ++j) {
    auto want = ref_["texts"][j]["tokens"].get<std::vector<int64_t>>();
    want.resize(static_cast<size_t>(ids.size(1)), 0);  // the reference drops the zero padding
    std::vector<int64_t> got(ids.row(int64_t(j)), ids.row(int64_t(j)) + ids.size(1));
    EXPECT_EQ(got, want) << t[j];
  }
}

TEST_P(ZooParity, ImageFeaturesFromFilesMatch) {
  FloatTensor feats = model_->encode_images(image_pixels());
  ASSERT_EQ(feats.size(0), static_cast<int64_t>(ref_["images"].size()));
  for (int64_t i = 0; i < feats.size(0); ++i)
    EXPECT_TRUE(close_rel(std::vector<float>(feats.row(i), feats.row(i) + feats.size(1)),
                          ref_["images"][i]["image_features"].get<std::vector<double>>(), kTol,
                          ref_["images"][i]["file"].get<std::string>()));
}

TEST_P(ZooParity, TextFeaturesMatch) {
  FloatTensor feats = text_features();
  const auto t = texts();
  for (size_t j = 0; j < t.size(); ++j)
    EXPECT_TRUE(
        close_rel(std::vector<float>(feats.row(int64_t(j)), feats.row(int64_t(j)) + feats.size(1)),
                  ref_["texts"][j]["text_features"].get<std::vector<double>>(), kTol, t[j]));
  // One text at a time gives the same features (padding columns are skipped only where they
  // cannot matter: a causal tower pooled at the end token).
  for (size_t j = 0; j < t.size(); ++j) {
    FloatTensor one =
        model_->encode_texts(model_->tokenizer().tokenize({t[j]}, model_->context_length()));
    EXPECT_TRUE(close_rel(std::vector<float>(one.row(0), one.row(0) + one.size(1)),
                          ref_["texts"][j]["text_features"].get<std::vector<double>>(), kTol,
                          "alone: " + t[j]));
  }
}

TEST_P(ZooParity, LogitsAndZeroShotProbsMatch) {
  FloatTensor img = model_->encode_images(image_pixels());
  FloatTensor txt = text_features();
  EXPECT_NEAR(model_->logit_scale_exp(), ref_["logit_scale_exp"].get<double>(), 1e-4);
  std::vector<std::string> names;
  for (int64_t j = 0; j < txt.size(0); ++j) names.push_back("text " + std::to_string(j));
  ZeroShotHead per_text = ZeroShotHead::from_weights(names, txt, model_->logit_scale_exp(), "");
  FloatTensor logits = per_text.logits(img);
  for (int64_t i = 0; i < img.size(0); ++i) {
    std::vector<float> row(logits.row(i), logits.row(i) + logits.size(1));
    EXPECT_TRUE(close_rel(row, ref_["logits_per_image"][i].get<std::vector<double>>(), kTol,
                          "logits_per_image row " + std::to_string(i)));
    if (sigmoid()) {
      for (float& x : row) x += model_->logit_bias();
      EXPECT_TRUE(close_rel(row, ref_["logits_per_image_with_bias"][i].get<std::vector<double>>(),
                            kTol, "logits_per_image_with_bias row " + std::to_string(i)));
    }
  }

  const auto& zs = ref_["zero_shot"];
  ZeroShotHead head = ZeroShotHead::build(*model_, zs["classes"].get<std::vector<std::string>>(),
                                          zs["templates"].get<std::vector<std::string>>());
  EXPECT_EQ(head.scoring(), sigmoid() ? Scoring::kSigmoid : Scoring::kSoftmax);
  // The same class weights scored with a softmax: open_clip's zero-shot `probs`.
  ZeroShotHead softmax_head =
      ZeroShotHead::from_weights(head.labels(), head.weights(), head.logit_scale_exp(), "");
  FloatTensor zl = head.logits(img);
  auto preds = head.classify(img, 3);
  auto soft = softmax_head.classify(img, 3);
  for (int64_t i = 0; i < img.size(0); ++i) {
    const std::string row = std::to_string(i);
    EXPECT_TRUE(close_rel(std::vector<float>(zl.row(i), zl.row(i) + zl.size(1)),
                          zs["logits"][i].get<std::vector<double>>(), kTol,
                          "zero-shot logits " + row));
    EXPECT_TRUE(close_rel(soft[i].probs, zs["probs"][i].get<std::vector<double>>(), kTol,
                          "zero-shot probs " + row));
    if (sigmoid())
      EXPECT_TRUE(close_rel(preds[i].probs, zs["sigmoid_probs"][i].get<std::vector<double>>(), kTol,
                            "zero-shot sigmoid_probs " + row));
    else
      EXPECT_EQ(preds[i].probs, soft[i].probs);
  }
}

TEST_P(ZooParity, ConfigRecordsWhatChangesTheNumbers) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.format_version, 2);
  EXPECT_EQ(c.scoring, sigmoid() ? Scoring::kSigmoid : Scoring::kSoftmax);
  if (sigmoid()) {
    EXPECT_EQ(model_->logit_bias(), ref_["logit_bias"].get<float>());
  }
  if (GetParam() == "hf-tiny") {
    EXPECT_EQ(c.tokenizer.format, TokenizerFormat::kHF);
    EXPECT_EQ(c.source_layout, "hf_clip");
    EXPECT_EQ(c.tokenizer.eot_token, "<|endoftext|>");
  } else {
    EXPECT_EQ(c.source_layout, "open_clip");
    EXPECT_EQ(c.tokenizer.eot_token, "<end_of_text>");
    const auto& pc = ref_["preprocess_cfg"];
    const std::string mode = pc["resize_mode"];
    EXPECT_EQ(c.preprocess.resize, mode == "longest"  ? ResizeRule::kLongerSide
                                   : mode == "squash" ? ResizeRule::kStretch
                                                      : ResizeRule::kShorterSide);
    EXPECT_EQ(c.preprocess.interpolation, pc["interpolation"] == "bilinear"
                                              ? Interpolation::kBilinear
                                              : Interpolation::kBicubic);
  }
  EXPECT_EQ(c.activation,
            GetParam() == "openclip-longest" || GetParam() == "hf-tiny" ? "quick_gelu" : "gelu");
}

TEST_P(ZooParity, CliClassifyPrintsTheScoring) {
  const auto& zs = ref_["zero_shot"];
  std::string labels;
  for (const auto& c : zs["classes"]) labels += (labels.empty() ? "" : ",") + c.get<std::string>();
  const std::string image = image_paths()[0];
  CliResult r = run_cli("classify --model " + sh(zoo_export(GetParam())) + " --labels " +
                        sh(labels) + " --json " + sh(image));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["scoring"], sigmoid() ? "sigmoid" : "softmax");
  ZeroShotHead head = ZeroShotHead::build(*model_, zs["classes"].get<std::vector<std::string>>(),
                                          {"a photo of a {}."});
  auto want = head.classify(model_->encode_images(image_pixels()), 1)[0].probs;
  auto got = j[0]["probs"].get<std::vector<float>>();
  ASSERT_EQ(got.size(), want.size());
  double sum = 0;
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_NEAR(got[k], want[k], 1e-6);
    sum += got[k];
  }
  if (!sigmoid()) EXPECT_NEAR(sum, 1.0, 1e-5);
}

// config.json and projection.pt must agree about the logit_bias: a sigmoid model scored with a
// softmax (or the reverse, or another bias) would give plausible-looking wrong numbers.
TEST(ZooScoring, ConfigMustAgreeWithTheWeights) {
  ZSCLIP_REQUIRE_SHARED("clip/openclip-knobs/reference.json");
  ZSCLIP_REQUIRE_SHARED("clip/openclip-gelu/reference.json");
  auto try_config = [&](const std::string& folder, const std::string& name,
                        const std::function<void(nlohmann::json&)>& edit, const std::string& want) {
    const std::string src = zoo_export(folder);
    ASSERT_TRUE(std::filesystem::exists(src + "/config.json"))
        << "run the export_fixtures test first";
    const std::string dir = std::string(ZSCLIP_BINARY_DIR) + "/tmp/zoo_scoring/" + name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    for (const auto& e : std::filesystem::directory_iterator(src))
      if (e.path().filename() != "config.json")
        std::filesystem::copy(e.path(), dir + "/" + e.path().filename().string());
    nlohmann::json j = nlohmann::json::parse(read_file(src + "/config.json"));
    edit(j);
    std::ofstream(dir + "/config.json") << j.dump(2);
    try {
      Model::load(dir);
      ADD_FAILURE() << name << ": loaded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidModel) << e.what();
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  try_config(
      "openclip-knobs", "softmax",
      [](nlohmann::json& j) {
        j["scoring"] = "softmax";
        j.erase("logit_bias");
      },
      "logit_bias");
  try_config(
      "openclip-knobs", "bias", [](nlohmann::json& j) { j["logit_bias"] = -9.5; }, "logit_bias");
  // A model without a bias claimed as sigmoid.
  try_config(
      "openclip-gelu", "claimed",
      [](nlohmann::json& j) {
        j["scoring"] = "sigmoid";
        j["logit_bias"] = -10.0;
      },
      "no logit_bias");
}

INSTANTIATE_TEST_SUITE_P(Folders, ZooParity,
                         ::testing::Values("openclip-gelu", "openclip-knobs", "openclip-longest",
                                           "hf-tiny"),
                         folder_test_name);

}  // namespace
}  // namespace zsclip
