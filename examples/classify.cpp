// The smallest complete zsclip program: load a model, give it labels, classify an image.
//   build/bin/classify models/shapes examples/images/red_circle.png "red circle" "blue star"
#include <zsclip/classifier.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: classify MODEL_DIR IMAGE LABEL LABEL...\n";
    return 2;
  }
  std::vector<std::string> labels(argv + 3, argv + argc);
  try {
    auto classifier = zsclip::ZeroShotClassifier::create(
        argv[1], labels, zsclip::builtin_templates("simple"));  // "a photo of a {}."
    zsclip::Classification result = classifier.classify_file(argv[2]);
    for (size_t i = 0; i < result.top.size() && i < 5; ++i)
      std::cout << result.top[i].prob << "\t" << result.top[i].label << "\n";
  } catch (const zsclip::Error& e) {  // every failure: bad model, bad image, bad labels
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
