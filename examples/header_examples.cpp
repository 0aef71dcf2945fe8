// The usage examples at the top of the public headers, compiled so that they cannot drift from the
// API: the body of each function below is the example of the header named above it, and
// tests/core/readme_examples_test.cpp checks that the header shows it line by line, each line as
// "// " + the line. The functions are never called; the program only has to compile.
#include <zsclip/classifier.h>
#include <zsclip/config.h>
#include <zsclip/image.h>
#include <zsclip/index.h>
#include <zsclip/model.h>
#include <zsclip/pipeline.h>
#include <zsclip/preprocess.h>
#include <zsclip/runtime.h>
#include <zsclip/similarity.h>
#include <zsclip/tensor.h>
#include <zsclip/tokenizer.h>
#include <zsclip/zero_shot.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

// The names the examples use without defining them.
using Paths = std::vector<std::string>;
using Labels = std::vector<std::string>;
using Encoder = std::shared_ptr<const zsclip::ImageEncoder>;

// include/zsclip/classifier.h
void classifier_h(const Paths& paths, const uint8_t* rgb, int width, int height, size_t stride) {
  auto clf = zsclip::ZeroShotClassifier::create("models/shapes", {"red circle", "blue star"},
                                                zsclip::builtin_templates("simple"));
  zsclip::Classification c = clf.classify_file("examples/images/red_circle.png");
  std::cout << c.top[0].label << " " << c.top[0].prob << "\n";

  // Pixels in memory (a camera frame, a decoded buffer): no file, no cv::Mat, no batch
  // dimension; any row stride.
  zsclip::ImageView frame{rgb, width, height, stride, zsclip::PixelFormat::kRGB};
  zsclip::Classification d = clf.classify(frame);

  // Many files: decoding and preprocessing run on the runtime's workers while the encoder runs.
  for (const auto& r : clf.classify_files(paths))
    if (!r.ok) std::cerr << r.source << ": " << r.error << "\n";  // the others still classified

  // Embeddings (unit length) and similarities, one call each.
  std::vector<float> e = clf.embed_file("cat.jpg");
  float s = clf.text_image_similarity("a photo of a cat", "cat.jpg");
}

// include/zsclip/config.h
void config_h() {
  zsclip::ModelConfig cfg = zsclip::ModelConfig::load("models/shapes");  // reads config.json
  int size = cfg.preprocess.image_size;                                  // 48
  std::string vocab = cfg.tokenizer_path();  // "models/shapes/bpe_shapes.txt.gz"
}

// include/zsclip/image.h
void image_h() {
  zsclip::Image8 img = zsclip::decode_image_file("cat.jpg");  // RGB(A) order, as Pillow opens it
  zsclip::Image8 small = zsclip::resize(img, 224, 150, zsclip::Interpolation::kBicubic);
}

// include/zsclip/index.h
void index_h(const Paths& paths, const std::vector<std::string>& templates) {
  zsclip::Model model = zsclip::Model::load("models/shapes");
  zsclip::build_index("photos.idx", model, paths);          // resumable; adds only new files
  auto index = zsclip::EmbeddingIndex::open("photos.idx");  // embeddings.npy mapped, not copied
  for (const auto& hit : index.search_text(model, "a red circle", 10))
    std::cout << hit.path << " " << hit.score << "\n";  // cosine similarity, best first
  auto head = zsclip::ZeroShotHead::build(model, {"cat", "dog"}, templates);
  std::vector<zsclip::Classification> c = index.classify(head, 5);  // every indexed image
}

// include/zsclip/model.h
void model_h(const zsclip::FloatTensor& pixels, const zsclip::IdTensor& ids) {
  zsclip::Model model = zsclip::Model::load("models/shapes");  // throws zsclip::Error
  zsclip::FloatTensor img = model.encode_images(pixels);       // [N, 3, n, n] -> [N, embed_dim]
  zsclip::FloatTensor txt = model.encode_texts(ids);  // [N, context_length] -> [N, embed_dim]
  float scale = model.logit_scale_exp();              // logits = scale * cosine
}

