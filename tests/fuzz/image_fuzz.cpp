// libFuzzer target: arbitrary bytes through the decoder and the CLIP preprocessor. Any input must
// either give a finite [3, n, n] tensor or throw zsclip::Error; never crash, hang or read out of
// bounds. Seeds: tests/fuzz/corpus/image/ (tiny PNG/JPEG/BMP files of each mode).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "zsclip/error.h"
#include "zsclip/image.h"
#include "zsclip/preprocess.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const zsclip::Preprocessor pre = [] {
    zsclip::PreprocessConfig cfg;
    cfg.image_size = 16;
    cfg.max_pixels = 1 << 20;  // keep the fuzzer's memory bounded
    return zsclip::Preprocessor(cfg);
  }();
  try {
    const zsclip::FloatTensor t = pre.from_buffer(data, size, "fuzz");
    for (float v : t.data)
      if (!std::isfinite(v)) std::abort();
  } catch (const zsclip::Error&) {
  }
  try {
    zsclip::DecodeOptions opt;
    opt.max_pixels = 1 << 20;
    opt.apply_exif_orientation = true;
    const zsclip::Image8 im = zsclip::decode_image_buffer(data, size, "fuzz", opt);
    const int w = 1 + static_cast<int>(size % 37), h = 1 + static_cast<int>((size / 37) % 23);
    zsclip::resize(im, w, h, static_cast<zsclip::Interpolation>(size % 3));
  } catch (const zsclip::Error&) {
  }
  return 0;
}
