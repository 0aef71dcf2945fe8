#include "zsclip/classifier.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <tuple>

#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

Classification to_classification(Prediction p, std::string source) {
  Classification c;
  c.source = std::move(source);
  c.top = std::move(p.top);
  c.probs = std::move(p.probs);
  return c;
}

Classification failed(std::string source, ErrorCode code, std::string error) {
  Classification c;
  c.source = std::move(source);
  c.ok = false;
  c.code = code;
  c.error = std::move(error);
  return c;
}

void check_options(const ClassifierOptions& o) {
  for (const auto& [name, value, min] :
       {std::tuple<const char*, int, int>{"batch_size", o.batch_size, 1},
        {"preprocess_threads", o.preprocess_threads, 0},
        {"top_k", o.top_k, 1},
        {"queue_batches", o.queue_batches, 1}})
    if (value < min)
      throw Error(ErrorCode::kInvalidArgument, std::string("ClassifierOptions.") + name +
                                                   " must be >= " + std::to_string(min) + ", got " +
                                                   std::to_string(value));
}

}  // namespace

ZeroShotClassifier::ZeroShotClassifier(Model model, ZeroShotHead head, ClassifierOptions options)
    : model_(std::move(model)),
      head_(std::move(head)),
      preprocessor_(model_.config().preprocess),
      options_(options) {
  check_options(options_);
  head_.check_compatible(model_, "zero-shot head");
}

ZeroShotClassifier ZeroShotClassifier::create(const std::string& model_dir,
                                              const std::vector<std::string>& labels,
                                              const std::vector<std::string>& templates,
                                              const ModelOptions& model_options,
                                              const ClassifierOptions& options) {
  check_options(options);
  validate_labels(labels, "labels");
  validate_templates(templates, "templates");
  Model model = Model::load(model_dir, model_options);
  Tokenizer tokenizer = model.load_tokenizer();
  HeadBuildOptions head_options;
  head_options.truncate = options.truncate_prompts;
  ZeroShotHead head = ZeroShotHead::build(model, tokenizer, labels, templates, head_options);
  return ZeroShotClassifier(std::move(model), std::move(head), options);
}

ZeroShotClassifier ZeroShotClassifier::from_head(const std::string& model_dir, const std::string& head_path,
                                                 ModelOptions model_options,
                                                 const ClassifierOptions& options) {
  check_options(options);
  ZeroShotHead head = ZeroShotHead::load(head_path);
  model_options.load_text_encoder = false;
  Model model = Model::load(model_dir, model_options);
  head.check_compatible(model, "head file " + head_path);
  return ZeroShotClassifier(std::move(model), std::move(head), options);
}

Classification ZeroShotClassifier::from_pixels(const float* pixels, const std::string& source) const {
  std::vector<float> features(static_cast<size_t>(model_.embed_dim()));
  model_.encode_images(pixels, 1, features.data());
  return to_classification(head_.classify_one(features.data(), options_.top_k), source);
}

Classification ZeroShotClassifier::classify_file(const std::string& path) const {
  return from_pixels(preprocessor_.from_file(path).ptr(), path);
}

Classification ZeroShotClassifier::classify_buffer(const void* data, size_t size, const std::string& name) const {
  return from_pixels(preprocessor_.from_buffer(data, size, name).ptr(), name);
}

Classification ZeroShotClassifier::classify_mat(const cv::Mat& image, const std::string& name) const {
  return from_pixels(preprocessor_.from_mat(image).ptr(), name);
}

Classification ZeroShotClassifier::classify_image(const Image8& image, const std::string& name) const {
  return from_pixels(preprocessor_.from_image(image).ptr(), name);
}

std::vector<Classification> ZeroShotClassifier::classify_pixels(const FloatTensor& pixels) const {
  std::vector<Prediction> preds = head_.classify(model_.encode_images(pixels), options_.top_k);
  std::vector<Classification> out;
  for (size_t i = 0; i < preds.size(); ++i)
    out.push_back(to_classification(std::move(preds[i]), "<pixels " + std::to_string(i) + ">"));
  return out;
}

std::vector<Classification> ZeroShotClassifier::classify_files(const std::vector<std::string>& paths) const {
  const size_t n = paths.size();
  std::vector<Classification> results(n);
  if (n == 0) return results;
  const size_t bs = static_cast<size_t>(options_.batch_size);
  const int64_t side = model_.image_size();
  const size_t per_image = static_cast<size_t>(3 * side * side);
  const int64_t d = model_.embed_dim();

  struct Batch {
    size_t begin = 0;
    std::vector<std::string> paths;
    std::vector<float> pixels;
    std::vector<Preprocessor::ItemStatus> status;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Batch> ready;
  bool done = false, cancelled = false;
  std::exception_ptr producer_error;

  // Decoding and preprocessing of batch k+1 overlap the encoder's work on batch k; the queue is
  // bounded so memory stays at (queue_batches + 2) batches whatever the number of files.
  std::thread producer([&] {
    try {
      for (size_t begin = 0; begin < n; begin += bs) {
        Batch b;
        b.begin = begin;
        b.paths.assign(paths.begin() + static_cast<std::ptrdiff_t>(begin),
                       paths.begin() + static_cast<std::ptrdiff_t>(std::min(n, begin + bs)));
        b.pixels.resize(b.paths.size() * per_image);
        b.status = preprocessor_.batch_files_into(b.paths, b.pixels.data(), options_.preprocess_threads);
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return cancelled || ready.size() < static_cast<size_t>(options_.queue_batches); });
        if (cancelled) return;
        ready.push_back(std::move(b));
        cv.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      producer_error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });

  try {
    for (;;) {
      Batch b;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !ready.empty() || done; });
        if (ready.empty()) break;
        b = std::move(ready.front());
        ready.pop_front();
        cv.notify_all();
      }
      // Encode only the images that preprocessed; compact them so a bad file costs nothing.
      std::vector<size_t> good;
      for (size_t i = 0; i < b.paths.size(); ++i) {
        if (b.status[i].ok) {
          if (good.size() != i)
            std::copy_n(b.pixels.data() + i * per_image, per_image, b.pixels.data() + good.size() * per_image);
          good.push_back(i);
        } else {
          results[b.begin + i] = failed(b.paths[i], b.status[i].code, b.status[i].error);
        }
      }
      if (good.empty()) continue;
      FloatTensor features({static_cast<int64_t>(good.size()), d});
      model_.encode_images(b.pixels.data(), static_cast<int64_t>(good.size()), features.ptr());
      std::vector<Prediction> preds = head_.classify(features, options_.top_k);  // one pass over the classes
      for (size_t j = 0; j < good.size(); ++j)
        results[b.begin + good[j]] = to_classification(std::move(preds[j]), b.paths[good[j]]);
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mu);
      cancelled = true;
      cv.notify_all();
    }
    producer.join();
    throw;
  }
  producer.join();
  if (producer_error) std::rethrow_exception(producer_error);
  return results;
}

}  // namespace zsclip
