// Tokenizer throughput on the texts of ../shared/clip/tokenizer_cases.jsonl and prompts built from
// ../shared/clip/prompts.json (templates x classes). Counter tokens/s = BPE tokens produced per
// second.
//   cold: cache disabled, every piece goes through BPE (Python: ~95k tokens/s on this machine)
//   warm: the default cache, already filled by a first pass (Python: ~260k tokens/s)
#include <benchmark/benchmark.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace {

std::string shared(const std::string& rel) { return std::string(ZSCLIP_SHARED_DIR) + "/" + rel; }

constexpr size_t kMaxTexts = 20000;

const std::vector<std::string>& texts() {
  static const std::vector<std::string> t = [] {
    std::vector<std::string> out;
    std::ifstream cases(shared("clip/tokenizer_cases.jsonl"));
    std::string line;
    while (std::getline(cases, line)) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
    }
    std::ifstream prompts(shared("clip/prompts.json"));
    if (prompts) {
      const auto j = nlohmann::json::parse(prompts);
      for (const auto& [name, ds] : j.items()) {
        const auto& classes = ds.at("classes");
        const auto& templates = ds.at("templates");
        for (const auto& c : classes) {
          // A class is a name or a list of synonyms.
          const std::string name = c.is_array() ? c.at(0).get<std::string>() : c.get<std::string>();
          for (const auto& tpl : templates) {
            if (out.size() >= kMaxTexts) return out;
            std::string s = tpl.get<std::string>();
            const auto pos = s.find("{}");
            if (pos != std::string::npos) s.replace(pos, 2, name);
            out.push_back(s);
          }
        }
      }
    }
    return out;
  }();
  return t;
}

zsclip::Tokenizer load(int64_t cache_capacity) {
  zsclip::TokenizerOptions o;
  o.num_merges = 48894;
  o.cache_capacity = cache_capacity;
  return zsclip::Tokenizer::from_file(shared("clip/bpe_simple_vocab_16e6.txt.gz"), o);
}

void run(benchmark::State& state, const zsclip::Tokenizer& tok) {
  const auto& t = texts();
  if (t.empty()) {
    state.SkipWithError("../shared/clip is absent");
    return;
  }
  int64_t tokens = 0, bytes = 0;
  for (auto _ : state) {
    for (const auto& s : t) {
      auto ids = tok.encode(s);
      tokens += static_cast<int64_t>(ids.size());
      bytes += static_cast<int64_t>(s.size());
      benchmark::DoNotOptimize(ids.data());
    }
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
  state.counters["texts"] = static_cast<double>(t.size());
  state.SetBytesProcessed(bytes);
}

void BM_EncodeCold(benchmark::State& state) {
  try {
    const auto tok = load(0);
    run(state, tok);
  } catch (const zsclip::Error& e) {
    state.SkipWithError(e.what());
  }
}
BENCHMARK(BM_EncodeCold)->Unit(benchmark::kMillisecond);

void BM_EncodeWarm(benchmark::State& state) {
  try {
    const auto tok = load(1 << 20);
    for (const auto& s : texts()) benchmark::DoNotOptimize(tok.encode(s).data());  // fill the cache
    run(state, tok);
  } catch (const zsclip::Error& e) {
    state.SkipWithError(e.what());
  }
}
BENCHMARK(BM_EncodeWarm)->Unit(benchmark::kMillisecond);

void BM_Load(benchmark::State& state) {
  for (auto _ : state) {
    try {
      benchmark::DoNotOptimize(load(0).vocab_size());
    } catch (const zsclip::Error& e) {
      state.SkipWithError(e.what());
      break;
    }
  }
}
BENCHMARK(BM_Load)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
