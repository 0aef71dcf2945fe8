// zsclip/preprocess.h — CLIP's image preprocessing, bit-exact with OpenAI's Python pipeline.
//
//   zsclip::Preprocessor pre(model_config.preprocess);  // or Preprocessor() for _transform(224)
//   zsclip::FloatTensor x = pre.from_file("cat.jpg");   // [3, 224, 224], normalised
//   std::vector<zsclip::Preprocessor::ItemStatus> status;
//   zsclip::FloatTensor batch = pre.batch_files({"a.jpg", "b.png"}, &status);  // [2, 3, 224, 224]
//   zsclip::FloatTensor y = pre.from_view({rgb, width, height, stride, zsclip::PixelFormat::kRGB});
//
// The default config reproduces torchvision 0.14 + Pillow 9.4:
//   Resize(n, BICUBIC)   shorter side to n, longer side int(n * long / short), Pillow-exact
//                        resampling
//   CenterCrop(n)        offsets int(round((size - n) / 2.0)) (round half to even)
//   convert("RGB"), ToTensor() (/255), Normalize(mean, std), in float32 as torch computes them.
// ResizeRule::kStretch resizes both sides to n (CenterCrop is then a no-op); CropRule::kNone is
// only valid with kStretch (the output is always square) and the constructor refuses it otherwise.
// Only the pixels that survive the crop are resampled: the result is identical, the work smaller.
//
// A Preprocessor is immutable; its const methods are safe to call from several threads at once.
// Batches are preprocessed on the threads of its zsclip::Runtime (runtime.h; none given: the
// default runtime); single images on the caller's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/image.h"
#include "zsclip/runtime.h"
#include "zsclip/tensor.h"

namespace cv {
class Mat;
}

namespace zsclip {

class Preprocessor {
 public:
  // Throws zsclip::Error(kInvalidConfig) for image_size < 1, std <= 0 or kNone with kShorterSide.
  // `runtime`: the threads of batch calls (null: Runtime::default_runtime(), made when first used).
  explicit Preprocessor(PreprocessConfig config = {}, std::shared_ptr<Runtime> runtime = nullptr);

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
  // Pixels in memory in any PixelFormat (RGB, BGR, RGBA, BGRA, grey), strided or packed. Throws
  // Error(kInvalidArgument) for null data, a non-positive size or a stride below width * channels.
  FloatTensor from_view(const ImageView& image) const;
  FloatTensor from_image(const Image8& image) const;

  // Write 3*n*n floats to `out` without allocating the output.
  void from_file_into(const std::string& path, float* out) const;
  void from_buffer_into(const void* data, size_t size, const std::string& name, float* out) const;
  void from_image_into(const Image8& image, float* out) const;
  void from_view_into(const ImageView& image, float* out) const;

  struct ItemStatus {
    bool ok = true;
    ErrorCode code = ErrorCode::kInternal;
    std::string error;
  };
  // Preprocesses paths[i] into out + i*3*n*n in up to `threads` parallel parts on the runtime's
  // threads (0 = the runtime's thread count; negative is an Error); a bad image gets ok=false and
  // its message (and its slot zero-filled); the others still succeed.
  std::vector<ItemStatus> batch_files_into(const std::vector<std::string>& paths, float* out,
                                           int threads = 0) const;
  // [N, 3, n, n]; `status` (may be null) receives one ItemStatus per path.
  FloatTensor batch_files(const std::vector<std::string>& paths, std::vector<ItemStatus>* status,
                          int threads = 0) const;
  // The same for any items: item(i, out) preprocesses item i into `out` (3*n*n floats) or throws.
  std::vector<ItemStatus> batch_into(size_t count, const std::function<void(size_t, float*)>& item,
                                     const std::function<std::string(size_t)>& name, float* out,
                                     int threads = 0) const;

  // The runtime batch calls use (the default runtime when none was given).
  std::shared_ptr<Runtime> runtime() const { return Runtime::or_default(runtime_); }

 private:
  PreprocessConfig config_;
  std::shared_ptr<Runtime> runtime_;  // null: the default runtime
  float lut_[3][256];  // (v / 255 - mean) / std per channel, in float32 as torch computes it
};

}  // namespace zsclip
