// Parity of the C++ pipeline with SigLIP and SigLIP2 checkpoints (../shared/clip/siglip-tiny,
// siglip2-tiny: open_clip + timm; hf-siglip-tiny: HuggingFace SiglipModel), exported by
// tests/export_fixtures.sh: from image files and texts to pixels (bit-exact), token ids
// (identical), image/text features, logits with the logit_bias and their sigmoid (within 1e-4 of
// the largest magnitude, same argmax), zero-shot sigmoid probabilities, the CLI's embed output;
// and that the image tower's linear layers (the MAP head's included) go through zsclip's oneDNN
// linear-layer pass.
#include <gtest/gtest.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "model/model_impl.h"
#include "model_util.h"
#include "zoo_fixture.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
constexpr double kTol = 1e-4;  // of the largest magnitude, as for the CLIP folders

std::vector<float> row_of(const FloatTensor& t, int64_t i) {
  return std::vector<float>(t.row(i), t.row(i) + t.size(1));
}

class SiglipParity : public ReferenceFolderTest {
 protected:
  // logit_scale_exp * cos(image i, text j) + logit_bias, from the C++ features.
  std::vector<std::vector<float>> biased_logits(const FloatTensor& img,
                                                const FloatTensor& txt) const {
    std::vector<std::string> names;
    for (int64_t j = 0; j < txt.size(0); ++j) names.push_back("text " + std::to_string(j));
    ZeroShotHead per_text = ZeroShotHead::from_weights(names, txt, model_->logit_scale_exp(), "");
    FloatTensor logits = per_text.logits(img);
    std::vector<std::vector<float>> out;
    for (int64_t i = 0; i < img.size(0); ++i) {
      out.push_back(row_of(logits, i));
      for (float& x : out.back()) x += model_->logit_bias();
    }
    return out;
  }
};

TEST_P(SiglipParity, PixelsFromFilesAreBitExact) { expect_pixels_bit_exact(); }

TEST_P(SiglipParity, TokenIdsAreIdentical) {
  const Tokenizer& tok = model_->tokenizer();
  const auto t = texts();
  IdTensor ids = tok.tokenize(t, model_->context_length());
  ASSERT_EQ(ids.size(1), model_->context_length());
  for (size_t j = 0; j < t.size(); ++j) {
    const auto want = ref_["texts"][j]["tokens_padded"].get<std::vector<int64_t>>();
    std::vector<int64_t> got(ids.row(int64_t(j)), ids.row(int64_t(j)) + ids.size(1));
    EXPECT_EQ(got, want) << t[j];
  }
}

TEST_P(SiglipParity, ImageFeaturesFromFilesMatch) {
  FloatTensor feats = model_->encode_images(image_pixels());
  ASSERT_EQ(feats.size(0), static_cast<int64_t>(ref_["images"].size()));
  ASSERT_EQ(feats.size(1), model_->config().vision.width);  // no projection: the MAP output
  for (int64_t i = 0; i < feats.size(0); ++i)
    EXPECT_TRUE(close_rel(row_of(feats, i),
                          ref_["images"][i]["image_features"].get<std::vector<double>>(), kTol,
                          ref_["images"][i]["file"].get<std::string>()));
}

TEST_P(SiglipParity, TextFeaturesMatch) {
  FloatTensor feats = text_features();
  const auto t = texts();
  for (size_t j = 0; j < t.size(); ++j)
    EXPECT_TRUE(close_rel(row_of(feats, int64_t(j)),
                          ref_["texts"][j]["text_features"].get<std::vector<double>>(), kTol,
                          t[j]));
  // One text at a time: the bidirectional tower sees every padding column, so nothing may change.
  for (size_t j = 0; j < t.size(); j += 3) {
    FloatTensor one =
        model_->encode_texts(model_->tokenizer().tokenize({t[j]}, model_->context_length()));
    EXPECT_TRUE(close_rel(row_of(one, 0),
                          ref_["texts"][j]["text_features"].get<std::vector<double>>(), kTol,
                          "alone: " + t[j]));
  }
}

TEST_P(SiglipParity, LogitsWithBiasAndSigmoidMatch) {
  FloatTensor img = model_->encode_images(image_pixels());
  FloatTensor txt = text_features();
  EXPECT_NEAR(model_->logit_scale_exp(), ref_["logit_scale_exp"].get<double>(), 1e-4);
  EXPECT_EQ(model_->logit_bias(), ref_["logit_bias"].get<float>());
  EXPECT_EQ(model_->scoring(), Scoring::kSigmoid);
  const auto logits = biased_logits(img, txt);
  for (size_t i = 0; i < logits.size(); ++i) {
    const std::string row = std::to_string(i);
    EXPECT_TRUE(close_rel(logits[i],
                          ref_["logits_per_image_with_bias"][i].get<std::vector<double>>(), kTol,
                          "logits_per_image_with_bias row " + row));
    std::vector<float> sig;
    for (float x : logits[i]) sig.push_back(1.f / (1.f + std::exp(-x)));
    EXPECT_TRUE(close_rel(sig, ref_["sigmoid_per_image"][i].get<std::vector<double>>(), kTol,
                          "sigmoid_per_image row " + row));
  }
  if (!ref_.contains("zero_shot")) return;  // hf-siglip-tiny has per-pair numbers only
  const auto& zs = ref_["zero_shot"];
  ZeroShotHead head = ZeroShotHead::build(*model_, zs["classes"].get<std::vector<std::string>>(),
                                          zs["templates"].get<std::vector<std::string>>());
  EXPECT_EQ(head.scoring(), Scoring::kSigmoid);
  FloatTensor zl = head.logits(img);
  auto preds = head.classify(img, 3);
  for (int64_t i = 0; i < img.size(0); ++i) {
    const std::string row = std::to_string(i);
    EXPECT_TRUE(close_rel(row_of(zl, i), zs["logits"][i].get<std::vector<double>>(), kTol,
                          "zero-shot logits " + row));
    EXPECT_TRUE(close_rel(preds[i].probs, zs["sigmoid_probs"][i].get<std::vector<double>>(), kTol,
                          "zero-shot sigmoid_probs " + row));
  }
}

