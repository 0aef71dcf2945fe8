// Fake encoders for the LibTorch-free tests of the head, the classifier pipeline and the runtime.
//
// FakeImageEncoder: an image's features are its mean red, green and blue in [0, 1] (the
// preprocessing undone), so a solid red image embeds as (1, 0, 0). Each image's features depend on
// its pixels only, never on the batch it came in: batched and single calls agree bit for bit.
// FakeTextEncoder: a text's features count the words "red", "green", "blue" in it (decoded from
// the ids), so "a red thing" embeds as (1, 0, 0).
// Both record which threads called them and how many calls ran at once.
#pragma once

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "zsclip/encoder.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace zsclip::testing {

// Threads of this process now (entries of /proc/self/task).
inline int process_threads() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
  }
  return n;
}

// process_threads() once joined threads have left /proc/self/task: the kernel wakes a joiner
// (pthread_join returns) before it reaps the exited thread, so for a moment the thread is still
// listed (seen under ThreadSanitizer on a loaded machine). Polls for up to 10 s until the count is
// `expected` and returns the last count: a thread that never ends still shows.
inline int process_threads_after_join(int expected) {
  int n = process_threads();
  for (int i = 0; i < 10000 && n != expected; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    n = process_threads();
  }
  return n;
}

// process_threads() once it has stopped changing (two reads 2 ms apart agree; at most 1 s): a
// count taken just after a thread was joined, for when the expected count is not known.
inline int process_threads_settled() {
  int n = process_threads();
  for (int i = 0; i < 500; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const int now = process_threads();
    if (now == n) break;
    n = now;
  }
  return n;
}

// The most threads this process had while fn ran, sampled from /proc/self/task by a thread of its
// own (not counted): a thread that fn starts and joins shows unless it lives shorter than a sample.
inline int max_threads_during(const std::function<void()>& fn) {
  std::atomic<bool> done{false};
  std::atomic<int> most{0};
  std::thread sampler([&] {
    do most = std::max(most.load(), process_threads());
    while (!done);
  });
  fn();
  done = true;
  sampler.join();
  return most - 1;
}

// Which threads called, how many calls ran at once, and how many threads the process had then.
class CallLog {
 public:
  void enter() {
    const int now = ++active_;
    int seen = max_active_.load();
    while (now > seen && !max_active_.compare_exchange_weak(seen, now)) {
    }
    const int threads = process_threads();
    std::lock_guard<std::mutex> lock(mu_);
    ids_.insert(std::this_thread::get_id());
    max_process_threads_ = std::max(max_process_threads_, threads);
  }
  void leave() { --active_; }
  size_t distinct_threads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_.size();
  }
  bool saw(std::thread::id id) const {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_.count(id) > 0;
  }
  int max_active() const { return max_active_.load(); }
  int max_process_threads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_process_threads_;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::thread::id> ids_;
  int max_process_threads_ = 0;
  std::atomic<int> active_{0}, max_active_{0};
};

class FakeImageEncoder : public ImageEncoder {
 public:
  explicit FakeImageEncoder(int image_size = 8, std::string fingerprint = "fake-1")
      : fingerprint_(std::move(fingerprint)) {
    config_.image_size = image_size;
  }
  const PreprocessConfig& preprocess_config() const override { return config_; }
  int64_t embed_dim() const override { return 3; }
  const std::string& fingerprint() const override { return fingerprint_; }
  std::string describe() const override { return "fake image encoder"; }
  mutable CallLog log;
  mutable std::atomic<int64_t> images{0};
  // When >= 0: a call that would take the count of images encoded past it throws instead.
  std::atomic<int64_t> fail_after{-1};

 protected:
  void do_encode_images(const float* pixels, int64_t n, float* out) const override {
    const int64_t limit = fail_after.load();
    if (limit >= 0 && images.load() + n > limit)
      throw Error(ErrorCode::kInternal, "fake encoder failure");
    log.enter();
    images += n;
    const int64_t plane = int64_t{config_.image_size} * config_.image_size;
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 3; ++c) {
        const float* p = pixels + (i * 3 + c) * plane;
        double sum = 0;
        for (int64_t k = 0; k < plane; ++k) sum += p[k] * config_.std[c] + config_.mean[c];
        out[i * 3 + c] = static_cast<float>(sum / plane);
      }
    log.leave();
  }

 private:
  PreprocessConfig config_;
  std::string fingerprint_;
};

class FakeTextEncoder : public TextEncoder {
 public:
  explicit FakeTextEncoder(std::string fingerprint = "fake-1")
      : fingerprint_(std::move(fingerprint)), tokenizer_(Tokenizer::from_merges({})) {}
  int64_t embed_dim() const override { return 3; }
  const std::string& fingerprint() const override { return fingerprint_; }
  int64_t context_length() const override { return 64; }
  const Tokenizer& tokenizer() const override { return tokenizer_; }
  float logit_scale_exp() const override { return 10.f; }
  mutable CallLog log;

 protected:
  FloatTensor do_encode_texts(const IdTensor& ids) const override {
    log.enter();
    FloatTensor out({ids.size(0), 3});
    for (int64_t i = 0; i < ids.size(0); ++i) {
      std::vector<int32_t> row;
      for (int64_t k = 0; k < ids.size(1); ++k) {
        const int64_t id = ids.at(i, k);
        if (id == tokenizer_.sot_id() || id == tokenizer_.eot_id() || id == 0) continue;
        row.push_back(static_cast<int32_t>(id));
      }
      const std::string text = tokenizer_.decode(row);
      const char* words[3] = {"red", "green", "blue"};
      for (int c = 0; c < 3; ++c)
        for (size_t pos = 0; (pos = text.find(words[c], pos)) != std::string::npos; pos += 1)
          out.at(i, c) += 1.f;
    }
    log.leave();
    return out;
  }

 private:
  std::string fingerprint_;
  Tokenizer tokenizer_;
};

}  // namespace zsclip::testing
