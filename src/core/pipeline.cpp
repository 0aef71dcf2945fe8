// ZeroShotPipeline: preprocessing, batching and pipelining around any ImageEncoder.
#include "zsclip/pipeline.h"

#include <deque>

#include "runtime/thread_pool.h"
#include "zsclip/similarity.h"

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

std::shared_ptr<const ImageEncoder> require_encoder(std::shared_ptr<const ImageEncoder> encoder) {
  if (!encoder) throw Error(ErrorCode::kInvalidArgument, "classifier: no image encoder");
  return encoder;
}

std::string item_name(size_t i) { return "<image " + std::to_string(i) + ">"; }

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
    : encoder_(require_encoder(std::move(encoder))),
      text_encoder_(std::move(text_encoder)),
      head_(std::move(head)),
      options_(std::move(options)),
      runtime_(Runtime::or_default(options_.runtime)),
      preprocessor_(encoder_->preprocess_config(), runtime_) {
  check_classifier_options(options_);
  options_.runtime = runtime_;
  head_.check_compatible(*encoder_, "zero-shot head");
  if (text_encoder_ && text_encoder_->embed_dim() != encoder_->embed_dim())
    throw Error(ErrorCode::kInvalidArgument, "classifier: the text encoder's embed_dim " +
                                                 std::to_string(text_encoder_->embed_dim()) +
                                                 " differs from " + encoder_->describe() + "'s " +
                                                 std::to_string(encoder_->embed_dim()));
}

// ---- single images ----

Classification ZeroShotPipeline::from_pixels(const float* pixels, const std::string& source) const {
  std::vector<float> features(static_cast<size_t>(encoder_->embed_dim()));
  encoder_->encode_images(pixels, 1, features.data());
  return to_classification(head_.classify_one(features.data(), options_.top_k), source);
}

Classification ZeroShotPipeline::classify_file(const std::string& path) const {
  return from_pixels(preprocessor_.from_file(path).ptr(), path);
}

Classification ZeroShotPipeline::classify_buffer(const void* data, size_t size,
                                                 const std::string& name) const {
  return from_pixels(preprocessor_.from_buffer(data, size, name).ptr(), name);
}

Classification ZeroShotPipeline::classify_mat(const cv::Mat& image, const std::string& name) const {
  return from_pixels(preprocessor_.from_mat(image).ptr(), name);
}

Classification ZeroShotPipeline::classify_image(const Image8& image,
                                                const std::string& name) const {
  return from_pixels(preprocessor_.from_image(image).ptr(), name);
}

Classification ZeroShotPipeline::classify(const ImageView& image, const std::string& name) const {
  return from_pixels(preprocessor_.from_view(image).ptr(), name);
}

std::vector<float> ZeroShotPipeline::embed_pixels(const float* pixels) const {
  std::vector<float> features(static_cast<size_t>(encoder_->embed_dim()));
  encoder_->encode_images(pixels, 1, features.data());
  return normalized(std::move(features));
}

std::vector<float> ZeroShotPipeline::embed_file(const std::string& path) const {
  return embed_pixels(preprocessor_.from_file(path).ptr());
}

std::vector<float> ZeroShotPipeline::embed_buffer(const void* data, size_t size,
                                                  const std::string& name) const {
  return embed_pixels(preprocessor_.from_buffer(data, size, name).ptr());
}

std::vector<float> ZeroShotPipeline::embed(const ImageView& image) const {
  return embed_pixels(preprocessor_.from_view(image).ptr());
}

// ---- batches ----

