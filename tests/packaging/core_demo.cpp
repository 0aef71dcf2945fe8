// A consumer of zsclip::core alone (no LibTorch): the zero-shot head, the classifier pipeline with
// its own ImageEncoder, similarity and the runtime. That it links shows that these headers need
// nothing from zsclip::zsclip. Prints the label of a solid red image and of the file given.
#include <zsclip/encoder.h>
#include <zsclip/pipeline.h>
#include <zsclip/runtime.h>
#include <zsclip/similarity.h>
#include <zsclip/zero_shot.h>

#include <atomic>
#include <iostream>
#include <vector>

namespace {

// Features: the mean red, green and blue of the preprocessed image.
class MeanColour : public zsclip::ImageEncoder {
 public:
  MeanColour() { config_.image_size = 16; }
  const zsclip::PreprocessConfig& preprocess_config() const override { return config_; }
  int64_t embed_dim() const override { return 3; }
  const std::string& fingerprint() const override { return fingerprint_; }
  std::string describe() const override { return "mean colour"; }

 protected:
  void do_encode_images(const float* pixels, int64_t n, float* out) const override {
    const int64_t plane = 16 * 16;
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c) {
        double sum = 0;
        for (int64_t k = 0; k < plane; ++k)
          sum += pixels[(i * 3 + c) * plane + k] * config_.std[c] + config_.mean[c];
        out[i * 3 + c] = static_cast<float>(sum / plane);
      }
  }

 private:
  zsclip::PreprocessConfig config_;
  std::string fingerprint_ = "mean-colour";
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    zsclip::FloatTensor weights({3, 3}, std::vector<float>{1, 0, 0, 0, 1, 0, 0, 0, 1});
    auto head =
        zsclip::ZeroShotHead::from_weights({"red", "green", "blue"}, weights, 10.f, "mean-colour");
    zsclip::ZeroShotPipeline pipeline(std::make_shared<MeanColour>(), head);
    std::vector<uint8_t> red(8 * 8 * 3);
    for (size_t i = 0; i < red.size(); i += 3) red[i] = 255;
    zsclip::ImageView view{red.data(), 8, 8, 0, zsclip::PixelFormat::kRGB};
    std::cout << pipeline.classify(view).top[0].label << " "
              << pipeline.classify_file(argv[1]).top[0].label << " "
              << zsclip::cosine_similarity(pipeline.embed(view), {1.f, 0.f, 0.f}) << "\n";
    std::atomic<int> parts{0};
    zsclip::Runtime::default_runtime()->parallel_for(4, [&](int64_t) { ++parts; });
    return parts == 4 ? 0 : 1;
  } catch (const zsclip::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
