// Classify and compare pixels that are already in memory (a camera frame, a decoded buffer): no
// file, no cv::Mat, no batch dimension. Draws two frames, as a camera would deliver them (BGR, rows
// padded to a 64-byte stride), then classifies them, and compares them with each other and with
// texts.
//   build/bin/classify_memory models/shapes
#include <zsclip/classifier.h>

#include <cstdint>
#include <iostream>
#include <vector>

namespace {

// A `w` x `h` BGR frame on a grey background with a disc of colour (r, g, b) in the middle.
struct Frame {
  int width, height;
  size_t stride;
  std::vector<uint8_t> bytes;
};

Frame draw_disc(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  Frame f{w, h, (static_cast<size_t>(w) * 3 + 63) / 64 * 64, {}};
  f.bytes.assign(f.stride * h, 0);
  const int cx = w / 2, cy = h / 2, radius = h / 3;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius;
      uint8_t* px = &f.bytes[y * f.stride + static_cast<size_t>(x) * 3];
      px[0] = inside ? b : 128;  // BGR order
      px[1] = inside ? g : 128;
      px[2] = inside ? r : 128;
    }
  return f;
}

zsclip::ImageView view(const Frame& f) {
  return zsclip::ImageView{f.bytes.data(), f.width, f.height, f.stride, zsclip::PixelFormat::kBGR};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: classify_memory MODEL_DIR\n";
    return 2;
  }
  try {
    auto clf = zsclip::ZeroShotClassifier::create(
        argv[1], {"red circle", "blue circle", "green circle", "red square"},
        zsclip::builtin_templates("simple"));
    const Frame red = draw_disc(160, 120, 220, 30, 30), blue = draw_disc(160, 120, 30, 70, 225);

    for (const auto& [name, frame] :
         {std::pair{"red frame", &red}, std::pair{"blue frame", &blue}}) {
      zsclip::Classification c = clf.classify(view(*frame), name);
      std::cout << c.source << ": " << c.top[0].label << " (" << c.top[0].prob << ")\n";
    }
    // Embeddings are unit length; similarities are their cosines.
    std::cout << "red frame ~ blue frame: " << clf.image_similarity(view(red), view(blue)) << "\n";
    std::cout << "\"a photo of a red circle.\" ~ red frame: "
              << clf.text_image_similarity("a photo of a red circle.", view(red)) << "\n";
    std::cout << "\"a photo of a red circle.\" ~ blue frame: "
              << clf.text_image_similarity("a photo of a red circle.", view(blue)) << "\n";
  } catch (const zsclip::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
