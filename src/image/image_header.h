// Internal: cheap reads of image headers (size, colour type) and structural completeness checks,
// done before OpenCV decodes anything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zsclip::detail {

enum class ImageFormat { kUnknown, kPng, kJpeg, kBmp, kWebp, kOther };  // kOther: TIFF, PNM

struct HeaderInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int64_t width = -1, height = -1;  // -1: not known before decoding
  int png_color_type = -1, png_bit_depth = -1;
  int jpeg_components = -1;
  bool truncated = false;  // PNG without IEND / JPEG without EOI before the data ends
  std::string problem;     // non-empty: the header is malformed (the reason)
  size_t exif_offset = 0, exif_size = 0;  // the TIFF-structured EXIF block, if any
  bool png_has_iccp = false;  // libpng prints warnings about many real-world ICC profiles
  size_t plte_offset = 0, plte_size = 0;  // a PNG's PLTE chunk data (RGB triples), if any
};

HeaderInfo probe_header(const uint8_t* data, size_t size);

// The EXIF orientation tag (1..8) of a TIFF-structured EXIF block, or 1 when absent/malformed.
// A copy of a (complete) PNG without its iCCP chunks: colour profiles never change decoded pixels
// (neither Pillow nor OpenCV applies them), and dropping them keeps libpng's warnings off stderr.
void png_without_iccp(const uint8_t* data, size_t size, std::vector<uint8_t>* out);

int exif_orientation(const uint8_t* tiff, size_t size);

}  // namespace zsclip::detail