// include/zsclip/pipeline.h
void pipeline_h(Encoder encoder, zsclip::ZeroShotHead head, const Paths& paths, const uint8_t* rgb,
                int width, int height, size_t stride) {
  zsclip::ZeroShotPipeline p(encoder, head);  // any zsclip::ImageEncoder (encoder.h)
  zsclip::Classification c = p.classify_file("cat.jpg");
  zsclip::Classification d = p.classify({rgb, width, height, stride, zsclip::PixelFormat::kRGB});
  std::vector<zsclip::Classification> many = p.classify_files(paths);  // batched, pipelined
  std::vector<float> e = p.embed_file("cat.jpg");                      // unit length
  float s = p.image_similarity("cat.jpg", "dog.jpg");                  // cosine, [-1, 1]
  float t = p.text_image_similarity("a photo of a cat", "cat.jpg");    // needs a text encoder
}

// include/zsclip/preprocess.h
void preprocess_h(const zsclip::ModelConfig& model_config, const uint8_t* rgb, int width,
                  int height, size_t stride) {
  zsclip::Preprocessor pre(model_config.preprocess);  // or Preprocessor() for _transform(224)
  zsclip::FloatTensor x = pre.from_file("cat.jpg");   // [3, 224, 224], normalised
  std::vector<zsclip::Preprocessor::ItemStatus> status;
  zsclip::FloatTensor batch = pre.batch_files({"a.jpg", "b.png"}, &status);  // [2, 3, 224, 224]
  zsclip::FloatTensor y = pre.from_view({rgb, width, height, stride, zsclip::PixelFormat::kRGB});
}

// include/zsclip/runtime.h
void runtime_h(const Labels& labels, const std::vector<std::string>& templates) {
  // Nothing to do for the simple case: models, classifiers and preprocessors that are given no
  // Runtime share Runtime::default_runtime() (all the cores this process may use).
  auto clf = zsclip::ZeroShotClassifier::create("models/shapes", labels, templates);

  // Two cores for this model and everything built on it:
  zsclip::RuntimeOptions ro;
  ro.threads = 2;
  auto rt = zsclip::Runtime::create(ro);
  zsclip::ModelOptions mo;
  mo.runtime = rt;  // the classifier made from this model uses it too
  auto clf2 = zsclip::ZeroShotClassifier::create("models/shapes", labels, templates, mo);
}

// include/zsclip/similarity.h
void similarity_h(const zsclip::ZeroShotClassifier& clf, const zsclip::FloatTensor& images,
                  const zsclip::FloatTensor& texts) {
  std::vector<float> a = clf.embed_file("cat.jpg");  // unit length
  std::vector<float> b = clf.embed_file("dog.jpg");
  float s = zsclip::cosine_similarity(a, b);  // in [-1, 1]
  // images [N, D], texts [M, D] -> [N, M]
  zsclip::FloatTensor sim = zsclip::cosine_similarity(images, texts);
}

// include/zsclip/tensor.h
void tensor_h() {
  zsclip::FloatTensor t({3, 224, 224});  // zero-filled
  t.at(0, 10, 20) = 1.0f;
}

// include/zsclip/tokenizer.h
void tokenizer_h() {
  auto tok = zsclip::Tokenizer::from_file("bpe_simple_vocab_16e6.txt.gz");
  std::vector<int32_t> ids = tok.encode("A photo of a cat.");  // 320 1125 539 320 2368 269
  std::string text = tok.decode(ids);                          // "a photo of a cat . "
  zsclip::IdTensor batch = tok.tokenize({"a dog", "a cat"});   // [2, 77]: sot ... eot, zeros
}

// include/zsclip/zero_shot.h
void zero_shot_h(const zsclip::Model& model, const zsclip::FloatTensor& pixels) {
  auto templates = zsclip::builtin_templates("openai-cifar");  // 18 templates
  // model: a TextEncoder; the head can be saved and reloaded without the text tower
  auto head = zsclip::ZeroShotHead::build(model, {"cat", "dog"}, templates);
  head.save("pets.zshead");
  auto preds = head.classify(model.encode_images(pixels), /*top_k=*/5);
  std::string best = preds[0].top[0].label;  // "cat"
}

}  // namespace

int main() {
  std::cout << "the header examples compile\n";
  return 0;
}
