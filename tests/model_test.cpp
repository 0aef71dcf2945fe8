// Parity of the C++ pipeline with OpenAI's code on ../shared/clip/openai-tiny: from image files and
// texts to features, logits and zero-shot probabilities (reference.json).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model_util.h"
#include "zsclip/classifier.h"
#include "zsclip/image.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
constexpr double kTol = 1e-4;  // of the largest magnitude, as the issue sets it

class TinyParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ZSCLIP_REQUIRE_TINY_EXPORTS();
    ref_ = reference();
    model_ = std::make_unique<Model>(Model::load(tiny_export(GetParam())));
  }
  FloatTensor image_pixels() const {
    Preprocessor pre(model_->config().preprocess);
    std::vector<std::string> paths;
    for (const auto& im : ref_["images"])
      paths.push_back(shared_path("images/" + im["file"].get<std::string>()));
    std::vector<Preprocessor::ItemStatus> status;
    FloatTensor pixels = pre.batch_files(paths, &status);
    for (size_t i = 0; i < status.size(); ++i)
      EXPECT_TRUE(status[i].ok) << paths[i] << ": " << status[i].error;
    return pixels;
  }
  std::vector<std::string> texts() const {
    std::vector<std::string> t;
    for (const auto& x : ref_["texts"]) t.push_back(x["text"].get<std::string>());
    return t;
  }
  nlohmann::json ref_;
  std::unique_ptr<Model> model_;
};

TEST_P(TinyParity, ConfigIsInferredFromTheWeights) {
  const auto& shape = ref_["shape"];
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.embed_dim, shape["embed_dim"].get<int64_t>());
  EXPECT_EQ(c.vision.image_size, shape["image_resolution"].get<int64_t>());
  EXPECT_EQ(c.vision.width, shape["vision_width"].get<int64_t>());
  EXPECT_EQ(c.vision.layers, shape["vision_layers"].get<int64_t>());
  EXPECT_EQ(c.vision.patch_size, shape["vision_patch_size"].get<int64_t>());
  EXPECT_EQ(c.text.context_length, shape["context_length"].get<int64_t>());
  EXPECT_EQ(c.text.vocab_size, shape["vocab_size"].get<int64_t>());
  EXPECT_EQ(c.text.width, shape["transformer_width"].get<int64_t>());
  EXPECT_EQ(c.text.heads, shape["transformer_heads"].get<int64_t>());
  EXPECT_EQ(c.text.layers, shape["transformer_layers"].get<int64_t>());
  EXPECT_NEAR(model_->logit_scale_exp(), ref_["logit_scale_exp"].get<double>(), 1e-4);
}

TEST_P(TinyParity, ImageFeaturesFromFilesMatchOpenAI) {
  FloatTensor feats = model_->encode_images(image_pixels());
  ASSERT_EQ(feats.size(0), static_cast<int64_t>(ref_["images"].size()));
  for (int64_t i = 0; i < feats.size(0); ++i) {
    std::vector<float> got(feats.row(i), feats.row(i) + feats.size(1));
    EXPECT_TRUE(close_rel(got, ref_["images"][i]["image_features"].get<std::vector<double>>(), kTol,
                          ref_["images"][i]["file"].get<std::string>()));
  }
}

TEST_P(TinyParity, TextFeaturesMatchOpenAI) {
  const Tokenizer& tok = model_->tokenizer();
  auto t = texts();
  IdTensor ids = tok.tokenize(t, model_->context_length());
  for (size_t j = 0; j < t.size(); ++j) {
    auto want = ref_["texts"][j]["tokens"].get<std::vector<int64_t>>();
    std::vector<int64_t> got(ids.row(int64_t(j)), ids.row(int64_t(j)) + want.size());
    EXPECT_EQ(got, want) << t[j];
  }
  FloatTensor feats = model_->encode_texts(ids);
  for (size_t j = 0; j < t.size(); ++j) {
    std::vector<float> got(feats.row(int64_t(j)), feats.row(int64_t(j)) + feats.size(1));
    EXPECT_TRUE(
        close_rel(got, ref_["texts"][j]["text_features"].get<std::vector<double>>(), kTol, t[j]));
  }
}