void ZeroShotPipeline::run_batches(
    size_t count, const ItemFn& item, const NameFn& name,
    const std::function<void(size_t, const Preprocessor::ItemStatus&)>& on_error,
    const std::function<void(const std::vector<size_t>&, FloatTensor&)>& on_features) const {
  if (count == 0) return;
  const size_t bs = static_cast<size_t>(options_.batch_size);
  const size_t per = preprocessor_.item_floats();
  const int64_t d = encoder_->embed_dim();
  detail::ThreadPool& pool = detail::thread_pool(*runtime_);

  struct Batch {
    size_t begin = 0, size = 0;
    std::vector<float> pixels;
    std::vector<Preprocessor::ItemStatus> status;
    detail::ThreadPool::TaskHandle task;
  };
  std::deque<std::unique_ptr<Batch>> pending;  // preprocessing or preprocessed, in order
  // However this function ends, no task may outlive the batches and callbacks it uses.
  struct Drain {
    detail::ThreadPool& pool;
    std::deque<std::unique_ptr<Batch>>& pending;
    ~Drain() {
      for (auto& b : pending) {
        try {
          pool.wait(b->task);
        } catch (...) {
        }
      }
    }
  } drain{pool, pending};

  size_t next = 0;
  auto launch = [&] {
    auto b = std::make_unique<Batch>();
    b->begin = next;
    b->size = std::min(bs, count - next);
    b->pixels.resize(b->size * per);
    Batch* raw = b.get();
    pending.push_back(std::move(b));
    next += raw->size;
    raw->task = pool.submit([this, raw, &item, &name] {
      raw->status = preprocessor_.batch_into(
          raw->size, [&](size_t i, float* out) { item(raw->begin + i, out); },
          [&](size_t i) { return name(raw->begin + i); }, raw->pixels.data(),
          options_.preprocess_threads);
    });
  };

  // Batch k+1.. preprocess on the workers while the encoder runs on batch k.
  while (next < count || !pending.empty()) {
    while (next < count && pending.size() < static_cast<size_t>(options_.queue_batches) + 1)
      launch();
    Batch& b = *pending.front();
    pool.wait(b.task);
    // Encode only the images that preprocessed; compact them so a bad one costs nothing.
    std::vector<size_t> good;
    for (size_t i = 0; i < b.size; ++i) {
      if (!b.status[i].ok) {
        on_error(b.begin + i, b.status[i]);
        continue;
      }
      if (good.size() != i)
        std::copy_n(b.pixels.data() + i * per, per, b.pixels.data() + good.size() * per);
      good.push_back(b.begin + i);
    }
    if (!good.empty()) {
      FloatTensor features({static_cast<int64_t>(good.size()), d});
      encoder_->encode_images(b.pixels.data(), static_cast<int64_t>(good.size()), features.ptr());
      on_features(good, features);
    }
    pending.pop_front();
  }
}

std::vector<Classification> ZeroShotPipeline::classify_items(size_t count, const ItemFn& item,
                                                             const NameFn& name,
                                                             const ReadyFn& on_ready,
                                                             bool keep_results) const {
  std::vector<Classification> results(count);
  std::vector<char> done(count, 0);
  size_t emitted = 0;  // results[0, emitted) have been passed to on_ready
  auto emit_ready = [&] {
    size_t end = emitted;
    while (end < count && done[end]) ++end;
    if (on_ready && end > emitted) on_ready(emitted, results.data() + emitted, end - emitted);
    if (!keep_results)
      for (size_t i = emitted; i < end; ++i) results[i] = Classification{};
    emitted = end;
  };
  run_batches(
      count, item, name,
      [&](size_t i, const Preprocessor::ItemStatus& s) {
        results[i] = failed(name(i), s);
        done[i] = 1;
      },
      [&](const std::vector<size_t>& index, FloatTensor& features) {
        std::vector<Prediction> preds =
            head_.classify(features, options_.top_k);  // one pass over the classes
        for (size_t j = 0; j < index.size(); ++j) {
          results[index[j]] = to_classification(std::move(preds[j]), name(index[j]));
          done[index[j]] = 1;
        }
        emit_ready();
      });
  emit_ready();
  if (!keep_results) results.clear();
  return results;
}

