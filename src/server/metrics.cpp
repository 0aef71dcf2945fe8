#include "server/metrics.h"

#include <cstdio>

namespace zsclip::server {
namespace {

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.12g", v);
  return buf;
}

std::string braces(const std::string& labels) { return labels.empty() ? "" : "{" + labels + "}"; }

const std::vector<double>& latency_bounds() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}
const std::vector<double>& batch_bounds() {
  static const std::vector<double> b = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return b;
}

}  // namespace

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{" + sep + "le=\"" + num(bounds_[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{" + sep + "le=\"+Inf\"} " + std::to_string(count_) + "\n";
  out += name + "_sum" + braces(labels) + " " + num(sum_) + "\n";
  out += name + "_count" + braces(labels) + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics() = default;

void Metrics::http_response(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++http_[status];
}

void Metrics::request_done(const std::string& model, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{model, status}];
  latency_.try_emplace(model, latency_bounds()).first->second.observe(seconds);
}

void Metrics::batch(const std::string& queue, int64_t items) {
  std::lock_guard<std::mutex> lock(mu_);
  batch_size_.try_emplace(queue, batch_bounds()).first->second.observe(static_cast<double>(items));
}

void Metrics::queue_depth(const std::string& queue, int64_t depth, int64_t capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  queues_[queue] = {depth, capacity};
}

void Metrics::head_cache(bool hit, int64_t entries) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(hit ? head_hits_ : head_builds_);
  head_entries_ = entries;
}

void Metrics::connection_refused() {
  std::lock_guard<std::mutex> lock(mu_);
  ++refused_;
}

void Metrics::header_timeout() {
  std::lock_guard<std::mutex> lock(mu_);
  ++header_timeouts_;
}

void Metrics::open_connections(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = n;
}

std::string Metrics::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out += "# HELP zsclip_http_responses_total HTTP responses by status code.\n";
  out += "# TYPE zsclip_http_responses_total counter\n";
  for (const auto& [code, n] : http_)
    out += "zsclip_http_responses_total{code=\"" + std::to_string(code) + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP zsclip_requests_total Inference requests by model and status code.\n";
  out += "# TYPE zsclip_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += "zsclip_requests_total{model=\"" + key.first + "\",code=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  out += "# HELP zsclip_request_duration_seconds Inference request latency, arrival to response.\n";
  out += "# TYPE zsclip_request_duration_seconds histogram\n";
  for (const auto& [model, h] : latency_)
    h.render(out, "zsclip_request_duration_seconds", "model=\"" + model + "\"");
  out += "# HELP zsclip_queue_depth Requests decoded and waiting to join a batch.\n";
  out += "# TYPE zsclip_queue_depth gauge\n";
  for (const auto& [q, v] : queues_)
    out += "zsclip_queue_depth{queue=\"" + q + "\"} " + std::to_string(v.first) + "\n";
  out +=
      "# HELP zsclip_queue_capacity Requests a queue admits (decoding or queued) before answering "
      "503 (--max-queue).\n";
  out += "# TYPE zsclip_queue_capacity gauge\n";
  for (const auto& [q, v] : queues_)
    out += "zsclip_queue_capacity{queue=\"" + q + "\"} " + std::to_string(v.second) + "\n";
  out += "# HELP zsclip_batch_size Items (images or texts) per encoder batch.\n";
  out += "# TYPE zsclip_batch_size histogram\n";
  for (const auto& [q, h] : batch_size_) h.render(out, "zsclip_batch_size", "queue=\"" + q + "\"");
  out += "# HELP zsclip_inflight_requests Inference requests being handled.\n";
  out += "# TYPE zsclip_inflight_requests gauge\n";
  out += "zsclip_inflight_requests " + std::to_string(inflight.load()) + "\n";
  out +=
      "# HELP zsclip_head_cache_hits_total zero_shot requests whose label set's head was cached.\n";
  out += "# TYPE zsclip_head_cache_hits_total counter\n";
  out += "zsclip_head_cache_hits_total " + std::to_string(head_hits_) + "\n";
  out += "# HELP zsclip_head_cache_builds_total Zero-shot heads built (cache misses).\n";
  out += "# TYPE zsclip_head_cache_builds_total counter\n";
  out += "zsclip_head_cache_builds_total " + std::to_string(head_builds_) + "\n";
  out += "# HELP zsclip_head_cache_entries Zero-shot heads held by the LRU cache.\n";
  out += "# TYPE zsclip_head_cache_entries gauge\n";
  out += "zsclip_head_cache_entries " + std::to_string(head_entries_) + "\n";
  out += "# HELP zsclip_open_connections Client connections open.\n";
  out += "# TYPE zsclip_open_connections gauge\n";
  out += "zsclip_open_connections " + std::to_string(open_) + "\n";
  out +=
      "# HELP zsclip_connections_refused_total Connections answered 503 and closed at once "
      "(--max-connections).\n";
  out += "# TYPE zsclip_connections_refused_total counter\n";
  out += "zsclip_connections_refused_total " + std::to_string(refused_) + "\n";
  out +=
      "# HELP zsclip_header_timeouts_total Request heads not complete within --header-seconds "
      "(answered 408).\n";
  out += "# TYPE zsclip_header_timeouts_total counter\n";
  out += "zsclip_header_timeouts_total " + std::to_string(header_timeouts_) + "\n";
  return out;
}

}  // namespace zsclip::server
