// SentencePiece tokenizers: load time and memory of Gemma 3's real tokenizer.json (262k pieces,
// 515k merges; ../shared/clip/gemma3/tokenizer.json.xz, decompressed once into the build tree),
// and encode throughput on the texts of ../shared/clip/sentencepiece_cases.jsonl.
//   load/gemma3_json: Tokenizer::from_sentencepiece of the tokenizer.json (counters: rss_MiB, the
//     process's resident memory after the load; rss_delta_MiB, what the loaded tokenizer adds)
//   encode/*: tokens/s of encode_with_specials (open_clip's canonicalize cleaning)
#include <benchmark/benchmark.h>
#include <lzma.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "zsclip/tokenizer.h"

namespace {

std::string shared(const std::string& rel) { return std::string(ZSCLIP_SHARED_DIR) + "/" + rel; }

double rss_mib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * 4096.0 / (1 << 20);
}

std::string gemma3_json() {
  const std::filesystem::path out =
      std::filesystem::path(ZSCLIP_BINARY_DIR) / "tmp" / "gemma3" / "tokenizer.json";
  if (std::filesystem::exists(out)) return out.string();
  std::ifstream in(shared("clip/gemma3/tokenizer.json.xz"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string packed = ss.str();
  if (packed.empty()) return "";
  std::string json(size_t{40} << 20, '\0');
  size_t in_pos = 0, out_pos = 0;
  uint64_t memlimit = uint64_t{1} << 30;
  if (lzma_stream_buffer_decode(
          &memlimit, 0, nullptr, reinterpret_cast<const uint8_t*>(packed.data()), &in_pos,
          packed.size(), reinterpret_cast<uint8_t*>(json.data()), &out_pos, json.size()) != LZMA_OK)
    return "";
  json.resize(out_pos);
  std::filesystem::create_directories(out.parent_path());
  std::ofstream(out.string() + ".part", std::ios::binary) << json;
  std::filesystem::rename(out.string() + ".part", out);
  return out.string();
}

zsclip::SentencePieceOptions options(int32_t pad) {
  zsclip::SentencePieceOptions o;
  o.clean = zsclip::TextCleaning::kCanonicalize;
  o.context_length = 64;
  o.pad_id = pad;
  return o;
}

void load_gemma3_json(benchmark::State& state) {
  const std::string path = gemma3_json();
  if (path.empty()) {
    state.SkipWithError("../shared/clip/gemma3 is absent");
    return;
  }
  double before = 0, after = 0;
  for (auto _ : state) {
    before = rss_mib();
    const zsclip::Tokenizer tok = zsclip::Tokenizer::from_sentencepiece(path, options(0));
    after = rss_mib();
    benchmark::DoNotOptimize(tok.vocab_size());
  }
  state.counters["rss_MiB"] = after;
  state.counters["rss_delta_MiB"] = after - before;
}
BENCHMARK(load_gemma3_json)->Name("load/gemma3_json")->Unit(benchmark::kMillisecond)->Iterations(3);

const std::vector<std::string>& texts() {
  static const std::vector<std::string> t = [] {
    std::vector<std::string> out;
    std::ifstream in(shared("clip/sentencepiece_cases.jsonl"));
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
    return out;
  }();
  return t;
}

void encode(benchmark::State& state, const std::string& path, int32_t pad) {
  if (texts().empty() || path.empty() || !std::filesystem::exists(path)) {
    state.SkipWithError("../shared/clip is absent");
    return;
  }
  const zsclip::Tokenizer tok = zsclip::Tokenizer::from_sentencepiece(path, options(pad));
  int64_t tokens = 0;
  for (auto _ : state)
    for (const std::string& s : texts()) {
      const auto ids = tok.encode_with_specials(s);
      tokens += static_cast<int64_t>(ids.size());
      benchmark::DoNotOptimize(ids.data());
    }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(encode, unigram_model, shared("clip/siglip-tiny/spiece.model"), 1)
    ->Name("encode/unigram_model");
BENCHMARK_CAPTURE(encode, bpe_model, shared("clip/siglip2-tiny/tokenizer.model"), 0)
    ->Name("encode/bpe_model");
BENCHMARK_CAPTURE(encode, gemma3_json, gemma3_json(), 0)->Name("encode/gemma3_json");

}  // namespace

BENCHMARK_MAIN();
