// Dynamic batching: requests for one encoder are queued and run together, up to `max_batch` items
// (images or texts) or until the oldest has waited `max_delay`, whichever comes first. One thread
// per batcher calls the encoder; each request gets its own rows of the output back.
//
// Backpressure: a request must be admitted (try_admit) before its inputs are decoded; at most
// `max_queue` requests are admitted (being decoded, or queued) and not yet in a batch. A full queue
// refuses at once, so memory stays bounded at max_queue * max_batch items whatever the load. The
// published queue depth counts the queued ones (decoded, waiting for a batch).
//
// Test hook: when the environment variable ZSCLIP_SERVE_TEST_HOLD names a file, no batch starts
// while that file exists (the integration tests use it to fill the queue deterministically).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics.h"

namespace zsclip::server {

template <typename In>
class Batcher {
 public:
  // Runs the encoder on n items: in holds n * in_width values, out receives n * out_width floats.
  using Encode = std::function<void(const In* in, int64_t n, float* out)>;

  struct Job {
    std::vector<In> input;  // n * in_width
    int64_t n = 0;
    std::vector<float> output;  // n * out_width once done
    std::exception_ptr error;   // set when the batch failed
    bool done = false;
  };

  Batcher(std::string name, int64_t in_width, int64_t out_width, int max_batch,
          std::chrono::microseconds max_delay, int max_queue, Encode encode, Metrics* metrics)
      : name_(std::move(name)),
        in_width_(in_width),
        out_width_(out_width),
        max_batch_(max_batch),
        max_delay_(max_delay),
        max_queue_(max_queue),
        encode_(std::move(encode)),
        metrics_(metrics) {
    if (const char* hold = std::getenv("ZSCLIP_SERVE_TEST_HOLD"); hold && *hold) hold_file_ = hold;
    publish_depth();
    thread_ = std::thread([this] { loop(); });
  }
  ~Batcher() { stop(); }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  int max_batch() const { return max_batch_; }
  const std::string& name() const { return name_; }

  // Reserves a place in the queue; false when it is full (answer 503).
  bool try_admit() {
    std::lock_guard<std::mutex> lock(mu_);
    if (admitted_ >= max_queue_) return false;
    ++admitted_;
    return true;
  }
  // Gives back a place reserved by try_admit that will not be used (the request failed to decode).
  void cancel_admission() {
    std::lock_guard<std::mutex> lock(mu_);
    --admitted_;
  }

  // Queues an admitted job and blocks until its batch has run. Rethrows the encoder's exception.
  void run(Job& job) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      queue_.push_back({&job, std::chrono::steady_clock::now()});
      queued_items_ += job.n;
      publish_depth_locked();
      cv_.notify_all();
      done_cv_.wait(lock, [&] { return job.done; });
    }
    if (job.error) std::rethrow_exception(job.error);
  }

  // Runs what is queued, then ends the thread. Call after the HTTP server has stopped.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Entry {
    Job* job;
    std::chrono::steady_clock::time_point arrived;
  };

  bool held() const {
    if (hold_file_.empty()) return false;
    return std::ifstream(hold_file_).good();
  }

  void publish_depth() {
    std::lock_guard<std::mutex> lock(mu_);
    publish_depth_locked();
  }
  void publish_depth_locked() {
    if (metrics_) metrics_->queue_depth(name_, static_cast<int64_t>(queue_.size()), max_queue_);
  }

  void loop() {
    for (;;) {
      std::vector<Job*> batch;
      int64_t items = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        while (held() && !stopping_) {
          lock.unlock();
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          lock.lock();
        }
        // Wait for more items until the batch is full or the oldest request's delay has passed.
        const auto deadline = queue_.front().arrived + max_delay_;
        cv_.wait_until(lock, deadline, [&] { return stopping_ || queued_items_ >= max_batch_; });
        while (!queue_.empty() && (batch.empty() || items + queue_.front().job->n <= max_batch_)) {
          batch.push_back(queue_.front().job);
          items += queue_.front().job->n;
          queued_items_ -= queue_.front().job->n;
          queue_.pop_front();
          --admitted_;
        }
        publish_depth_locked();
      }
      if (metrics_) metrics_->batch(name_, items);
      std::exception_ptr error;
      std::vector<float> out;
      try {
        std::vector<In> in;
        const In* in_ptr = batch.front()->input.data();
        if (batch.size() > 1) {
          in.reserve(static_cast<size_t>(items * in_width_));
          for (Job* j : batch) in.insert(in.end(), j->input.begin(), j->input.end());
          in_ptr = in.data();
        }
        out.resize(static_cast<size_t>(items * out_width_));
        encode_(in_ptr, items, out.data());
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      size_t row = 0;
      for (Job* j : batch) {
        if (error) {
          j->error = error;
        } else {
          const size_t len = static_cast<size_t>(j->n * out_width_);
          j->output.assign(out.begin() + static_cast<std::ptrdiff_t>(row),
                           out.begin() + static_cast<std::ptrdiff_t>(row + len));
          row += len;
        }
        j->done = true;
      }
      done_cv_.notify_all();
    }
  }

  const std::string name_;
  const int64_t in_width_, out_width_;
  const int max_batch_;
  const std::chrono::microseconds max_delay_;
  const int max_queue_;
  Encode encode_;
  Metrics* metrics_;
  std::string hold_file_;

  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<Entry> queue_;
  int64_t queued_items_ = 0;
  int admitted_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace zsclip::server