TEST_P(TinyParity, LogitsAndZeroShotProbsMatchOpenAI) {
  FloatTensor img = model_->encode_images(image_pixels());
  const Tokenizer& tok = model_->tokenizer();
  FloatTensor txt = model_->encode_texts(tok.tokenize(texts(), model_->context_length()));
  // logits_per_image: logit_scale_exp * cosine, through a head whose "classes" are the texts.
  std::vector<std::string> names;
  for (size_t j = 0; j < texts().size(); ++j) names.push_back("text " + std::to_string(j));
  ZeroShotHead per_text = ZeroShotHead::from_weights(names, txt, model_->logit_scale_exp(), "");
  FloatTensor logits = per_text.logits(img);
  for (int64_t i = 0; i < img.size(0); ++i)
    EXPECT_TRUE(close_rel(std::vector<float>(logits.row(i), logits.row(i) + logits.size(1)),
                          ref_["logits_per_image"][i].get<std::vector<double>>(), kTol,
                          "logits_per_image row " + std::to_string(i)));

  const auto& zs = ref_["zero_shot"];
  ZeroShotHead head = ZeroShotHead::build(*model_, zs["classes"].get<std::vector<std::string>>(),
                                          zs["templates"].get<std::vector<std::string>>());
  FloatTensor zl = head.logits(img);
  auto preds = head.classify(img, 3);
  for (int64_t i = 0; i < img.size(0); ++i) {
    EXPECT_TRUE(close_rel(std::vector<float>(zl.row(i), zl.row(i) + zl.size(1)),
                          zs["logits"][i].get<std::vector<double>>(), kTol,
                          "zero-shot logits " + std::to_string(i)));
    EXPECT_TRUE(close_rel(preds[i].probs, zs["probs"][i].get<std::vector<double>>(), kTol,
                          "zero-shot probs " + std::to_string(i)));
  }
}

TEST_P(TinyParity, BatchSizesGiveTheSameResults) {
  FloatTensor pixels = image_pixels();
  const int64_t n = pixels.size(0), per = pixels.numel() / n, d = model_->embed_dim();
  // 16 images: the 7 references repeated.
  FloatTensor many({16, 3, model_->image_size(), model_->image_size()});
  for (int64_t i = 0; i < 16; ++i)
    std::copy_n(pixels.ptr() + (i % n) * per, per, many.ptr() + i * per);
  std::vector<float> full(size_t(16 * d));
  model_->encode_images(many.ptr(), 16, full.data());
  for (int64_t bs : {1, 3}) {
    std::vector<float> out(size_t(16 * d));
    for (int64_t b = 0; b < 16; b += bs) {
      int64_t m = std::min<int64_t>(bs, 16 - b);
      model_->encode_images(many.ptr() + b * per, m, out.data() + b * d);
    }
    double max_diff = 0, max_ref = 0;
    for (size_t k = 0; k < out.size(); ++k) {
      max_diff = std::max(max_diff, double(std::abs(out[k] - full[k])));
      max_ref = std::max(max_ref, double(std::abs(full[k])));
    }
    // Different batch sizes change only the GEMM blocking: float rounding, nothing more.
    EXPECT_LE(max_diff, 1e-5 * max_ref) << "batch size " << bs;
    for (int64_t i = 0; i < 16; ++i) {
      auto row = [&](const std::vector<float>& v) { return v.begin() + i * d; };
      EXPECT_EQ(std::max_element(row(out), row(out) + d) - row(out),
                std::max_element(row(full), row(full) + d) - row(full));
    }
  }
  // Repeats of one image inside a batch agree to float rounding (GEMM edge tiles differ).
  const float largest = std::abs(*std::max_element(
      full.begin(), full.end(), [](float a, float b) { return std::abs(a) < std::abs(b); }));
  for (int64_t i = n; i < 16; ++i)
    for (int64_t k = 0; k < d; ++k)
      ASSERT_NEAR(full[size_t(i * d + k)], full[size_t((i % n) * d + k)], 1e-5 * largest);
}

