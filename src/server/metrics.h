// Server metrics in the Prometheus text exposition format (GET /metrics).
//
//   zsclip_http_responses_total{code}              every HTTP response, by status code
//   zsclip_requests_total{model,code}              inference requests, by model and status code
//   zsclip_request_duration_seconds{model}         inference latency histogram (arrival ->
//                                                  response)
//   zsclip_queue_depth{queue}                      requests decoded and waiting to join a batch
//   zsclip_queue_capacity{queue}                   --max-queue (requests admitted: decoding or
//                                                  queued)
//   zsclip_batch_size{queue}                       histogram of the items (images, texts) per batch
//   zsclip_inflight_requests                       inference requests being handled now
//   zsclip_head_cache_{hits,builds}_total, zsclip_head_cache_entries
//                                                  zero-shot heads
//   zsclip_open_connections                        client connections open now
//   zsclip_connections_refused_total               connections answered 503 (--max-connections)
//   zsclip_header_timeouts_total                   request heads not complete in --header-seconds
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace zsclip::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // Appends NAME_bucket/_sum/_count lines; `labels` is "" or `key="value",...` without braces.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void http_response(int status);
  void request_done(const std::string& model, int status, double seconds);
  void batch(const std::string& queue, int64_t items);
  void queue_depth(const std::string& queue, int64_t depth, int64_t capacity);
  void head_cache(bool hit, int64_t entries);
  void connection_refused();
  void header_timeout();
  void open_connections(int64_t n);
  std::atomic<int64_t> inflight{0};
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> http_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::map<std::string, Histogram> batch_size_;
  std::map<std::string, std::pair<int64_t, int64_t>> queues_;
  uint64_t head_hits_ = 0, head_builds_ = 0;
  int64_t head_entries_ = 0;
  uint64_t refused_ = 0, header_timeouts_ = 0;
  int64_t open_ = 0;
};

}  // namespace zsclip::server
