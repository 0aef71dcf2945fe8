// index_bench: exact and approximate search over a synthetic embedding index
// (benchmarks/README.md).
//
//   build/bin/index_bench --rows 1000000 --dim 512 --dtype float16 --clusters 10000 --ann ivf
//   --probes 16,32,64 (also --noise, --queries, --batch, --ivf-lists, --hnsw-m, --ef-construction,
//   --ef-search, --dir)
//
// Rows: `clusters` random centres in dim dimensions, each row a centre plus Gaussian noise,
// L2-normalised (seeded, so every run indexes the same vectors). Queries: other noisy points around
// random centres. The index is written with EmbeddingIndex::save and opened again (mapped), as
// `zsclip search` does. Prints one line per figure and a JSON summary at the end.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "index/kernels.h"
#include "zsclip/index.h"

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  return -1;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return argv[i + 1];
  return fallback;
}

void unit_noisy(const float* centre, int64_t d, float noise, std::mt19937& rng, float* out) {
  std::normal_distribution<float> g;
  double n = 0;
  for (int64_t k = 0; k < d; ++k) n += double(out[k] = centre[k] + noise * g(rng)) * out[k];
  const float inv = static_cast<float>(1.0 / std::sqrt(n));
  for (int64_t k = 0; k < d; ++k) out[k] *= inv;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace zsclip;
  const int64_t rows = std::stoll(arg(argc, argv, "--rows", "1000000"));
  const int64_t d = std::stoll(arg(argc, argv, "--dim", "512"));
  const int clusters = std::stoi(arg(argc, argv, "--clusters", "10000"));
  const float noise =
      std::stof(arg(argc, argv, "--noise",
                    "0.05"));  // per dimension: a row is ~1.1 (0.05 * sqrt(512)) from its centre
  const int nq = std::stoi(arg(argc, argv, "--queries", "50"));
  const int batch = std::stoi(arg(argc, argv, "--batch", "64"));
  const IndexDtype dtype = parse_index_dtype(arg(argc, argv, "--dtype", "float16"));
  const std::string anns = arg(argc, argv, "--ann", "");
  const std::string dir = arg(argc, argv, "--dir", "/tmp/zsclip-index-bench") + "/" +
                          index_dtype_name(dtype) + "-" + std::to_string(rows) + "x" +
                          std::to_string(d) + "-c" + std::to_string(clusters) + "-n" +
                          arg(argc, argv, "--noise", "0.05");
  json summary = {
      {"rows", rows},         {"dim", d},       {"dtype", index_dtype_name(dtype)},
      {"clusters", clusters}, {"noise", noise}, {"simd", index_detail::simd_kernels_active()}};

  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  std::vector<float> centres(static_cast<size_t>(clusters * d));
  for (auto& c : centres) c = g(rng) / std::sqrt(float(d));  // unit-length on average
  if (!EmbeddingIndex::exists(dir)) {
    auto t = Clock::now();
    EmbeddingIndex index = EmbeddingIndex::create("synthetic", d, dtype, "synthetic");
    std::vector<float> v(static_cast<size_t>(d));
    std::uniform_int_distribution<int> pick(0, clusters - 1);
    for (int64_t i = 0; i < rows; ++i) {
      unit_noisy(centres.data() + pick(rng) * d, d, noise, rng, v.data());
      index.add({"synthetic/" + std::to_string(i) + ".png", {}}, v.data());
    }
    index.save(dir);
    std::cout << "generated and saved " << rows << " rows in " << ms_since(t) / 1000 << " s -> "
              << dir << "\n";
  }
  const long anon0 = status_kb("RssAnon:"), file0 = status_kb("RssFile:");
  auto t_open = Clock::now();
  EmbeddingIndex index = EmbeddingIndex::open(dir);
  const double open_ms = ms_since(t_open);
  const long anon1 = status_kb("RssAnon:"), file1 = status_kb("RssFile:");
  std::cout << "open: " << open_ms << " ms; RssAnon +" << (anon1 - anon0) / 1024
            << " MiB, RssFile +" << (file1 - file0) / 1024 << " MiB (embeddings.npy "
            << std::filesystem::file_size(dir + "/embeddings.npy") / (1 << 20) << " MiB, mapped)\n";
  summary["open_ms"] = open_ms;
  summary["open_rss_anon_mib"] = (anon1 - anon0) / 1024.0;
  summary["bytes_per_row"] =
      double(std::filesystem::file_size(dir + "/embeddings.npy")) / double(rows);

  std::mt19937 qrng(2);
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  std::vector<float> queries(static_cast<size_t>(std::max(nq, batch) * d));
  for (int j = 0; j < std::max(nq, batch); ++j)
    unit_noisy(centres.data() + pick(qrng) * d, d, noise, qrng, queries.data() + j * d);

  // Exact, one query at a time (the first touches every page of the mapping).
  SearchOptions exact;
  exact.exact = true;
  auto t_first = Clock::now();
  index.search(queries.data(), 10, exact);
  const double first_ms = ms_since(t_first);
  std::vector<std::vector<SearchHit>> truth;
  std::vector<double> lat;
  for (int j = 0; j < nq; ++j) {
    auto t = Clock::now();
    truth.push_back(index.search(queries.data() + j * d, 10, exact));
    lat.push_back(ms_since(t));
  }
  const long anon2 = status_kb("RssAnon:"), file2 = status_kb("RssFile:");
  std::cout << "exact search, 1 query, top 10: median " << percentile(lat, 0.5) << " ms, p90 "
            << percentile(lat, 0.9) << " ms, min " << percentile(lat, 0) << " ms (first query "
            << first_ms << " ms); RssAnon +" << (anon2 - anon0) / 1024 << " MiB, RssFile +"
            << (file2 - file0) / 1024 << " MiB\n";
  summary["exact_ms"] = {{"median", percentile(lat, 0.5)},
                         {"p90", percentile(lat, 0.9)},
                         {"min", percentile(lat, 0)},
                         {"first", first_ms}};
  {
    SearchOptions one = exact;
    one.threads = 1;
    std::vector<double> l1;
    for (int j = 0; j < std::min(nq, 10); ++j) {
      auto t = Clock::now();
      index.search(queries.data() + j * d, 10, one);
      l1.push_back(ms_since(t));
    }
    std::cout << "exact search, 1 query, 1 thread: median " << percentile(l1, 0.5) << " ms\n";
    summary["exact_1thread_ms"] = percentile(l1, 0.5);
  }
  {
    FloatTensor q({batch, d}, std::vector<float>(queries.begin(), queries.begin() + batch * d));
    std::vector<double> l;
    for (int rep = 0; rep < 3; ++rep) {
      auto t = Clock::now();
      auto res = index.search(q, 10, exact);
      l.push_back(ms_since(t));
      for (int j = 0; j < std::min(batch, nq); ++j)
        if (res[size_t(j)][0].row != truth[size_t(j)][0].row)
          std::cout << "  (batched top-1 differs for query " << j << ")\n";
    }
    const double best = percentile(l, 0.5);
    std::cout << "exact search, batches of " << batch << " queries: " << best
              << " ms a batch = " << batch * 1000.0 / best << " queries/s\n";
    summary["exact_batch"] = {
        {"batch", batch}, {"ms", best}, {"queries_per_s", batch * 1000.0 / best}};
  }

  // Approximate: build, save, reopen, recall@10 against the exact top 10, latency.
  std::stringstream kinds(anns);
  for (std::string kind; std::getline(kinds, kind, ',');) {
    if (kind.empty()) continue;
    if (!ann_available()) {
      std::cout << kind << ": built without FAISS\n";
      break;
    }
    EmbeddingIndex copy = EmbeddingIndex::open(dir);
    AnnOptions o;
    o.kind = kind;
    o.min_recall = 0;  // kept whatever its recall: measured below, per setting
    if (kind == "hnsw") o.hnsw_m = std::stoi(arg(argc, argv, "--hnsw-m", "32"));
    if (kind == "hnsw")
      o.hnsw_ef_construction = std::stoi(arg(argc, argv, "--ef-construction", "80"));
    if (kind == "ivf") o.ivf_lists = std::stoi(arg(argc, argv, "--ivf-lists", "0"));
    const std::string ann_dir = dir + "-" + kind;
    double build_s = 0;  // 0: reused from an earlier run (delete ann_dir to build again)
    if (!EmbeddingIndex::exists(ann_dir) || !EmbeddingIndex::open(ann_dir).has_ann()) {
      auto t_build = Clock::now();
      copy.build_ann(o);
      build_s = ms_since(t_build) / 1000;
      copy.save(ann_dir);
    }
    auto t_load = Clock::now();
    EmbeddingIndex ann = EmbeddingIndex::open(ann_dir);
    ann.search(queries.data(), 10);  // loads ann.faiss
    const double load_ms = ms_since(t_load);
    std::vector<std::string> settings;
    std::stringstream list(arg(argc, argv, kind == "hnsw" ? "--ef-search" : "--probes",
                               kind == "hnsw" ? "48,96,192" : "16,32,64"));
    for (std::string item; std::getline(list, item, ',');) settings.push_back(item);
    json runs = json::array();
    for (const auto& s : settings) {
      // Re-open with another ef_search / probe: written into index.json's ann object.
      std::ifstream in(ann_dir + "/index.json");
      json meta = json::parse(in);
      meta["ann"][kind == "hnsw" ? "hnsw_ef_search" : "ivf_probe"] = std::stoi(s);
      std::ofstream(ann_dir + "/index.json") << meta.dump(2);
      EmbeddingIndex a = EmbeddingIndex::open(ann_dir);
      a.search(queries.data(), 10);
      int found = 0;
      std::vector<double> l;
      for (int j = 0; j < nq; ++j) {
        auto t = Clock::now();
        auto hits = a.search(queries.data() + j * d, 10);
        l.push_back(ms_since(t));
        for (const auto& h : hits)
          for (const auto& w : truth[size_t(j)]) found += h.row == w.row;
      }
      const double recall = found / (10.0 * nq), med = percentile(l, 0.5);
      std::cout << kind << " (" << a.ann_description() << "): recall@10 " << recall << ", median "
                << med << " ms = " << percentile(lat, 0.5) / med << "x exact\n";
      runs.push_back({{"setting", std::stoi(s)},
                      {"recall_at_10", recall},
                      {"median_ms", med},
                      {"speedup", percentile(lat, 0.5) / med}});
    }
    std::cout << kind << ": built in " << build_s << " s, ann.faiss "
              << std::filesystem::file_size(ann_dir + "/ann.faiss") / (1 << 20)
              << " MiB, opened + loaded in " << load_ms << " ms\n";
    summary[kind] = {
        {"build_s", build_s},
        {"load_ms", load_ms},
        {"runs", runs},
        {"file_mib", std::filesystem::file_size(ann_dir + "/ann.faiss") / double(1 << 20)}};
  }
  std::cout << summary.dump() << "\n";
  return 0;
}