FloatTensor ZeroShotPipeline::embed_items(size_t count, const ItemFn& item,
                                          const NameFn& name) const {
  FloatTensor out({static_cast<int64_t>(count), encoder_->embed_dim()});
  run_batches(
      count, item, name,
      [](size_t, const Preprocessor::ItemStatus& s) { throw Error(s.code, s.error); },
      [&](const std::vector<size_t>& index, FloatTensor& features) {
        normalize_rows(features);
        for (size_t j = 0; j < index.size(); ++j)
          std::copy_n(features.row(static_cast<int64_t>(j)), features.size(1),
                      out.row(static_cast<int64_t>(index[j])));
      });
  return out;
}

std::vector<Classification> ZeroShotPipeline::classify_files(
    const std::vector<std::string>& paths) const {
  return classify_files(paths, nullptr);
}

std::vector<Classification> ZeroShotPipeline::classify_files(const std::vector<std::string>& paths,
                                                             const ReadyFn& on_ready) const {
  return classify_items(
      paths.size(), [&](size_t i, float* out) { preprocessor_.from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; }, on_ready);
}

void ZeroShotPipeline::classify_files_streamed(const std::vector<std::string>& paths,
                                               const ReadyFn& on_ready) const {
  classify_items(
      paths.size(), [&](size_t i, float* out) { preprocessor_.from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; }, on_ready, false);
}

std::vector<Classification> ZeroShotPipeline::classify(const std::vector<ImageView>& images) const {
  return classify_items(
      images.size(), [&](size_t i, float* out) { preprocessor_.from_view_into(images[i], out); },
      item_name);
}

FloatTensor ZeroShotPipeline::embed_files(const std::vector<std::string>& paths) const {
  return embed_items(
      paths.size(), [&](size_t i, float* out) { preprocessor_.from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; });
}

FloatTensor ZeroShotPipeline::embed(const std::vector<ImageView>& images) const {
  return embed_items(
      images.size(), [&](size_t i, float* out) { preprocessor_.from_view_into(images[i], out); },
      item_name);
}

std::vector<Classification> ZeroShotPipeline::classify_pixels(const FloatTensor& pixels) const {
  std::vector<Prediction> preds = head_.classify(encoder_->encode_images(pixels), options_.top_k);
  std::vector<Classification> out;
  out.reserve(preds.size());
  for (size_t i = 0; i < preds.size(); ++i)
    out.push_back(to_classification(std::move(preds[i]), "<pixels " + std::to_string(i) + ">"));
  return out;
}

// ---- text and similarity ----

const TextEncoder& ZeroShotPipeline::require_text_encoder() const {
  if (!text_encoder_)
    throw Error(
        ErrorCode::kInvalidArgument,
        "classifier: no text encoder (made from a saved head, or without load_text_encoder)");
  return *text_encoder_;
}

FloatTensor ZeroShotPipeline::embed_texts(const std::vector<std::string>& texts) const {
  return require_text_encoder().embed_texts(texts);
}

std::vector<float> ZeroShotPipeline::embed_text(const std::string& text) const {
  FloatTensor t = embed_texts({text});
  return std::vector<float>(t.row(0), t.row(0) + t.size(1));
}

float ZeroShotPipeline::image_similarity(const ImageView& a, const ImageView& b) const {
  return cosine_similarity(embed(a), embed(b));
}

float ZeroShotPipeline::image_similarity(const std::string& path_a,
                                         const std::string& path_b) const {
  return cosine_similarity(embed_file(path_a), embed_file(path_b));
}

float ZeroShotPipeline::text_image_similarity(const std::string& text,
                                              const ImageView& image) const {
  return cosine_similarity(embed_text(text), embed(image));
}

float ZeroShotPipeline::text_image_similarity(const std::string& text,
                                              const std::string& image_path) const {
  return cosine_similarity(embed_text(text), embed_file(image_path));
}

}  // namespace zsclip