TEST_P(TinyParity, StreamsGiveTheSameResults) {
  // ModelOptions::streams splits a call into parts run at once; each row must come out as from one
  // call.
  FloatTensor pixels = image_pixels();
  std::vector<std::string> t = texts();
  const Tokenizer& tok = model_->tokenizer();
  IdTensor ids = tok.tokenize(t, model_->context_length());
  auto largest = [](const FloatTensor& x) {
    float m = 0.f;
    for (float v : x.data) m = std::max(m, std::abs(v));
    return m;
  };
  ModelOptions one;
  one.streams = 1;
  Model single = Model::load(tiny_export(GetParam()), one);
  const FloatTensor img1 = single.encode_images(pixels), txt1 = single.encode_texts(ids);
  for (int streams : {2, 3, 16}) {
    ModelOptions o;
    o.streams = streams;
    Model m = Model::load(tiny_export(GetParam()), o);
    const FloatTensor img = m.encode_images(pixels), txt = m.encode_texts(ids);
    ASSERT_EQ(img.shape, img1.shape);
    ASSERT_EQ(txt.shape, txt1.shape);
    for (size_t k = 0; k < img.data.size(); ++k)
      ASSERT_NEAR(img.data[k], img1.data[k], 1e-5 * largest(img1))
          << "streams " << streams << " image value " << k;
    for (size_t k = 0; k < txt.data.size(); ++k)
      ASSERT_NEAR(txt.data[k], txt1.data[k], 1e-5 * largest(txt1))
          << "streams " << streams << " text value " << k;
    // One row: nothing to split.
    FloatTensor first({1, 3, m.image_size(), m.image_size()});
    std::copy_n(pixels.ptr(), first.numel(), first.ptr());
    EXPECT_EQ(m.encode_images(first).size(0), 1);
  }
}

TEST(Int8Export, AgreesWithFloat32OnTheReferenceImages) {
  // export_clip.py --quantize int8: dynamic per-channel int8 image tower, float32 text tower.
  ZSCLIP_REQUIRE_TINY_EXPORTS();
  const std::string dir = tiny_export("int8");
  ASSERT_TRUE(std::filesystem::exists(dir + "/config.json")) << dir;
  Model f32 = Model::load(tiny_export("state_dict"));
  Model q = Model::load(dir);
  EXPECT_EQ(q.config().quantization, "int8");
  nlohmann::json ref = reference();
  Preprocessor pre(f32.config().preprocess);
  std::vector<std::string> paths;
  for (const auto& im : ref["images"])
    paths.push_back(shared_path("images/" + im["file"].get<std::string>()));
  FloatTensor pixels = pre.batch_files(paths, nullptr);
  const FloatTensor a = f32.encode_images(pixels), b = q.encode_images(pixels);
  ASSERT_EQ(a.shape, b.shape);
  EXPECT_GE(min_row_cosine(a, b), 0.99);
  // The text tower is not quantised: its features are the float32 model's.
  std::vector<std::string> texts;
  for (const auto& x : ref["texts"]) texts.push_back(x["text"].get<std::string>());
  const Tokenizer& tok = f32.tokenizer();
  IdTensor ids = tok.tokenize(texts, f32.context_length());
  const FloatTensor ta = f32.encode_texts(ids), tb = q.encode_texts(ids);
  for (size_t k = 0; k < ta.data.size(); ++k) EXPECT_NEAR(ta.data[k], tb.data[k], 1e-5f) << k;
}

TEST_P(TinyParity, ClassifierMatchesTheReferenceFromFiles) {
  const auto& zs = ref_["zero_shot"];
  ClassifierOptions co;
  co.batch_size = 3;
  co.top_k = 2;
  auto clf = ZeroShotClassifier::create(tiny_export(GetParam()),
                                        zs["classes"].get<std::vector<std::string>>(),
                                        zs["templates"].get<std::vector<std::string>>(), {}, co);
  std::vector<std::string> paths;
  for (const auto& im : ref_["images"])
    paths.push_back(shared_path("images/" + im["file"].get<std::string>()));
  paths.insert(paths.begin() + 2,
               shared_path("images/truncated.jpg"));  // one bad file in the batch
  auto results = clf.classify_files(paths);
  ASSERT_EQ(results.size(), paths.size());
  EXPECT_FALSE(results[2].ok);
  EXPECT_NE(results[2].error.find("truncated.jpg"), std::string::npos) << results[2].error;
  size_t r = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (i == 2) continue;
    ASSERT_TRUE(results[i].ok) << results[i].error;
    EXPECT_EQ(results[i].source, paths[i]);
    EXPECT_TRUE(
        close_rel(results[i].probs, zs["probs"][r].get<std::vector<double>>(), kTol, paths[i]));
    ++r;
  }
  // Single-file calls agree with the batch, and throw on the bad file.
  Classification one = clf.classify_file(paths[0]);
  EXPECT_EQ(one.top[0].label, results[0].top[0].label);
  EXPECT_NEAR(one.top[0].prob, results[0].top[0].prob, 1e-5);
  EXPECT_THROW(clf.classify_file(paths[2]), Error);
}

