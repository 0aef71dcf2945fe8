// README.md's "The C++ API" example, compiled with the examples so that it cannot drift from the
// API (tests/core/readme_examples_test.cpp checks that README.md shows this file from its first
// include line to its end). Run it from the source folder: build/bin/readme_api
#include <zsclip/classifier.h>

#include <iostream>
#include <string>
#include <vector>

int main() {
  auto clf = zsclip::ZeroShotClassifier::create(
      "models/shapes",                                // exported model directory
      {"red circle", "blue star", "green triangle"},  // class labels
      zsclip::builtin_templates("simple"));  // "a photo of a {}."; "openai-imagenet" (80 templates)
                                             // needs a 77-token context (models/shapes has 16)
  zsclip::Classification c = clf.classify_file("examples/images/red_circle.png");
  std::cout << c.top[0].label << " " << c.top[0].prob << "\n";

  const std::vector<std::string> paths = {"examples/images/blue_star.png", "no_such_file.png"};
  for (const auto& r : clf.classify_files(paths))  // batched, decoding overlapped with inference
    if (!r.ok) std::cerr << r.source << ": " << r.error << "\n";  // one bad image loses nothing

  // Pixels in memory (RGB, BGR, RGBA, BGRA or grey; any row stride): no file, no cv::Mat, no
  // batch dimension. Here a 64 x 48 camera frame of pure red, in OpenCV's BGR order.
  const int width = 64, height = 48;
  const size_t stride = width * 3;
  std::vector<uint8_t> frame(stride * height, 0);
  for (size_t i = 2; i < frame.size(); i += 3) frame[i] = 255;
  zsclip::Classification d =
      clf.classify({frame.data(), width, height, stride, zsclip::PixelFormat::kBGR});
  const std::string red = "examples/images/red_circle.png";
  std::vector<float> e = clf.embed_file(red);                                // unit length
  float s = clf.image_similarity(red, "examples/images/orange_circle.png");  // cosine
  float t = clf.text_image_similarity("a red circle", red);                  // cosine
  std::cout << d.top[0].label << " " << e.size() << " " << s << " " << t << "\n";
}
