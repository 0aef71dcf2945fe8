// README.md's runtime example (see readme_api.cpp): a classifier on a runtime of 2 threads.
#include <zsclip/classifier.h>
#include <zsclip/runtime.h>

#include <iostream>
#include <string>
#include <vector>

int main() {
  const std::vector<std::string> labels = {"red circle", "blue star"};
  const std::vector<std::string> templates = zsclip::builtin_templates("simple");
  zsclip::RuntimeOptions ro;
  ro.threads = 2;
  zsclip::ModelOptions mo;
  mo.runtime = zsclip::Runtime::create(ro);  // this model and classifiers made from it: 2 threads
  auto clf2 = zsclip::ZeroShotClassifier::create("models/shapes", labels, templates, mo);
  std::cout << clf2.classify_file("examples/images/blue_star.png").top[0].label << "\n";
}
