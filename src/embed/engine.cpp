// EmbeddingEngine: preprocessing on the runtime's workers, batching and encoding around any
// ImageEncoder.
#include <deque>

#include "runtime/thread_pool.h"
#include "zsclip/embed.h"
#include "zsclip/similarity.h"

namespace zsclip {
namespace {

std::shared_ptr<const ImageEncoder> require_encoder(std::shared_ptr<const ImageEncoder> encoder) {
  if (!encoder) throw Error(ErrorCode::kInvalidArgument, "embedding engine: no image encoder");
  return encoder;
}

EmbedOptions checked(EmbedOptions o) {
  const std::pair<const char*, int> at_least_one[] = {{"batch_size", o.batch_size},
                                                      {"queue_batches", o.queue_batches}};
  for (const auto& [name, value] : at_least_one)
    if (value < 1)
      throw Error(ErrorCode::kInvalidArgument, std::string("EmbedOptions.") + name +
                                                   " must be >= 1, got " + std::to_string(value));
  if (o.preprocess_threads < 0)
    throw Error(ErrorCode::kInvalidArgument, "EmbedOptions.preprocess_threads must be >= 0, got " +
                                                 std::to_string(o.preprocess_threads));
  return o;
}

std::string item_name(size_t i) { return "<image " + std::to_string(i) + ">"; }

}  // namespace

EmbeddingEngine::EmbeddingEngine(std::shared_ptr<const ImageEncoder> encoder, EmbedOptions options,
                                 std::shared_ptr<const TextEncoder> text_encoder)
    : encoder_(require_encoder(std::move(encoder))),
      text_encoder_(std::move(text_encoder)),
      batching_(checked(std::move(options))),
      runtime_(Runtime::or_default(batching_.runtime ? batching_.runtime : encoder_->runtime())),
      preprocessor_(encoder_->preprocess_config(), runtime_) {
  if (text_encoder_ && text_encoder_->embed_dim() != encoder_->embed_dim())
    throw Error(ErrorCode::kInvalidArgument, "embedding engine: the text encoder's embed_dim " +
                                                 std::to_string(text_encoder_->embed_dim()) +
                                                 " differs from " + encoder_->describe() + "'s " +
                                                 std::to_string(encoder_->embed_dim()));
}

// ---- batches ----

void EmbeddingEngine::run(size_t count, const ItemFn& item, const NameFn& name,
                          const BatchFn& on_batch) const {
  const size_t bs = static_cast<size_t>(batching_.batch_size);
  const size_t per = preprocessor_.item_floats();
  detail::ThreadPool& pool = detail::thread_pool(*runtime_);

  struct Batch {
    EmbeddedBatch out;
    std::vector<float> pixels;
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
    b->out.begin = next;
    const size_t size = std::min(bs, count - next);
    b->pixels.resize(size * per);
    Batch* raw = b.get();
    pending.push_back(std::move(b));
    next += size;
    raw->task = pool.submit([this, raw, size, &item, &name] {
      const size_t begin = raw->out.begin;
      raw->out.status = preprocessor_.batch_into(
          size, [&](size_t i, float* out) { item(begin + i, out); },
          [&](size_t i) { return name(begin + i); }, raw->pixels.data(),
          batching_.preprocess_threads);
    });
  };

  // Batch k+1.. preprocess on the workers while the encoder runs on batch k.
  while (next < count || !pending.empty()) {
    while (next < count && pending.size() < static_cast<size_t>(batching_.queue_batches) + 1)
      launch();
    Batch& b = *pending.front();
    pool.wait(b.task);
    // Encode only the images that preprocessed; compact them so a bad one costs nothing.
    EmbeddedBatch& out = b.out;
    for (size_t i = 0; i < out.status.size(); ++i) {
      if (!out.status[i].ok) continue;
      const size_t j = out.encoded.size();
      if (j != i) std::copy_n(b.pixels.data() + i * per, per, b.pixels.data() + j * per);
      out.encoded.push_back(out.begin + i);
    }
    const auto n = static_cast<int64_t>(out.encoded.size());
    out.features = FloatTensor({n, encoder_->embed_dim()});
    encoder_->encode_images(b.pixels.data(), n, out.features.ptr());
    on_batch(out);
    pending.pop_front();
  }
}

void EmbeddingEngine::run_files(const std::vector<std::string>& paths,
                                const BatchFn& on_batch) const {
  run(
      paths.size(), [&](size_t i, float* out) { preprocessor_.from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; }, on_batch);
}

FloatTensor EmbeddingEngine::embed_items(size_t count, const ItemFn& item,
                                         const NameFn& name) const {
  FloatTensor out({static_cast<int64_t>(count), encoder_->embed_dim()});
  run(count, item, name, [&](EmbeddedBatch& b) {
    for (const auto& s : b.status)
      if (!s.ok) throw Error(s.code, s.error);
    normalize_rows(b.features);
    std::copy(b.features.data.begin(), b.features.data.end(),
              out.row(static_cast<int64_t>(b.begin)));
  });
  return out;
}

FloatTensor EmbeddingEngine::embed_files(const std::vector<std::string>& paths) const {
  return embed_items(
      paths.size(), [&](size_t i, float* out) { preprocessor_.from_file_into(paths[i], out); },
      [&](size_t i) { return paths[i]; });
}

FloatTensor EmbeddingEngine::embed(const std::vector<ImageView>& images) const {
  return embed_items(
      images.size(), [&](size_t i, float* out) { preprocessor_.from_view_into(images[i], out); },
      item_name);
}

// ---- single images ----

std::vector<float> EmbeddingEngine::encode(const float* pixels) const {
  std::vector<float> features(static_cast<size_t>(encoder_->embed_dim()));
  encoder_->encode_images(pixels, 1, features.data());
  return features;
}

std::vector<float> EmbeddingEngine::encode_file(const std::string& path) const {
  return encode(preprocessor_.from_file(path).ptr());
}

std::vector<float> EmbeddingEngine::embed_file(const std::string& path) const {
  return normalized(encode_file(path));
}

std::vector<float> EmbeddingEngine::embed_buffer(const void* data, size_t size,
                                                 const std::string& name) const {
  return normalized(encode(preprocessor_.from_buffer(data, size, name).ptr()));
}

std::vector<float> EmbeddingEngine::embed(const ImageView& image) const {
  return normalized(encode(preprocessor_.from_view(image).ptr()));
}

// ---- text and similarity ----

FloatTensor EmbeddingEngine::embed_texts(const std::vector<std::string>& texts) const {
  if (!text_encoder_)
    throw Error(ErrorCode::kInvalidArgument,
                "no text encoder (a classifier made from a saved head, or a model loaded without "
                "load_text_encoder)");
  return text_encoder_->embed_texts(texts);
}

std::vector<float> EmbeddingEngine::embed_text(const std::string& text) const {
  FloatTensor t = embed_texts({text});
  return std::vector<float>(t.row(0), t.row(0) + t.size(1));
}

float EmbeddingEngine::image_similarity(const ImageView& a, const ImageView& b) const {
  return cosine_similarity(embed(a), embed(b));
}

float EmbeddingEngine::image_similarity(const std::string& path_a,
                                        const std::string& path_b) const {
  return cosine_similarity(embed_file(path_a), embed_file(path_b));
}

float EmbeddingEngine::text_image_similarity(const std::string& text,
                                             const ImageView& image) const {
  return cosine_similarity(embed_text(text), embed(image));
}

float EmbeddingEngine::text_image_similarity(const std::string& text,
                                             const std::string& image_path) const {
  return cosine_similarity(embed_text(text), embed_file(image_path));
}

}  // namespace zsclip
