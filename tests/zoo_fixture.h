// A parameterised fixture over the reference folders of ../shared/clip (the parameter is the
// folder name) and their exports by tests/export_fixtures.sh: reference.json, the loaded model,
// and the C++ pipeline's pixels and text features from the folder's image files and texts.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>

#include "model_util.h"
#include "zsclip/model.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"

namespace zsclip::testing {

inline std::string zoo_export(const std::string& name) {
  return std::string(ZSCLIP_FIXTURE_DIR) + "/" + name;
}

class ReferenceFolderTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ZSCLIP_REQUIRE_SHARED("clip/" + GetParam() + "/reference.json");
    ASSERT_TRUE(std::filesystem::exists(zoo_export(GetParam()) + "/config.json"))
        << "run the export_fixtures test first (ctest runs it as a fixture)";
    ref_ = nlohmann::json::parse(read_file(shared_path("clip/" + GetParam() + "/reference.json")));
    model_ = std::make_unique<Model>(Model::load(zoo_export(GetParam())));
  }
  std::vector<std::string> image_paths() const {
    std::vector<std::string> paths;
    for (const auto& im : ref_["images"])
      paths.push_back(shared_path("images/" + im["file"].get<std::string>()));
    return paths;
  }
  FloatTensor image_pixels() const {
    Preprocessor pre(model_->config().preprocess);
    std::vector<Preprocessor::ItemStatus> status;
    FloatTensor pixels = pre.batch_files(image_paths(), &status);
    for (size_t i = 0; i < status.size(); ++i) EXPECT_TRUE(status[i].ok) << status[i].error;
    return pixels;
  }
  std::vector<std::string> texts() const {
    std::vector<std::string> t;
    for (const auto& x : ref_["texts"]) t.push_back(x["text"].get<std::string>());
    return t;
  }
  FloatTensor text_features() const {
    return model_->encode_texts(model_->tokenizer().tokenize(texts(), model_->context_length()));
  }
  // The pixels from the image files against each image's reference `pixels` file, float by float.
  void expect_pixels_bit_exact() const {
    FloatTensor pixels = image_pixels();
    const std::string dir = shared_path("clip/" + GetParam());
    ASSERT_EQ(pixels.size(0), static_cast<int64_t>(ref_["images"].size()));
    for (size_t i = 0; i < ref_["images"].size(); ++i) {
      const auto& im = ref_["images"][i];
      const std::string want = read_file(dir + "/" + im["pixels"].get<std::string>());
      const size_t per = static_cast<size_t>(pixels.numel() / pixels.size(0));
      ASSERT_EQ(want.size(), per * sizeof(float)) << im["file"];
      const float* got = pixels.ptr() + i * per;
      size_t differ = 0;
      for (size_t k = 0; k < per; ++k)
        differ += std::memcmp(want.data() + k * sizeof(float), got + k, sizeof(float)) != 0;
      EXPECT_EQ(differ, 0u) << im["file"] << ": " << differ << " of " << per << " floats differ";
    }
  }

  nlohmann::json ref_;
  std::unique_ptr<Model> model_;
};

// "openclip-gelu" -> "openclip_gelu" (test names).
inline std::string folder_test_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string s = p.param;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

}  // namespace zsclip::testing
