// Decoding with OpenCV, after our own header checks: size limit, truncation and Pillow's mode.
#include "image/decode.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cstdint>

#include "image/image_header.h"
#include "image/resample.h"
#include "zsclip/error.h"
#include "zsclip/io.h"

namespace zsclip {
namespace detail {
namespace {

// OpenCV takes the encoded bytes as one cv::Mat row, whose length is an int.
constexpr uint64_t kMaxFileBytes = INT32_MAX;

[[noreturn]] void fail(ErrorCode code, const std::string& name, const std::string& why) {
  throw Error(code, "image '" + name + "': " + why);
}

void check_pixels(int64_t w, int64_t h, const std::string& name, const DecodeOptions& o) {
  // w and h are below 2^32 (every header field is), so the unsigned product cannot overflow.
  if (w > 0 && h > 0 && w > o.max_pixels / h)
    fail(ErrorCode::kInvalidImage, name,
         "declared size " + std::to_string(w) + "x" + std::to_string(h) + " (" +
             std::to_string(static_cast<uint64_t>(w) * static_cast<uint64_t>(h)) +
             " pixels) exceeds the limit of " + std::to_string(o.max_pixels) +
             " pixels (DecodeOptions::max_pixels)");
}

// PIL.ImageOps.exif_transpose's operations for orientations 2..8.
void apply_orientation(cv::Mat& m, int orientation) {
  cv::Mat r;
  switch (orientation) {
    case 2:
      cv::flip(m, r, 1);
      break;
    case 3:
      cv::rotate(m, r, cv::ROTATE_180);
      break;
    case 4:
      cv::flip(m, r, 0);
      break;
    case 5:
      cv::transpose(m, r);
      break;
    case 6:
      cv::rotate(m, r, cv::ROTATE_90_CLOCKWISE);
      break;
    case 7:
      cv::transpose(m, r);
      cv::flip(r, r, -1);
      break;
    case 8:
      cv::rotate(m, r, cv::ROTATE_90_COUNTERCLOCKWISE);
      break;
    default:
      return;
  }
  m = r;
}

}  // namespace

void read_file_bytes(const std::string& path, std::vector<uint8_t>* bytes) {
  io::read_file(path, "image", io::ReadLimit{kMaxFileBytes, ErrorCode::kInvalidImage}, bytes);
}

DecodedMat decode_to_mat(const uint8_t* data, size_t size, const std::string& name,
                         const DecodeOptions& options) {
  if (size == 0) fail(ErrorCode::kInvalidImage, name, "empty file");
  if (size > kMaxFileBytes)
    fail(ErrorCode::kInvalidImage, name,
         std::to_string(size) + " bytes, larger than the limit of " +
             std::to_string(kMaxFileBytes) + " bytes (2 GiB)");
  const HeaderInfo h = probe_header(data, size);
  if (h.format == ImageFormat::kUnknown)
    fail(ErrorCode::kInvalidImage, name,
         "not an image in a supported format (PNG, JPEG, BMP, WebP, TIFF, PNM)");
  check_pixels(h.width, h.height, name, options);
  if (!h.problem.empty() && !h.truncated) fail(ErrorCode::kInvalidImage, name, h.problem);
  if (h.truncated) {
    const char* kind = h.format == ImageFormat::kPng    ? "PNG"
                       : h.format == ImageFormat::kJpeg ? "JPEG"
                                                        : "image";
    fail(ErrorCode::kInvalidImage, name,
         std::string("truncated ") + kind + " file (the data ends early)");
  }

  DecodedMat out;
  int flags = cv::IMREAD_UNCHANGED;
  if (h.format == ImageFormat::kPng) {
    const int ct = h.png_color_type, bd = h.png_bit_depth;
    switch (ct) {
      case 0:
        if (bd == 16)
          fail(ErrorCode::kUnsupported, name,
               "16-bit greyscale PNG is not supported (Pillow opens it in 32-bit mode \"I\")");
        out.mode = bd == 1 ? PixelMode::kBinary : PixelMode::kGray;
        flags = cv::IMREAD_GRAYSCALE;
        break;
      case 2:
        out.mode = PixelMode::kRGB;
        flags = cv::IMREAD_COLOR;
        break;
      case 3:
        out.mode = PixelMode::kPalette;
        flags = cv::IMREAD_COLOR;
        out.palette.assign(data + h.plte_offset, data + h.plte_offset + (h.plte_size / 3) * 3);
        break;
      case 4:
      case 6:
        out.mode = PixelMode::kRGBA;
        flags = cv::IMREAD_UNCHANGED;
        break;
      default:
        fail(ErrorCode::kInvalidImage, name, "PNG with invalid colour type " + std::to_string(ct));
    }
  } else if (h.format == ImageFormat::kJpeg) {
    if (h.jpeg_components == 1) {
      out.mode = PixelMode::kGray;
      flags = cv::IMREAD_GRAYSCALE;
    } else if (h.jpeg_components == 3) {
      out.mode = PixelMode::kRGB;
      flags = cv::IMREAD_COLOR;
    } else {
      fail(ErrorCode::kUnsupported, name,
           "JPEG with " + std::to_string(h.jpeg_components) +
               " components (CMYK/YCCK) is not supported");
    }
  }
  flags |= cv::IMREAD_IGNORE_ORIENTATION;

  const uint8_t* const original = data;
  std::vector<uint8_t> stripped;
  if (h.png_has_iccp) {
    png_without_iccp(data, size, &stripped);
    data = stripped.data();
    size = stripped.size();
  }
  cv::Mat m;
  try {
    const cv::Mat raw(1, static_cast<int>(size), CV_8U, const_cast<uint8_t*>(data));
    m = cv::imdecode(raw, flags);
  } catch (const cv::Exception& e) {
    fail(ErrorCode::kInvalidImage, name, std::string("cannot be decoded: ") + e.what());
  }
  if (m.empty())
    fail(ErrorCode::kInvalidImage, name,
         h.format == ImageFormat::kOther
             ? "cannot be decoded (corrupt data or an unsupported variant)"
             : "cannot be decoded (corrupt data)");
  if (m.depth() != CV_8U) {
    if (m.depth() == CV_16U) {
      // Pillow keeps the high byte of 16-bit samples (its ";16B" unpackers).
      cv::Mat high(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
      const size_t count = m.total() * m.channels();
      cv::Mat src = m.isContinuous() ? m : m.clone();
      const uint16_t* s = src.ptr<uint16_t>();
      uint8_t* o = high.ptr<uint8_t>();
      for (size_t i = 0; i < count; ++i) o[i] = static_cast<uint8_t>(s[i] >> 8);
      m = high;
    } else {
      fail(ErrorCode::kUnsupported, name, "only 8-bit images are supported");
    }
  }
  if (h.width > 0 && (m.cols != h.width || m.rows != h.height))
    fail(ErrorCode::kInvalidImage, name, "decoded size differs from the header's");
  check_pixels(m.cols, m.rows, name, options);
  if (h.format != ImageFormat::kPng && h.format != ImageFormat::kJpeg) {
    switch (m.channels()) {
      case 1:
        out.mode = PixelMode::kGray;
        break;
      case 3:
        out.mode = PixelMode::kRGB;
        break;
      case 4:
        out.mode = PixelMode::kRGBA;
        break;
      default:
        fail(ErrorCode::kUnsupported, name,
             std::to_string(m.channels()) + "-channel images are not supported");
    }
  }
  const int want = out.mode == PixelMode::kRGBA                                       ? 4
                   : (out.mode == PixelMode::kGray || out.mode == PixelMode::kBinary) ? 1
                                                                                      : 3;
  if (m.channels() != want) {
    if (want == 4 && m.channels() == 3)
      out.mode = PixelMode::kRGB;
    else
      fail(ErrorCode::kInternal, name,
           "decoder returned " + std::to_string(m.channels()) + " channels");
  }
  if (options.apply_exif_orientation && h.exif_size > 0)
    apply_orientation(m, exif_orientation(original + h.exif_offset, h.exif_size));
  if (!m.isContinuous()) m = m.clone();
  out.mat = std::move(m);
  return out;
}

}  // namespace detail

namespace {
Image8 mat_to_image(const cv::Mat& m, PixelMode mode) {
  Image8 img;
  img.width = m.cols;
  img.height = m.rows;
  img.channels = m.channels();
  img.mode = mode;
  img.data.resize(static_cast<size_t>(img.width) * img.height * img.channels);
  cv::Mat dst(m.rows, m.cols, m.type(), img.data.data());
  if (img.channels == 3)
    cv::cvtColor(m, dst, cv::COLOR_BGR2RGB);
  else if (img.channels == 4)
    cv::cvtColor(m, dst, cv::COLOR_BGRA2RGBA);
  else
    m.copyTo(dst);
  return img;
}

int channels_of(PixelMode mode) {
  switch (mode) {
    case PixelMode::kGray:
    case PixelMode::kBinary:
      return 1;
    case PixelMode::kRGBA:
      return 4;
    default:
      return 3;
  }
}

void check_image(const Image8& im, const char* what) {
  if (im.width < 1 || im.height < 1 || im.channels != channels_of(im.mode) ||
      im.data.size() != static_cast<size_t>(im.width) * im.height * im.channels)
    throw Error(ErrorCode::kInvalidArgument,
                std::string(what) + ": inconsistent Image8 (" + std::to_string(im.width) + "x" +
                    std::to_string(im.height) + ", " + std::to_string(im.channels) +
                    " channels, mode " + pixel_mode_name(im.mode) + ", " +
                    std::to_string(im.data.size()) + " bytes)");
}
}  // namespace

Image8 decode_image_buffer(const void* data, size_t size, const std::string& name,
                           const DecodeOptions& options) {
  if (data == nullptr && size > 0)
    throw Error(ErrorCode::kInvalidArgument, "decode_image_buffer: null data");
  const detail::DecodedMat d =
      detail::decode_to_mat(static_cast<const uint8_t*>(data), size, name, options);
  return mat_to_image(d.mat, d.mode);
}

Image8 decode_image_file(const std::string& path, const DecodeOptions& options) {
  std::vector<uint8_t> bytes;
  detail::read_file_bytes(path, &bytes);
  return decode_image_buffer(bytes.data(), bytes.size(), path, options);
}

Image8 image_from_mat(const cv::Mat& m) {
  if (m.empty() || m.depth() != CV_8U ||
      (m.channels() != 1 && m.channels() != 3 && m.channels() != 4) || m.dims != 2)
    throw Error(ErrorCode::kInvalidArgument,
                "image_from_mat: expected a non-empty 8-bit image with 1, 3 or 4 channels");
  return mat_to_image(m, m.channels() == 1   ? PixelMode::kGray
                         : m.channels() == 3 ? PixelMode::kRGB
                                             : PixelMode::kRGBA);
}

Image8 resize(const Image8& image, int width, int height, Interpolation interpolation) {
  check_image(image, "resize");
  if (width < 1 || height < 1)
    throw Error(
        ErrorCode::kInvalidArgument,
        "resize: invalid target size " + std::to_string(width) + "x" + std::to_string(height));
  Image8 out;
  out.width = width;
  out.height = height;
  out.channels = image.channels;
  out.mode = image.mode;
  out.data.resize(static_cast<size_t>(width) * height * image.channels);
  if (width == image.width && height == image.height) {  // Pillow returns a copy
    out.data = image.data;
    return out;
  }
  if (image.mode == PixelMode::kPalette || image.mode == PixelMode::kBinary)
    interpolation = Interpolation::kNearest;
  detail::PixelView v{image.data.data(), image.width, image.height, image.channels,
                      static_cast<size_t>(image.width) * image.channels};
  std::vector<uint8_t> premul;
  const bool alpha = image.mode == PixelMode::kRGBA && interpolation != Interpolation::kNearest;
  if (alpha) {
    premul = image.data;
    detail::premultiply_alpha(premul.data(), premul.size() / 4);
    v.data = premul.data();
  }
  detail::resample_region(v, width, height, interpolation, 0, 0, width, height, out.data.data());
  if (alpha) detail::unpremultiply_alpha(out.data.data(), out.data.size() / 4);
  return out;
}

Image8 to_rgb(const Image8& image) {
  check_image(image, "to_rgb");
  Image8 out;
  out.width = image.width;
  out.height = image.height;
  out.channels = 3;
  out.mode = PixelMode::kRGB;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  out.data.resize(n * 3);
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      out.data[i * 3 + c] = image.data[i * image.channels + (image.channels >= 3 ? c : 0)];
  return out;
}

const char* pixel_mode_name(PixelMode mode) noexcept {
  switch (mode) {
    case PixelMode::kGray:
      return "L";
    case PixelMode::kRGB:
      return "RGB";
    case PixelMode::kRGBA:
      return "RGBA";
    case PixelMode::kPalette:
      return "P";
    case PixelMode::kBinary:
      return "1";
  }
  return "?";
}

}  // namespace zsclip
