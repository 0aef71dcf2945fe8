// zsclip/image.h — image decoding and Pillow-exact resampling on 8-bit images.
//
//   zsclip::Image8 img = zsclip::decode_image_file("cat.jpg");  // RGB(A) order, as Pillow opens it
//   zsclip::Image8 small = zsclip::resize(img, 224, 150, zsclip::Interpolation::kBicubic);
//
// Decoding uses OpenCV (libpng, libjpeg-turbo, ...) and keeps what Pillow's Image.open would call
// the image's mode, because Pillow resizes each mode differently:
//   kGray     "L"    one channel, resized as it is
//   kRGB      "RGB"  three channels
//   kRGBA     "RGBA" four channels, resized premultiplied by alpha (Pillow's RGBA -> RGBa -> RGBA)
//   kPalette  "P"    stored expanded to three RGB channels; always resized with NEAREST (as Pillow)
//   kBinary   "1"    stored as one channel of 0/255; always resized with NEAREST (as Pillow)
// Palette and 1-bit images are recognised from the PNG header (colour type 3, grey bit depth 1);
// grey + alpha PNGs ("LA") are returned as kRGBA with equal colour channels, which resizes
// identically.
//
// Exact parity with Pillow 9.4 is tested for 8-bit PNG (all colour types) and baseline/progressive
// JPEG. Refused with zsclip::Error:
//   - 16-bit greyscale PNGs (Pillow opens them as 32-bit "I", a mode zsclip does not model) and
//     CMYK/YCCK JPEGs: kUnsupported. 16-bit RGB(A) PNGs are reduced to their high byte, as Pillow
//     does.
//   - images whose header declares more than max_pixels pixels (checked before decoding for PNG,
//     JPEG, BMP and WebP; after decoding for the other formats OpenCV reads), truncated PNG/JPEG
//     files, empty files, files over 2 GiB (refused by their size, before reading) and bytes that
//     are no image: kInvalidImage.
//   - a missing file: kNotFound; an unreadable one: kPermissionDenied; anything but a regular file
//     (a directory, a device such as /dev/zero, a FIFO): kInvalidArgument, without reading it.
// BMP, WebP, TIFF and PNM are accepted (recognised by their signature) as 1/3/4-channel images,
// without a parity guarantee; any other data is refused before OpenCV sees it (kInvalidImage).
// JPEGs that are complete but corrupt inside are decoded the way libjpeg (and so Pillow) decodes
// them; libjpeg/libpng may then print a warning on stderr. PNG iCCP chunks are dropped before
// decoding (profiles never change the pixels) so that libpng's sRGB warnings stay quiet.
//
// EXIF orientation is ignored by default, as Pillow's Image.open; apply_exif_orientation
// rotates/flips as PIL.ImageOps.exif_transpose would (JPEG APP1 and PNG eXIf).
//
// All functions are free functions without shared state: safe to call from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "zsclip/config.h"

namespace cv {
class Mat;
}

namespace zsclip {

enum class PixelMode { kGray, kRGB, kRGBA, kPalette, kBinary };  // Pillow's L, RGB, RGBA, P, 1

// An interleaved 8-bit image in RGB(A) order; rows are contiguous (stride = width * channels).
struct Image8 {
  int width = 0, height = 0, channels = 0;
  PixelMode mode = PixelMode::kRGB;
  std::vector<uint8_t> data;
};

// Channel layouts of 8-bit interleaved pixels in memory: RGB/BGR (BGR as OpenCV stores it),
// with alpha (resized premultiplied, as Pillow's RGBA), or one grey channel.
enum class PixelFormat { kRGB, kBGR, kRGBA, kBGRA, kGray };

// A view of 8-bit interleaved pixels someone else owns (a camera frame, a decoded buffer, a
// framebuffer): no copy is made. `stride` is the distance in bytes between the starts of two rows;
// 0 means tightly packed (width * channels).
//   zsclip::ImageView v{frame.data(), 640, 480, 640 * 3, zsclip::PixelFormat::kBGR};
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0;
  size_t stride = 0;
  PixelFormat format = PixelFormat::kRGB;
};
int channels_of(PixelFormat format) noexcept;  // 3, 3, 4, 4, 1

// Options of decoding; defaults as Pillow's Image.open with its decompression-bomb error.
//   apply_exif_orientation (false)      rotate/flip by the EXIF orientation tag
//   max_pixels             (178956970)  refuse larger images before decoding them
struct DecodeOptions {
  bool apply_exif_orientation = false;
  int64_t max_pixels = 178956970;
};

// Reads and decodes a file. Throws zsclip::Error naming the file and the reason.
Image8 decode_image_file(const std::string& path, const DecodeOptions& options = {});
// Decodes encoded bytes (PNG, JPEG, ...); `name` names them in error messages.
Image8 decode_image_buffer(const void* data, size_t size, const std::string& name = "<buffer>",
                           const DecodeOptions& options = {});

// Wraps an 8-bit OpenCV image (1 channel grey, 3 channels BGR, 4 channels BGRA) as an Image8 (RGB
// order). Throws kInvalidArgument for other depths/channel counts or an empty image.
Image8 image_from_mat(const cv::Mat& mat);

// Pillow's Image.resize((width, height), resample) for the image's mode: bicubic/bilinear with
// antialiasing, premultiplied alpha for kRGBA, NEAREST forced for kPalette and kBinary.
// Throws kInvalidArgument for a non-positive size or an inconsistent image.
Image8 resize(const Image8& image, int width, int height, Interpolation interpolation);

// Pillow's convert("RGB"): grey replicated, alpha dropped. The result has mode kRGB.
Image8 to_rgb(const Image8& image);

const char* pixel_mode_name(PixelMode mode) noexcept;  // "L", "RGB", "RGBA", "P", "1"

}  // namespace zsclip
