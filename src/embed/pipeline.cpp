// ZeroShotPipeline: the embedding engine plus a zero-shot head.
#include "zsclip/pipeline.h"

namespace zsclip {
namespace {

Classification to_classification(Prediction p, std::string source) {
  Classification c;
  c.source = std::move(source);
  c.top = std::move(p.top);
  c.probs = std::move(p.probs);
  return c;
}

Classification failed(std::string source, const Preprocessor::ItemStatus& s) {
  Classification c;
  c.source = std::move(source);
  c.ok = false;
  c.code = s.code;
  c.error = s.error;
  return c;
}

// The engine's part of the options, checked as the classifier's (null encoder first).
EmbedOptions embed_options(const ClassifierOptions& o, const ImageEncoder* encoder) {
  if (!encoder) throw Error(ErrorCode::kInvalidArgument, "classifier: no image encoder");
  check_classifier_options(o);
  return {o.batch_size, o.preprocess_threads, o.queue_batches, o.runtime};
}

}  // namespace

void check_classifier_options(const ClassifierOptions& o) {
  const std::pair<const char*, int> at_least_one[] = {
      {"batch_size", o.batch_size}, {"top_k", o.top_k}, {"queue_batches", o.queue_batches}};
  for (const auto& [name, value] : at_least_one)
    if (value < 1)
      throw Error(ErrorCode::kInvalidArgument, std::string("ClassifierOptions.") + name +
                                                   " must be >= 1, got " + std::to_string(value));
  if (o.preprocess_threads < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "ClassifierOptions.preprocess_threads must be >= 0, got " +
                    std::to_string(o.preprocess_threads));
}

ZeroShotPipeline::ZeroShotPipeline(std::shared_ptr<const ImageEncoder> encoder, ZeroShotHead head,
                                   ClassifierOptions options,
                                   std::shared_ptr<const TextEncoder> text_encoder)
    : EmbeddingEngine(encoder, embed_options(options, encoder.get()), std::move(text_encoder)),
      head_(std::move(head)),
      options_(std::move(options)) {
  options_.runtime = runtime();
  head_.check_compatible(this->encoder(), "zero-shot head");
}

// ---- single images ----

Classification ZeroShotPipeline::from_pixels(const float* pixels, const std::string& source) const {
  return to_classification(head_.classify_one(encode(pixels).data(), options_.top_k), source);
}

Classification ZeroShotPipeline::classify_file(const std::string& path) const {
  return from_pixels(preprocessor().from_file(path).ptr(), path);
}

Classification ZeroShotPipeline::classify_buffer(const void* data, size_t size,
                                                 const std::string& name) const {
  return from_pixels(preprocessor().from_buffer(data, size, name).ptr(), name);
}

Classification ZeroShotPipeline::classify_mat(const cv::Mat& image, const std::string& name) const {
  return from_pixels(preprocessor().from_mat(image).ptr(), name);
}

Classification ZeroShotPipeline::classify_image(const Image8& image,
                                                const std::string& name) const {
  return from_pixels(preprocessor().from_image(image).ptr(), name);
}

Classification ZeroShotPipeline::classify(const ImageView& image, const std::string& name) const {
  return from_pixels(preprocessor().from_view(image).ptr(), name);
}

// ---- batches ----

std::vector<Classification> ZeroShotPipeline::classify_items(size_t count, const ItemFn& item,
                                                             const NameFn& name,
                                                             const ReadyFn& on_ready,
                                                             bool keep_results) const {
  std::vector<Classification> results(count);
  run(count, item, name, [&](EmbeddedBatch& b) {
    for (size_t i = 0; i < b.status.size(); ++i)
      if (!b.status[i].ok) results[b.begin + i] = failed(name(b.begin + i), b.status[i]);
    if (!b.encoded.empty()) {
      std::vector<Prediction> preds =
          head_.classify(b.features, options_.top_k);  // one pass over the classes
      for (size_t j = 0; j < b.encoded.size(); ++j)
        results[b.encoded[j]] = to_classification(std::move(preds[j]), name(b.encoded[j]));
    }
    if (on_ready) on_ready(b.begin, results.data() + b.begin, b.status.size());
    if (!keep_results)
      for (size_t i = 0; i < b.status.size(); ++i) results[b.begin + i] = Classification{};
  });
  if (!keep_results) results.clear();
  return results;
}

std::vector<Classification> ZeroShotPipeline::classify_files(
    const std::vector<std::string>& paths) const {
  return classify_files(paths, nullptr);
}

std::vector<Classification> ZeroShotPipeline::classify_files(const std::vector<std::string>& paths,
                                                             const ReadyFn& on_ready) const {
  return classify_items(
      paths.size(), [&](size_t i, float* out) { preprocessor().from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; }, on_ready);
}

void ZeroShotPipeline::classify_files_streamed(const std::vector<std::string>& paths,
                                               const ReadyFn& on_ready) const {
  classify_items(
      paths.size(), [&](size_t i, float* out) { preprocessor().from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; }, on_ready, false);
}

std::vector<Classification> ZeroShotPipeline::classify(const std::vector<ImageView>& images) const {
  return classify_items(
      images.size(), [&](size_t i, float* out) { preprocessor().from_view_into(images[i], out); },
      [](size_t i) { return "<image " + std::to_string(i) + ">"; });
}

std::vector<Classification> ZeroShotPipeline::classify_pixels(const FloatTensor& pixels) const {
  std::vector<Prediction> preds = head_.classify(encoder().encode_images(pixels), options_.top_k);
  std::vector<Classification> out;
  out.reserve(preds.size());
  for (size_t i = 0; i < preds.size(); ++i)
    out.push_back(to_classification(std::move(preds[i]), "<pixels " + std::to_string(i) + ">"));
  return out;
}

}  // namespace zsclip
