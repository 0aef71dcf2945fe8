// CLIP preprocessing: torchvision 0.14's Resize + CenterCrop + ToTensor + Normalize on Pillow
// images, computing only the cropped region of the resize.
#include "zsclip/preprocess.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "image/decode.h"
#include "image/resample.h"

namespace zsclip {
namespace {

// Python's int(round(x / 2.0)) for a non-negative integer x: round half to even.
int half_round_even(int x) {
  const int q = x / 2;
  if (x % 2 == 0) return q;
  return (q % 2 == 0) ? q : q + 1;
}

// The decoders' limit, for pixels handed over directly.
void check_pixel_limit(int64_t w, int64_t h, int64_t max_pixels, const char* where) {
  if (w > 0 && h > 0 && w > max_pixels / h)
    throw Error(ErrorCode::kInvalidImage,
                std::string(where) + ": size " + std::to_string(w) + "x" + std::to_string(h) +
                    " (" + std::to_string(w * h) + " pixels) exceeds the limit of " +
                    std::to_string(max_pixels) + " pixels (PreprocessConfig::max_pixels)");
}

struct Source {
  const uint8_t* data;
  int width, height, channels;
  size_t stride;
  PixelMode mode;
  bool bgr;                                       // OpenCV channel order
  const std::vector<uint8_t>* palette = nullptr;  // kPalette: RGB triples, when known
};

}  // namespace

int channels_of(PixelFormat format) noexcept {
  switch (format) {
    case PixelFormat::kRGB:
    case PixelFormat::kBGR:
      return 3;
    case PixelFormat::kRGBA:
    case PixelFormat::kBGRA:
      return 4;
    case PixelFormat::kGray:
      return 1;
  }
  return 3;
}

Preprocessor::Preprocessor(PreprocessConfig config, std::shared_ptr<Runtime> runtime)
    : config_(config), runtime_(std::move(runtime)) {
  const int n = config_.image_size;
  if (n < 1 || n > 16384)
    throw Error(ErrorCode::kInvalidConfig,
                "preprocess.image_size: must be in 1..16384, got " + std::to_string(n));
  if (config_.resize != ResizeRule::kStretch && config_.crop == CropRule::kNone)
    throw Error(ErrorCode::kInvalidConfig,
                "preprocess.crop: 'none' needs resize 'stretch' (the output must be square)");
  if (config_.fill < 0 || config_.fill > 255)
    throw Error(ErrorCode::kInvalidConfig,
                "preprocess.fill: must be in 0..255, got " + std::to_string(config_.fill));
  if (config_.max_pixels < 1)
    throw Error(ErrorCode::kInvalidConfig, "preprocess.max_pixels: must be positive");
  for (int c = 0; c < 3; ++c) {
    if (!(config_.std[c] > 0.0f) || !std::isfinite(config_.std[c]) ||
        !std::isfinite(config_.mean[c]))
      throw Error(ErrorCode::kInvalidConfig, "preprocess.std/mean: must be finite and std > 0");
    // torch: ToTensor divides by 255 in float32, Normalize subtracts then divides (no fused ops).
    for (int v = 0; v < 256; ++v) {
      volatile float x = static_cast<float>(v) / 255.0f;
      volatile float y = x - config_.mean[c];
      lut_[c][v] = y / config_.std[c];
    }
  }
}

size_t Preprocessor::item_floats() const {
  return static_cast<size_t>(3) * config_.image_size * config_.image_size;
}

namespace {

void run_pipeline(const PreprocessConfig& cfg, const float (*lut)[256], const Source& s,
                  float* out) {
  const int n = cfg.image_size;
  const int w = s.width, h = s.height;
  int rw = n, rh = n;
  if (cfg.resize == ResizeRule::kShorterSide) {
    // torchvision: short side to n, long side int(n * long / short) (true division, truncated).
    const double long_side = static_cast<double>(int64_t{n} * std::max(w, h)) / std::min(w, h);
    if (long_side > 1e9)
      throw Error(ErrorCode::kInvalidImage, "image " + std::to_string(w) + "x" + std::to_string(h) +
                                                ": aspect ratio too extreme to resize");
    (w <= h ? rh : rw) = static_cast<int>(long_side);
  } else if (cfg.resize == ResizeRule::kLongerSide) {
    // open_clip's ResizeKeepRatio(n, longest=1): ratio = max(h / n, w / n) (+ 0 * the min), each
    // side round(side / ratio), Python's round (half to even) on doubles.
    const double ratio_h = static_cast<double>(h) / n, ratio_w = static_cast<double>(w) / n;
    const double ratio = std::max(ratio_h, ratio_w) * 1.0 + std::min(ratio_h, ratio_w) * 0.0;
    rh = static_cast<int>(std::nearbyint(static_cast<double>(h) / ratio));
    rw = static_cast<int>(std::nearbyint(static_cast<double>(w) / ratio));
    if (rh < 1 || rw < 1)
      throw Error(ErrorCode::kInvalidImage,
                  "image " + std::to_string(w) + "x" + std::to_string(h) +
                      ": aspect ratio too extreme (a side resizes to 0 pixels)");
  }
  // Centre crop where the resized side is longer than n; centred padding where it is shorter
  // (open_clip's CenterCropOrPad: the floor half of the padding on the left/top).
  const int cw = std::min(rw, n), ch = std::min(rh, n);
  const int pad_x = rw < n ? (n - rw) / 2 : 0, pad_y = rh < n ? (n - rh) / 2 : 0;
  const int left = rw > n ? half_round_even(rw - n) : 0, top = rh > n ? half_round_even(rh - n) : 0;
  Interpolation interp = cfg.interpolation;
  if (s.mode == PixelMode::kPalette || s.mode == PixelMode::kBinary)
    interp = Interpolation::kNearest;
  const bool same = rw == w && rh == h;  // torchvision and Pillow skip the resize altogether
  const bool alpha = s.mode == PixelMode::kRGBA && interp != Interpolation::kNearest && !same;

  detail::PixelView v{s.data, w, h, s.channels, s.stride};
  thread_local std::vector<uint8_t> premul, region;
  if (alpha) {
    premul.resize(static_cast<size_t>(w) * h * 4);
    for (int y = 0; y < h; ++y)
      std::memcpy(&premul[static_cast<size_t>(y) * w * 4], s.data + y * s.stride,
                  static_cast<size_t>(w) * 4);
    detail::premultiply_alpha(premul.data(), static_cast<size_t>(w) * h);
    v.data = premul.data();
    v.stride = static_cast<size_t>(w) * 4;
  }
  const int C = s.channels;
  region.resize(static_cast<size_t>(n) * n * C);
  const bool padded = cw < n || ch < n;
  thread_local std::vector<uint8_t> part;
  uint8_t* dst = region.data();
  if (padded) {
    part.resize(static_cast<size_t>(cw) * ch * C);
    dst = part.data();
  }
  detail::resample_region(v, rw, rh, interp, left, top, left + cw, top + ch, dst);
  if (alpha) detail::unpremultiply_alpha(dst, static_cast<size_t>(cw) * ch);
  if (padded) {
    // The padding value in the image's channel order (a palette image pads with palette[fill]).
    uint8_t fill_px[4] = {static_cast<uint8_t>(cfg.fill), static_cast<uint8_t>(cfg.fill),
                          static_cast<uint8_t>(cfg.fill), static_cast<uint8_t>(cfg.fill)};
    if (s.mode == PixelMode::kPalette) {
      if (!s.palette || cfg.fill >= static_cast<int>(s.palette->size() / 3))
        throw Error(ErrorCode::kUnsupported, "palette image: padding needs palette entry " +
                                                 std::to_string(cfg.fill) +
                                                 ", which the image does not define");
      const uint8_t* rgb = s.palette->data() + 3 * cfg.fill;
      fill_px[0] = rgb[s.bgr ? 2 : 0];
      fill_px[1] = rgb[1];
      fill_px[2] = rgb[s.bgr ? 0 : 2];
    } else if (s.mode == PixelMode::kBinary) {
      fill_px[0] = cfg.fill ? 255 : 0;  // Pillow's mode "1" stores 0 or 255
    }
    for (size_t i = 0; i < static_cast<size_t>(n) * n; ++i)
      std::memcpy(&region[i * C], fill_px, static_cast<size_t>(C));
    for (int y = 0; y < ch; ++y)
      std::memcpy(&region[(static_cast<size_t>(y + pad_y) * n + pad_x) * C],
                  &part[static_cast<size_t>(y) * cw * C], static_cast<size_t>(cw) * C);
  }

  const size_t plane = static_cast<size_t>(n) * n;
  const uint8_t* p = region.data();
  if (C == 1) {
    for (size_t i = 0; i < plane; ++i) {
      const uint8_t g = p[i];
      out[i] = lut[0][g];
      out[plane + i] = lut[1][g];
      out[2 * plane + i] = lut[2][g];
    }
    return;
  }
  const int r = s.bgr ? 2 : 0, b = s.bgr ? 0 : 2;
  for (size_t i = 0; i < plane; ++i, p += C) {
    out[i] = lut[0][p[r]];
    out[plane + i] = lut[1][p[1]];
    out[2 * plane + i] = lut[2][p[b]];
  }
}

}  // namespace

void Preprocessor::from_image_into(const Image8& im, float* out) const {
  const int want = im.mode == PixelMode::kRGBA                                      ? 4
                   : (im.mode == PixelMode::kGray || im.mode == PixelMode::kBinary) ? 1
                                                                                    : 3;
  if (im.width < 1 || im.height < 1 || im.channels != want ||
      im.data.size() != static_cast<size_t>(im.width) * im.height * im.channels)
    throw Error(ErrorCode::kInvalidArgument,
                "Preprocessor: inconsistent Image8 (" + std::to_string(im.width) + "x" +
                    std::to_string(im.height) + ", " + std::to_string(im.channels) +
                    " channels, mode " + pixel_mode_name(im.mode) + ")");
  check_pixel_limit(im.width, im.height, config_.max_pixels, "Preprocessor::from_image");
  run_pipeline(config_, lut_,
               Source{im.data.data(), im.width, im.height, im.channels,
                      static_cast<size_t>(im.width) * im.channels, im.mode, false},
               out);
}

void Preprocessor::from_buffer_into(const void* data, size_t size, const std::string& name,
                                    float* out) const {
  if (data == nullptr && size > 0)
    throw Error(ErrorCode::kInvalidArgument, "Preprocessor: null buffer");
  DecodeOptions opt;
  opt.apply_exif_orientation = config_.apply_exif_orientation;
  opt.max_pixels = config_.max_pixels;
  const detail::DecodedMat d =
      detail::decode_to_mat(static_cast<const uint8_t*>(data), size, name, opt);
  run_pipeline(config_, lut_,
               Source{d.mat.data, d.mat.cols, d.mat.rows, d.mat.channels(), d.mat.step[0], d.mode,
                      true, &d.palette},
               out);
}

void Preprocessor::from_file_into(const std::string& path, float* out) const {
  thread_local std::vector<uint8_t> bytes;
  detail::read_file_bytes(path, &bytes);
  from_buffer_into(bytes.data(), bytes.size(), path, out);
  if (bytes.capacity() > (64u << 20)) std::vector<uint8_t>().swap(bytes);  // don't pin huge buffers
}

FloatTensor Preprocessor::from_file(const std::string& path) const {
  const int n = config_.image_size;
  FloatTensor t({3, n, n});
  from_file_into(path, t.ptr());
  return t;
}

FloatTensor Preprocessor::from_buffer(const void* data, size_t size,
                                      const std::string& name) const {
  const int n = config_.image_size;
  FloatTensor t({3, n, n});
  from_buffer_into(data, size, name, t.ptr());
  return t;
}

FloatTensor Preprocessor::from_image(const Image8& image) const {
  const int n = config_.image_size;
  FloatTensor t({3, n, n});
  from_image_into(image, t.ptr());
  return t;
}

FloatTensor Preprocessor::from_mat(const cv::Mat& m) const {
  if (m.empty() || m.dims != 2 || m.depth() != CV_8U ||
      (m.channels() != 1 && m.channels() != 3 && m.channels() != 4))
    throw Error(ErrorCode::kInvalidArgument,
                "Preprocessor::from_mat: expected a non-empty 8-bit image with 1, 3 or 4 channels");
  check_pixel_limit(m.cols, m.rows, config_.max_pixels, "Preprocessor::from_mat");
  const int n = config_.image_size;
  FloatTensor t({3, n, n});
  const PixelMode mode = m.channels() == 1   ? PixelMode::kGray
                         : m.channels() == 3 ? PixelMode::kRGB
                                             : PixelMode::kRGBA;
  run_pipeline(config_, lut_, Source{m.data, m.cols, m.rows, m.channels(), m.step[0], mode, true},
               t.ptr());
  return t;
}

void Preprocessor::from_view_into(const ImageView& v, float* out) const {
  const int c = channels_of(v.format);
  if (v.data == nullptr || v.width < 1 || v.height < 1)
    throw Error(ErrorCode::kInvalidArgument,
                "Preprocessor: image view with null data or non-positive size " +
                    std::to_string(v.width) + "x" + std::to_string(v.height));
  const size_t packed = static_cast<size_t>(v.width) * c;
  const size_t stride = v.stride == 0 ? packed : v.stride;
  if (stride < packed)
    throw Error(ErrorCode::kInvalidArgument,
                "Preprocessor: image view stride " + std::to_string(stride) +
                    " is smaller than width * channels (" + std::to_string(packed) + ")");
  // The decoders' pixel limit: an absurd size is refused before anything is allocated for it.
  check_pixel_limit(v.width, v.height, config_.max_pixels, "Preprocessor: image view");
  const PixelMode mode = c == 1 ? PixelMode::kGray : c == 3 ? PixelMode::kRGB : PixelMode::kRGBA;
  const bool bgr = v.format == PixelFormat::kBGR || v.format == PixelFormat::kBGRA;
  run_pipeline(config_, lut_, Source{v.data, v.width, v.height, c, stride, mode, bgr}, out);
}

FloatTensor Preprocessor::from_view(const ImageView& image) const {
  const int n = config_.image_size;
  FloatTensor t({3, n, n});
  from_view_into(image, t.ptr());
  return t;
}

FloatTensor Preprocessor::from_rgb(const uint8_t* rgb, int width, int height,
                                   size_t row_stride) const {
  if (rgb == nullptr || width < 1 || height < 1 ||
      (row_stride != 0 && row_stride < size_t(width) * 3))
    throw Error(ErrorCode::kInvalidArgument,
                "Preprocessor::from_rgb: null data, non-positive size " + std::to_string(width) +
                    "x" + std::to_string(height) + " or row_stride smaller than width * 3");
  return from_view(ImageView{rgb, width, height, row_stride, PixelFormat::kRGB});
}

std::vector<Preprocessor::ItemStatus> Preprocessor::batch_into(
    size_t count, const std::function<void(size_t, float*)>& item,
    const std::function<std::string(size_t)>& name, float* out, int threads) const {
  std::vector<ItemStatus> status(count);
  if (count == 0) return status;
  if (out == nullptr) throw Error(ErrorCode::kInvalidArgument, "Preprocessor: null output");
  const size_t per = item_floats();
  if (threads < 0)
    throw Error(
        ErrorCode::kInvalidArgument,
        "Preprocessor::batch_files_into: threads must be >= 0 (0: the runtime's threads), got " +
            std::to_string(threads));
  const std::shared_ptr<Runtime> rt = runtime();
  const size_t parts =
      std::min<size_t>(static_cast<size_t>(threads > 0 ? threads : rt->threads()), count);
  // Parts take the next unclaimed item, so a slow image does not hold up a fixed share.
  std::atomic<size_t> next{0};
  rt->parallel_for(static_cast<int64_t>(parts), [&](int64_t) {
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      float* slot = out + i * per;
      try {
        item(i, slot);
        continue;
      } catch (const Error& e) {
        status[i] = ItemStatus{false, e.code(), e.what()};
      } catch (const std::exception& e) {
        status[i] = ItemStatus{false, ErrorCode::kInternal, "image '" + name(i) + "': " + e.what()};
      }
      std::fill(slot, slot + per, 0.0f);
    }
  });
  return status;
}

std::vector<Preprocessor::ItemStatus> Preprocessor::batch_files_into(
    const std::vector<std::string>& paths, float* out, int threads) const {
  if (!paths.empty() && out == nullptr)
    throw Error(ErrorCode::kInvalidArgument, "Preprocessor::batch_files_into: null output");
  return batch_into(
      paths.size(), [&](size_t i, float* slot) { from_file_into(paths[i], slot); },
      [&](size_t i) { return paths[i]; }, out, threads);
}

FloatTensor Preprocessor::batch_files(const std::vector<std::string>& paths,
                                      std::vector<ItemStatus>* status, int threads) const {
  const int n = config_.image_size;
  FloatTensor t({static_cast<int64_t>(paths.size()), 3, n, n});
  auto st = batch_files_into(paths, t.ptr(), threads);
  if (status) *status = std::move(st);
  return t;
}

}  // namespace zsclip
