// Internal: Pillow-exact resampling of 8-bit interleaved pixels, restricted to an output region.
#pragma once

#include <cstddef>
#include <cstdint>

#include "zsclip/config.h"

namespace zsclip::detail {

struct PixelView {
  const uint8_t* data = nullptr;
  int width = 0, height = 0, channels = 0;
  size_t stride = 0;  // bytes between rows
};

// Resizes `src` to out_w x out_h as Pillow's ImagingResample (bicubic/bilinear) or nearest resize
// does, and writes only the output region [x0, x1) x [y0, y1) to `dst` (tightly packed,
// src.channels). Computing a region gives exactly the pixels of the full resize: every output pixel
// is independent.
void resample_region(const PixelView& src, int out_w, int out_h, Interpolation interpolation,
                     int x0, int y0, int x1, int y1, uint8_t* dst);

// Pillow's RGBA -> RGBa and RGBa -> RGBA conversions, in place on `count` 4-byte pixels.
void premultiply_alpha(uint8_t* pixels, size_t count);
void unpremultiply_alpha(uint8_t* pixels, size_t count);

}  // namespace zsclip::detail
