// Tokenizers of other checkpoint families: HuggingFace's vocab.json + merges.txt (../shared/clip/
// hf-tiny, derived from OpenAI's vocabulary: every OpenAI case must give OpenAI's ids), and
// open_clip's special-token names (<start_of_text>, <end_of_text>), for which a literal
// "<|endoftext|>" is plain text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;

constexpr const char* kVocab = "clip/bpe_simple_vocab_16e6.txt.gz";
constexpr const char* kHfVocab = "clip/hf-tiny/vocab.json";
constexpr const char* kHfMerges = "clip/hf-tiny/merges.txt";

Tokenizer hf_tokenizer() {
  return Tokenizer::from_hf_files(shared_path(kHfVocab), shared_path(kHfMerges));
}

TEST(TokenizerHf, EveryOpenAICaseGivesOpenAIsIds) {
  ZSCLIP_REQUIRE_SHARED(kHfVocab);
  ZSCLIP_REQUIRE_SHARED("clip/tokenizer_cases.jsonl");
  const Tokenizer tok = hf_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.sot_id(), 49406);
  EXPECT_EQ(tok.eot_id(), 49407);
  std::ifstream in(shared_path("clip/tokenizer_cases.jsonl"));
  std::string line;
  size_t n = 0, failures = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string text = j.at("text");
    ++n;
    if (tok.encode(text) != j.at("bpe").get<std::vector<int32_t>>() ||
        tok.encode_with_specials(text) != j.at("tokens").get<std::vector<int32_t>>() ||
        tok.decode(j.at("bpe").get<std::vector<int32_t>>()) != j.at("decoded").get<std::string>()) {
      if (++failures <= 10) ADD_FAILURE() << "case " << n << ": " << nlohmann::json(text).dump();
    }
  }
  EXPECT_GE(n, 900u);
  EXPECT_EQ(failures, 0u);
}

TEST(TokenizerHf, IdsComeFromVocabJson) {
  // A vocabulary whose ids are permuted relative to the merge order: ids must follow vocab.json.
  const std::string dir = std::string(ZSCLIP_BINARY_DIR) + "/tmp/tokenizer_hf";
  std::filesystem::create_directories(dir);
  // Byte symbols: printable ASCII maps to itself; 'a', 'b' and their </w> forms are needed by the
  // merges, every other byte symbol must also be present. Build the full table in id order, then
  // swap two ids.
  Tokenizer ref = Tokenizer::from_merges({{"a", "b</w>"}});
  nlohmann::json vocab = nlohmann::json::object();
  for (int32_t id = 0; id < ref.vocab_size(); ++id) vocab[ref.token(id)] = id;
  const int32_t ab = static_cast<int32_t>(vocab["ab</w>"]), eot = ref.eot_id();
  vocab["ab</w>"] = eot;
  vocab["<|endoftext|>"] = ab;
  std::ofstream(dir + "/vocab.json") << vocab.dump();
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\na b</w>\n";
  const Tokenizer tok = Tokenizer::from_hf_files(dir + "/vocab.json", dir + "/merges.txt");
  EXPECT_EQ(tok.encode("ab"), std::vector<int32_t>{eot});
  EXPECT_EQ(tok.eot_id(), ab);
  EXPECT_EQ(tok.encode_with_specials("ab"), (std::vector<int32_t>{tok.sot_id(), eot, ab}));

  // A merge whose result is missing from vocab.json, and ids that do not number the tokens.
  nlohmann::json missing = vocab;
  missing.erase("ab</w>");
  std::ofstream(dir + "/missing.json") << missing.dump();
  try {
    Tokenizer::from_hf_files(dir + "/missing.json", dir + "/merges.txt");
    ADD_FAILURE() << "no error for a merge result missing from vocab.json";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig);
    EXPECT_NE(std::string(e.what()).find("ab</w>"), std::string::npos) << e.what();
  }
  nlohmann::json twice = vocab;
  twice["ab</w>"] = 0;
  std::ofstream(dir + "/twice.json") << twice.dump();
  EXPECT_THROW(Tokenizer::from_hf_files(dir + "/twice.json", dir + "/merges.txt"), Error);
  std::ofstream(dir + "/bad.json") << "{\"a\": \"x\"}";
  EXPECT_THROW(Tokenizer::from_hf_files(dir + "/bad.json", dir + "/merges.txt"), Error);
  std::ofstream(dir + "/notjson.json") << "{";
  EXPECT_THROW(Tokenizer::from_hf_files(dir + "/notjson.json", dir + "/merges.txt"), Error);
}

TEST(TokenizerOpenClip, SpecialTokenNamesAreConfigurable) {
  ZSCLIP_REQUIRE_SHARED(kVocab);
  TokenizerOptions o;
  o.sot_token = "<start_of_text>";
  o.eot_token = "<end_of_text>";
  const Tokenizer oc = Tokenizer::from_file(shared_path(kVocab), o);
  const Tokenizer openai = Tokenizer::from_file(shared_path(kVocab));
  EXPECT_EQ(oc.token(49407), "<end_of_text>");
  EXPECT_EQ(oc.eot_token(), "<end_of_text>");
  // open_clip's reference ids (../shared/clip/openclip-gelu/reference.json, texts 7 and 11).
  EXPECT_EQ(
      oc.encode_with_specials("a <|endoftext|> in the middle"),
      (std::vector<int32_t>{49406, 320, 27, 347, 40786, 4160, 91, 285, 530, 518, 3694, 49407}));
  EXPECT_EQ(oc.encode("an <end_of_text> in the middle"),
            openai.encode("an <|endoftext|> in the middle"));
  EXPECT_EQ(openai.encode("a <|endoftext|> b"), (std::vector<int32_t>{320, 49407, 321}));
  // Case-insensitive like the pattern (the text is lower-cased first anyway).
  EXPECT_EQ(oc.encode("<END_OF_TEXT>"), std::vector<int32_t>{49407});
  EXPECT_EQ(oc.decode({49406, 320, 49407}), "<start_of_text>a <end_of_text>");
}

TEST(TokenizerOpenClip, BadSpecialTokensAreRefused) {
  TokenizerOptions o;
  o.eot_token = "end";
  EXPECT_THROW(Tokenizer::from_merges({{"a", "b"}}, o), Error);
  o.eot_token = o.sot_token;
  EXPECT_THROW(Tokenizer::from_merges({{"a", "b"}}, o), Error);
}

TEST(TokenizerConfig, FromConfigFollowsFormatAndSpecials) {
  ZSCLIP_REQUIRE_SHARED(kHfVocab);
  ModelConfig c;
  c.directory = shared_path("clip/hf-tiny");
  c.text.vocab_size = 49408;
  c.text.context_length = 77;
  c.tokenizer.format = TokenizerFormat::kHF;
  c.tokenizer.vocab_file = "vocab.json";
  c.tokenizer.merges_file = "merges.txt";
  c.tokenizer.num_merges = 48894;
  const Tokenizer tok = Tokenizer::from_config(c);
  EXPECT_EQ(tok.encode_with_specials("a photo of a cat."),
            (std::vector<int32_t>{49406, 320, 1125, 539, 320, 2368, 269, 49407}));
  c.text.vocab_size = 49000;
  try {
    Tokenizer::from_config(c);
    ADD_FAILURE() << "a vocabulary size that disagrees with the config must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("text.vocab_size"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zsclip