TEST_P(TinyParity, SimilarityCallsMatchOpenAI) {
  // text_image_similarity is the cosine behind OpenAI's logits_per_image (= logit_scale_exp * it);
  // image_similarity the cosine of two images' encode_image features.
  auto clf =
      ZeroShotClassifier::create(tiny_export(GetParam()), {"a", "b"}, builtin_templates("simple"));
  const auto& images = ref_["images"];
  const auto t = texts();
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string path = shared_path("images/" + images[i]["file"].get<std::string>());
    std::vector<float> got;
    for (const auto& text : t)
      got.push_back(model_->logit_scale_exp() * clf.text_image_similarity(text, path));
    EXPECT_TRUE(close_rel(got, ref_["logits_per_image"][i].get<std::vector<double>>(), kTol, path));
  }
  auto features = [&](size_t i) { return images[i]["image_features"].get<std::vector<double>>(); };
  auto cosine = [](const std::vector<double>& a, const std::vector<double>& b) {
    double dot = 0, na = 0, nb = 0;
    for (size_t k = 0; k < a.size(); ++k) dot += a[k] * b[k], na += a[k] * a[k], nb += b[k] * b[k];
    return dot / std::sqrt(na * nb);
  };
  for (size_t i = 0; i + 1 < images.size(); ++i) {
    const std::string a = shared_path("images/" + images[i]["file"].get<std::string>());
    const std::string b = shared_path("images/" + images[i + 1]["file"].get<std::string>());
    EXPECT_NEAR(clf.image_similarity(a, b), cosine(features(i), features(i + 1)), 1e-4)
        << a << " ~ " << b;
  }
  // Embeddings are the features scaled to unit length.
  const std::string first = shared_path("images/" + images[0]["file"].get<std::string>());
  std::vector<float> e = clf.embed_file(first);
  std::vector<double> want = features(0);
  double norm = 0;
  for (double v : want) norm += v * v;
  for (auto& v : want) v /= std::sqrt(norm);
  EXPECT_TRUE(close_rel(e, want, kTol, "embed_file"));
}

TEST_P(TinyParity, PixelsInMemoryGiveTheFileResults) {
  // RGB images decoded to memory, passed as views (RGB, BGR, strided), as one batch and one by one.
  auto clf = ZeroShotClassifier::create(
      tiny_export(GetParam()), ref_["zero_shot"]["classes"].get<std::vector<std::string>>(),
      ref_["zero_shot"]["templates"].get<std::vector<std::string>>());
  std::vector<std::string> paths;
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<ImageView> views;
  for (const auto& im : ref_["images"]) {
    const std::string path = shared_path("images/" + im["file"].get<std::string>());
    Image8 decoded = decode_image_file(path);
    if (decoded.mode != PixelMode::kRGB) continue;  // palette/RGBA files resize in their own mode
    // BGR rows padded by 5 bytes.
    const size_t stride = size_t(decoded.width) * 3 + 5;
    std::vector<uint8_t> bgr(stride * decoded.height, 0);
    for (int y = 0; y < decoded.height; ++y)
      for (int x = 0; x < decoded.width; ++x)
        for (int c = 0; c < 3; ++c)
          bgr[y * stride + size_t(x) * 3 + c] =
              decoded.data[(size_t(y) * decoded.width + x) * 3 + (2 - c)];
    paths.push_back(path);
    buffers.push_back(std::move(bgr));
    views.push_back(
        ImageView{buffers.back().data(), decoded.width, decoded.height, stride, PixelFormat::kBGR});
  }
  // (Growing `buffers` moves the inner vectors, not their heap storage: the views stay valid.)
  ASSERT_GE(paths.size(), 3u);
  std::vector<Classification> batch = clf.classify(views);
  for (size_t i = 0; i < paths.size(); ++i) {
    Classification file = clf.classify_file(paths[i]);
    Classification one = clf.classify(views[i], paths[i]);
    EXPECT_EQ(one.probs, file.probs) << paths[i];  // the same pixels, the same single-image call
    ASSERT_TRUE(batch[i].ok) << batch[i].error;
    EXPECT_TRUE(close_rel(batch[i].probs, std::vector<double>(file.probs.begin(), file.probs.end()),
                          1e-5, paths[i]));
  }
}

INSTANTIATE_TEST_SUITE_P(Exports, TinyParity, ::testing::ValuesIn(tiny_kinds()));

}  // namespace
}  // namespace zsclip