TEST_P(SiglipParity, ConfigRecordsTheArchitecture) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.format_version, 3);
  EXPECT_EQ(c.architecture, "siglip-vit");
  EXPECT_EQ(c.tokenizer.type, "sentencepiece");
  EXPECT_EQ(c.embed_dim, c.vision.width);
  EXPECT_EQ(c.source_layout, GetParam() == "hf-siglip-tiny" ? "hf_siglip" : "open_clip");
  // The GELU flavour of each layout's own code: timm's vit_base_patch16_siglip_224 entry is exact
  // GELU, vit_base_patch32_siglip_256 and HF's gelu_pytorch_tanh the tanh approximation.
  EXPECT_EQ(c.activation, GetParam() == "siglip-tiny" ? "gelu" : "gelu_tanh");
  EXPECT_EQ(c.preprocess.resize, ResizeRule::kStretch);
  EXPECT_EQ(c.preprocess.crop, CropRule::kNone);
  EXPECT_EQ(c.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_EQ(c.preprocess.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(c.preprocess.std, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
}

TEST_P(SiglipParity, CliEmbedGivesLogitsWithBias) {
  const std::string image = image_paths()[1];
  const auto t = texts();
  CliResult r = run_cli("embed --model " + sh(zoo_export(GetParam())) + " --image " + sh(image) +
                        " --text " + sh(t[0]) + " --text " + sh(t[2]));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["scoring"], "sigmoid");
  ASSERT_TRUE(j.contains("logits_per_image_with_bias")) << r.out;
  const auto plain = j["logits_per_image"][0].get<std::vector<double>>();
  const auto biased = j["logits_per_image_with_bias"][0].get<std::vector<float>>();
  ASSERT_EQ(biased.size(), 2u);
  const auto& want = ref_["logits_per_image_with_bias"][1];
  EXPECT_TRUE(close_rel(biased, {want[0].get<double>(), want[2].get<double>()}, kTol,
                        "embed logits_per_image_with_bias"));
  for (size_t k = 0; k < 2; ++k)
    EXPECT_NEAR(biased[k], plain[k] + ref_["logit_bias"].get<double>(), 1e-5);
}

// The frozen image tower's linear layers (blocks, MAP head's kv / out_proj / MLP, and the patch
// embedding as a GEMM) all become zsclip::packed_linear: no float32 aten::linear is left behind.
TEST_P(SiglipParity, ImageTowerLinearLayersGoThroughOneDnn) {
  if (!detail::onednn_linear_built()) GTEST_SKIP() << "built without oneDNN's headers";
  const ModelConfig& c = model_->config();
  torch::jit::Module m = torch::jit::load(c.path_of(c.image_encoder_file));
  m.eval();
  m = torch::jit::freeze(m);
  const int routed = detail::route_linear_layers(m, detail::LinearPrecision::kFloat32);
  int left = 0, packed = 0;
  for (const torch::jit::Node* n : m.get_method("forward").graph()->nodes()) {
    left += n->kind() == c10::aten::linear;
    packed += n->kind() == c10::Symbol::fromQualString("zsclip::packed_linear");
  }
  // Per block: in_proj, out_proj, c_fc, c_proj; the MAP head: kv, out_proj, c_fc, c_proj (its
  // query does not depend on the input: frozen into a constant); the patch embedding.
  const int64_t want = 4 * c.vision.layers + 4 + 1;
  EXPECT_EQ(left, 0);
  EXPECT_GE(routed, want);
  EXPECT_EQ(packed, routed);
}

// siglip-vit reads the top-left (image_size / patch_size)^2 patches as timm does (So400m/14 at
// 384 px), so its config may have a patch size that does not divide the image size; clip-vit not.
TEST(SiglipConfig, PatchSizeNeedNotDivideTheImageSize) {
  ZSCLIP_REQUIRE_SHARED("clip/siglip-tiny/reference.json");
  const std::string path = zoo_export("siglip-tiny") + "/config.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << "run the export_fixtures test first";
  nlohmann::json j = nlohmann::json::parse(read_file(path));
  j["vision"]["image_size"] = 75;
  j["vision"]["patch_size"] = 14;
  j["preprocess"]["image_size"] = 75;
  ModelConfig c = ModelConfig::parse(j.dump(), "odd.json");
  EXPECT_EQ(c.vision.image_size, 75);
  EXPECT_EQ(c.architecture, "siglip-vit");
  j["architecture"] = "clip-vit";
  try {
    ModelConfig::parse(j.dump(), "odd.json");
    ADD_FAILURE() << "a clip-vit config with patch 14 on 75 px was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig);
    EXPECT_NE(std::string(e.what()).find("vision.patch_size"), std::string::npos) << e.what();
  }
  j["architecture"] = "siglip-vit";
  j["vision"]["patch_size"] = 80;  // larger than the image: no patch at all
  EXPECT_THROW(ModelConfig::parse(j.dump(), "odd.json"), Error);
}

INSTANTIATE_TEST_SUITE_P(Folders, SiglipParity,
                         ::testing::Values("siglip-tiny", "siglip2-tiny", "hf-siglip-tiny"),
                         folder_test_name);

}  // namespace
}  // namespace zsclip
