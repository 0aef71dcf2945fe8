// zsclip/preprocess.h — CLIP's image preprocessing, bit-exact with OpenAI's Python pipeline.
//
//   zsclip::Preprocessor pre(model_config.preprocess);   // or Preprocessor() for _transform(224)
//   zsclip::FloatTensor x = pre.from_file("cat.jpg");    // [3, 224, 224], normalised
//   std::vector<zsclip::Preprocessor::ItemStatus> status;
//   zsclip::FloatTensor batch = pre.batch_files({"a.jpg", "b.png"}, &status);   // [2, 3, 224, 224]
//
// The default config reproduces torchvision 0.14 + Pillow 9.4:
//   Resize(n, BICUBIC)   shorter side to n, longer side int(n * long / short), Pillow-exact
//   resampling CenterCrop(n)        offsets int(round((size - n) / 2.0)) (round half to even)
//   convert("RGB"), ToTensor() (/255), Normalize(mean, std), in float32 as torch computes them.
// ResizeRule::kStretch resizes both sides to n (CenterCrop is then a no-op); CropRule::kNone is
// only valid with kStretch (the output is always square) and the constructor refuses it otherwise.
// Only the pixels that survive the crop are resampled: the result is identical, the work smaller.
//
// A Preprocessor is immutable; its const methods are safe to call from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/image.h"
#include "zsclip/tensor.h"

namespace cv {
class Mat;
}

namespace zsclip {

class Preprocessor {
 public:
  // Throws zsclip::Error(kInvalidConfig) for image_size < 1, std <= 0 or kNone with kShorterSide.
  explicit Preprocessor(PreprocessConfig config = {});

  const PreprocessConfig& config() const { return config_; }
  int image_size() const { return config_.image_size; }
  size_t item_floats() const;  // 3 * n * n

  FloatTensor from_file(const std::string& path) const;  // [3, n, n]
  FloatTensor from_buffer(const void* data, size_t size,
                          const std::string& name = "<buffer>") const;
  // 8-bit as OpenCV gives it: 1 channel grey, 3 channels BGR, 4 channels BGRA (resized as RGBA).
  FloatTensor from_mat(const cv::Mat& image) const;
  // Tightly packed or strided (row_stride bytes, 0 = width * 3) 8-bit RGB. Here and in from_mat
  // and from_image, more than config().max_pixels pixels are refused (kInvalidImage), as decoding.
  FloatTensor from_rgb(const uint8_t* rgb, int width, int height, size_t row_stride = 0) const;
  FloatTensor from_image(const Image8& image) const;

  // Write 3*n*n floats to `out` without allocating the output.
  void from_file_into(const std::string& path, float* out) const;
  void from_buffer_into(const void* data, size_t size, const std::string& name, float* out) const;
  void from_image_into(const Image8& image, float* out) const;

  struct ItemStatus {
    bool ok = true;
    ErrorCode code = ErrorCode::kInternal;
    std::string error;
  };
  // Preprocesses paths[i] into out + i*3*n*n on `threads` worker threads (0 = hardware
  // concurrency; negative is an Error); a bad image gets ok=false and its message (and its slot
  // zero-filled); the others still succeed.
  std::vector<ItemStatus> batch_files_into(const std::vector<std::string>& paths, float* out,
                                           int threads = 0) const;
  // [N, 3, n, n]; `status` (may be null) receives one ItemStatus per path.
  FloatTensor batch_files(const std::vector<std::string>& paths, std::vector<ItemStatus>* status,
                          int threads = 0) const;

 private:
  PreprocessConfig config_;
  float lut_[3][256];  // (v / 255 - mean) / std per channel, in float32 as torch computes it
};

}  // namespace zsclip
