// Load generator for `zsclip serve` (benchmarks/README.md, "zsclip serve"): C clients, each on its
// own keep-alive connection, send zero_shot (or image_encoder) requests with one image each, back
// to back, and the images/s and latency percentiles are printed as one JSON line.
//
//   serve_load --port P --clients 16 --requests 40 [--model zero_shot] [--labels A,B,...]
//              [--binary] [--warmup 2] IMAGE...
// Request bodies are built before timing: plain JSON with base64 images, or with --binary the
// Triton binary tensor data extension (what Triton's HTTP clients send). Loopback only; every
// loop is bounded by --requests; a request that fails is counted and reported.
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "server/base64.h"
#include "server/kserve.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

struct Body {
  std::string data;
  httplib::Headers headers;
  std::string type;
};

Body make_body(const std::string& image, const std::string& model,
               const std::vector<std::string>& labels, bool binary) {
  Body b;
  if (!binary) {
    json inputs = json::array({{{"name", "IMAGE"},
                                {"datatype", "BYTES"},
                                {"shape", {1}},
                                {"data", {zsclip::server::base64_encode(image)}}}});
    if (model == "zero_shot")
      inputs.push_back({{"name", "LABELS"},
                        {"datatype", "BYTES"},
                        {"shape", {labels.size()}},
                        {"data", labels}});
    b.data = json{{"inputs", inputs}}.dump();
    b.type = "application/json";
    return b;
  }
  std::vector<std::pair<json, std::string>> parts;
  parts.push_back({{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {1}}},
                   zsclip::server::serialize_bytes({image})});
  if (model == "zero_shot")
    parts.push_back({{{"name", "LABELS"}, {"datatype", "BYTES"}, {"shape", {labels.size()}}},
                     zsclip::server::serialize_bytes(labels)});
  json j = {{"inputs", json::array()}, {"parameters", {{"binary_data_output", true}}}};
  std::string tail;
  for (auto& [in, raw] : parts) {
    in["parameters"] = {{"binary_data_size", raw.size()}};
    j["inputs"].push_back(in);
    tail += raw;
  }
  b.data = j.dump();
  b.headers = {{"Inference-Header-Content-Length", std::to_string(b.data.size())}};
  b.data += tail;
  b.type = "application/octet-stream";
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080, clients = 1, requests = 40, warmup = 2;
  std::string model = "zero_shot";
  std::vector<std::string> labels = {"red circle",    "blue star",      "green triangle",
                                     "yellow square", "purple hexagon", "orange cross"};
  bool binary = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port")
      port = std::stoi(value());
    else if (a == "--clients")
      clients = std::stoi(value());
    else if (a == "--requests")
      requests = std::stoi(value());
    else if (a == "--warmup")
      warmup = std::stoi(value());
    else if (a == "--model")
      model = value();
    else if (a == "--labels")
      labels = split(value());
    else if (a == "--binary")
      binary = true;
    else
      paths.push_back(a);
  }
  if (paths.empty() || clients < 1 || requests < 1 ||
      (model != "zero_shot" && model != "image_encoder")) {
    std::cerr
        << "usage: serve_load --port P --clients C --requests R [--model zero_shot|image_encoder] "
           "[--labels A,B] [--binary] [--warmup W] IMAGE...\n";
    return 2;
  }
  std::vector<Body> bodies;
  for (const auto& p : paths) bodies.push_back(make_body(read_file(p), model, labels, binary));
  const std::string path = "/v2/models/" + model + "/infer";

  std::vector<std::vector<double>> latency(static_cast<size_t>(clients));
  std::atomic<int> errors{0};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::string first_error;
  std::mutex mu;
  auto worker = [&](int c) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_keep_alive(true);
    cli.set_connection_timeout(10, 0);
    cli.set_read_timeout(120, 0);
    auto send = [&](const Body& b) {
      auto r = cli.Post(path.c_str(), b.headers, b.data, b.type.c_str());
      if (!r || r->status != 200) {
        ++errors;
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty())
          first_error = r ? std::to_string(r->status) + " " + r->body.substr(0, 200)
                          : httplib::to_string(r.error());
      }
    };
    for (int i = 0; i < warmup; ++i) send(bodies[static_cast<size_t>(c + i) % bodies.size()]);
    ++ready;
    while (!go)
      std::this_thread::sleep_for(
          std::chrono::microseconds(200));  // not a busy wait: the server shares the cores
    for (int i = 0; i < requests; ++i) {
      const auto t0 = Clock::now();
      send(bodies[static_cast<size_t>(c * 7 + i) % bodies.size()]);
      latency[static_cast<size_t>(c)].push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) threads.emplace_back(worker, c);
  while (ready < clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto t0 = Clock::now();
  go = true;
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  rusage u{};
  getrusage(RUSAGE_SELF, &u);  // includes the warm-up and building the bodies: an upper bound
  const double client_cpu =
      u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
  std::vector<double> all;
  for (const auto& l : latency) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all[std::min(all.size() - 1, static_cast<size_t>(p * (all.size() - 1) + 0.5))];
  };
  json out = {{"model", model},
              {"clients", clients},
              {"requests", all.size()},
              {"errors", errors.load()},
              {"binary", binary},
              {"seconds", seconds},
              {"images_per_s", static_cast<double>(all.size()) / seconds},
              {"p50_ms", pct(0.50)},
              {"p99_ms", pct(0.99)},
              {"client_cpu_s", client_cpu}};
  if (!first_error.empty()) out["first_error"] = first_error;
  std::cout << out.dump() << std::endl;
  return errors.load() == 0 ? 0 : 1;
}
