// Internal: decoding into OpenCV's channel order, shared by decode.cpp and the preprocessor.
#pragma once

#include <opencv2/core.hpp>

#include <string>
#include <vector>

#include "zsclip/image.h"

namespace zsclip::detail {

struct DecodedMat {
  cv::Mat mat;  // 8-bit; 1 channel grey, 3 channels BGR, 4 channels BGRA
  PixelMode mode = PixelMode::kRGB;
  std::vector<uint8_t> palette;  // kPalette: the PNG's palette as RGB triples (padding colours)
};

// Reads a whole regular file of at most 2 GiB (core/io.h); throws kNotFound, kPermissionDenied,
// kInvalidArgument (a directory, device or FIFO), kInvalidImage (too large), kIo.
void read_file_bytes(const std::string& path, std::vector<uint8_t>* bytes);

DecodedMat decode_to_mat(const uint8_t* data, size_t size, const std::string& name,
                         const DecodeOptions& options);

}  // namespace zsclip::detail
