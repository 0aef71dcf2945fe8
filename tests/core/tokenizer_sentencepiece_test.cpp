// SentencePiece tokenizers (SigLIP, SigLIP2): the reference ids of ../shared/clip/
// sentencepiece_cases.jsonl (made with the SentencePiece library and open_clip's cleaning), Gemma
// 3's real tokenizer.json (ids from transformers.js' port), the tokens of the three shared SigLIP
// folders' reference.json, and the refusals.
#include <gtest/gtest.h>
#include <lzma.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sentencepiece_util.h"
#include "test_util.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using Ids = std::vector<int32_t>;

constexpr const char* kCases = "clip/sentencepiece_cases.jsonl";
constexpr const char* kUnigram = "clip/siglip-tiny/spiece.model";
constexpr const char* kBpe = "clip/siglip2-tiny/tokenizer.model";
constexpr const char* kGemma3Xz = "clip/gemma3/tokenizer.json.xz";

std::vector<nlohmann::json> read_cases() {
  std::ifstream in(shared_path(kCases));
  std::vector<nlohmann::json> cases;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) cases.push_back(nlohmann::json::parse(line));
  return cases;
}

SentencePieceOptions options(TextCleaning clean, int32_t pad_id) {
  SentencePieceOptions o;
  o.clean = clean;
  o.context_length = 64;
  o.pad_id = pad_id;
  o.eos_id = 1;
  o.bos_id = -1;
  o.add_eos = true;
  return o;
}

// Gemma 3's tokenizer.json, decompressed (liblzma) once into the build tree.
std::string gemma3_json() {
  const std::filesystem::path out =
      std::filesystem::path(ZSCLIP_BINARY_DIR) / "tmp" / "gemma3" / "tokenizer.json";
  if (std::filesystem::exists(out)) return out.string();
  std::filesystem::create_directories(out.parent_path());
  const std::string packed = read_file(shared_path(kGemma3Xz));
  std::string json(size_t{40} << 20, '\0');
  size_t in_pos = 0, out_pos = 0;
  uint64_t memlimit = uint64_t{1} << 30;
  const lzma_ret ret = lzma_stream_buffer_decode(
      &memlimit, 0, nullptr, reinterpret_cast<const uint8_t*>(packed.data()), &in_pos,
      packed.size(), reinterpret_cast<uint8_t*>(json.data()), &out_pos, json.size());
  if (ret != LZMA_OK) throw std::runtime_error("cannot decompress " + shared_path(kGemma3Xz));
  json.resize(out_pos);
  const std::string tmp = out.string() + ".part";
  std::ofstream(tmp, std::ios::binary) << json;
  std::filesystem::rename(tmp, out);
  return out.string();
}

// Every case: `field` for tokenize-with-specials of the text, `raw_field` for the pieces of the
// uncleaned text (kNone).
void check_cases(const std::string& vocab, int32_t pad_id, const char* field,
                 const char* raw_field) {
  const Tokenizer clean =
      Tokenizer::from_sentencepiece(vocab, options(TextCleaning::kCanonicalize, pad_id));
  const Tokenizer raw = Tokenizer::from_sentencepiece(vocab, options(TextCleaning::kNone, pad_id));
  size_t n = 0, failures = 0;
  for (const nlohmann::json& c : read_cases()) {
    ++n;
    const std::string text = c.at("text");
    const Ids want = c.at(field).get<Ids>(), want_raw = c.at(raw_field).get<Ids>();
    const Ids got = clean.encode_with_specials(text), got_raw = raw.encode(text);
    if (got != want || got_raw != want_raw) {
      if (++failures <= 8)
        ADD_FAILURE() << "case " << n << " " << nlohmann::json(text).dump() << "\n  " << field
                      << " got " << nlohmann::json(got).dump() << " want "
                      << nlohmann::json(want).dump() << "\n  " << raw_field << " got "
                      << nlohmann::json(got_raw).dump() << " want "
                      << nlohmann::json(want_raw).dump();
    }
  }
  EXPECT_GE(n, 250u);
  EXPECT_EQ(failures, 0u);
}

TEST(SentencePieceCases, UnigramSpieceModel) {
  ZSCLIP_REQUIRE_SHARED(kCases);
  ZSCLIP_REQUIRE_SHARED(kUnigram);
  check_cases(shared_path(kUnigram), 1, "unigram", "unigram_raw");
}

TEST(SentencePieceCases, GemmaStyleBpeModel) {
  ZSCLIP_REQUIRE_SHARED(kCases);
  ZSCLIP_REQUIRE_SHARED(kBpe);
  check_cases(shared_path(kBpe), 0, "bpe", "bpe_raw");
}

TEST(SentencePieceCases, Gemma3TokenizerJson) {
  ZSCLIP_REQUIRE_SHARED(kCases);
  ZSCLIP_REQUIRE_SHARED(kGemma3Xz);
  const std::string path = gemma3_json();
  const Tokenizer tok = Tokenizer::from_sentencepiece(path, options(TextCleaning::kNone, 0));
  EXPECT_EQ(tok.vocab_size(), 262145);
  EXPECT_EQ(tok.num_merges(), 514906);
  EXPECT_EQ(tok.token(1), "<eos>");
  EXPECT_EQ(tok.token(236743), "\u2581");
  check_cases(path, 0, "gemma3", "gemma3_raw");
}

TEST(SentencePieceCases, PaddingAndTruncation) {
  ZSCLIP_REQUIRE_SHARED(kUnigram);
  const Tokenizer tok =
      Tokenizer::from_sentencepiece(shared_path(kUnigram), options(TextCleaning::kCanonicalize, 1));
  EXPECT_EQ(tok.type(), "sentencepiece");
  EXPECT_EQ(tok.pad_id(), 1);
  EXPECT_EQ(tok.eot_id(), 1);
  EXPECT_EQ(tok.sot_id(), -1);
  EXPECT_EQ(tok.eot_token(), "</s>");
  EXPECT_EQ(tok.sot_token(), "");
  const Ids cat = tok.encode_with_specials("a photo of a cat.");
  EXPECT_EQ(cat, (Ids{11, 1289, 35, 118, 26, 11, 98, 90, 1}));
  const IdTensor rows = tok.tokenize({"a photo of a cat.", ""});
  ASSERT_EQ(rows.shape, (std::vector<int64_t>{2, 64}));
  for (int64_t j = 0; j < 64; ++j)
    EXPECT_EQ(rows.row(0)[j], j < 9 ? cat[static_cast<size_t>(j)] : 1) << j;
  EXPECT_EQ(rows.row(1)[0], 1);  // "" -> [eos], padded with 1
  // Too long: pieces[:63] + eos; or refused.
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "very long caption ";
  int64_t full = 0;
  const Ids cut = tok.encode_with_specials(long_text, 0, true, &full);
  ASSERT_EQ(cut.size(), 64u);
  EXPECT_EQ(cut.back(), 1);
  EXPECT_GT(full, 64);
  const Ids body = tok.encode(long_text);
  EXPECT_EQ(Ids(cut.begin(), cut.end() - 1), Ids(body.begin(), body.begin() + 63));
  try {
    tok.encode_with_specials(long_text, 0, false);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidText);
  }
  // A bos and no eos: [bos] + pieces[:63].
  SentencePieceOptions o = options(TextCleaning::kCanonicalize, 0);
  o.bos_id = 2;
  o.add_eos = false;
  const Tokenizer bos = Tokenizer::from_sentencepiece(shared_path(kUnigram), o);
  EXPECT_EQ(bos.encode_with_specials("a photo of a cat."),
            (Ids{2, 11, 1289, 35, 118, 26, 11, 98, 90}));
  EXPECT_EQ(bos.encode_with_specials(long_text).size(), 64u);
  EXPECT_EQ(bos.encode_with_specials(long_text)[63], body[62]);
}

TEST(SentencePieceCases, FtfyIsOptIn) {
  ZSCLIP_REQUIRE_SHARED(kBpe);
  SentencePieceOptions o = options(TextCleaning::kCanonicalize, 0);
  const Tokenizer plain = Tokenizer::from_sentencepiece(shared_path(kBpe), o);
  o.ftfy = true;
  const Tokenizer fixed = Tokenizer::from_sentencepiece(shared_path(kBpe), o);
  // ftfy turns curly quotes into ASCII ones, which canonicalize then deletes; ligatures spelt out.
  EXPECT_EQ(fixed.encode("\u201Ccurly\u201D it\u2019s"), plain.encode("curly its"));
  EXPECT_NE(plain.encode("\u201Ccurly\u201D it\u2019s"), plain.encode("curly its"));
  EXPECT_EQ(fixed.encode("\uFB01ne"), plain.encode("fine"));
  o.clean = TextCleaning::kNone;
  EXPECT_THROW(Tokenizer::from_sentencepiece(shared_path(kBpe), o), Error);
}

// reference.json of a shared SigLIP folder: `tokens` (no padding) and `tokens_padded`.
void check_reference(const std::string& folder, const std::string& vocab, TextCleaning clean,
                     int32_t pad_id) {
  const auto ref = nlohmann::json::parse(read_file(shared_path(folder + "/reference.json")));
  const Tokenizer tok =
      Tokenizer::from_sentencepiece(shared_path(folder + "/" + vocab), options(clean, pad_id));
  size_t n = 0;
  for (const auto& t : ref.at("texts")) {
    const std::string text = t.at("text");
    EXPECT_EQ(tok.encode_with_specials(text), t.at("tokens").get<Ids>())
        << folder << ": " << nlohmann::json(text).dump();
    const IdTensor padded = tok.tokenize({text});
    EXPECT_EQ(padded.data, t.at("tokens_padded").get<std::vector<int64_t>>())
        << folder << ": " << nlohmann::json(text).dump();
    ++n;
  }
  EXPECT_GE(n, 10u);
}

TEST(SentencePieceReference, SiglipTinyOpenClip) {
  ZSCLIP_REQUIRE_SHARED("clip/siglip-tiny/reference.json");
  check_reference("clip/siglip-tiny", "spiece.model", TextCleaning::kCanonicalize, 1);
}

TEST(SentencePieceReference, Siglip2TinyOpenClip) {
  ZSCLIP_REQUIRE_SHARED("clip/siglip2-tiny/reference.json");
  check_reference("clip/siglip2-tiny", "tokenizer.model", TextCleaning::kCanonicalize, 0);
}

TEST(SentencePieceReference, HfSiglipTiny) {
  ZSCLIP_REQUIRE_SHARED("clip/hf-siglip-tiny/reference.json");
  check_reference("clip/hf-siglip-tiny", "spiece.model", TextCleaning::kSiglipHF, 1);
}

TEST(SentencePieceReference, LayoutsDifferWhereTheirCleaningDoes) {
  ZSCLIP_REQUIRE_SHARED(kUnigram);
  const Tokenizer oc =
      Tokenizer::from_sentencepiece(shared_path(kUnigram), options(TextCleaning::kCanonicalize, 1));
  const Tokenizer hf =
      Tokenizer::from_sentencepiece(shared_path(kUnigram), options(TextCleaning::kSiglipHF, 1));
  EXPECT_EQ(oc.encode("a photo of a cat."), hf.encode("a photo of a cat."));
  // open_clip: "_" -> space and HTML unescaped; HF: "_" deleted, "&amp;" -> "amp".
  EXPECT_EQ(oc.encode("sea_waves"), oc.encode("sea waves"));
  EXPECT_EQ(hf.encode("sea_waves"), hf.encode("seawaves"));
  EXPECT_EQ(oc.encode("Tom &amp; Jerry"), oc.encode("tom jerry"));
  EXPECT_EQ(hf.encode("Tom &amp; Jerry"), hf.encode("tom amp jerry"));
}

TEST(SentencePieceReference, SiglipHfSpecialTokenStrings) {
  // transformers' SiglipTokenizer cuts "</s>" out before cleaning: it becomes eos (1), and no
  // second eos follows it; "<unk>" becomes unk (2).
  ZSCLIP_REQUIRE_SHARED(kUnigram);
  const Tokenizer hf =
      Tokenizer::from_sentencepiece(shared_path(kUnigram), options(TextCleaning::kSiglipHF, 1));
  const Ids a = hf.encode("a cat");
  Ids want = a;
  want.push_back(1);
  EXPECT_EQ(hf.encode("a cat </s>"), want);
  EXPECT_EQ(hf.encode_with_specials("a cat </s>"), want);  // eos not added twice
  const Ids u = hf.encode("a cat <unk>");
  EXPECT_EQ(u.back(), 2);
  // Upper case is lowered, a character at a time, before the cut: "</S>" is eos too.
  EXPECT_EQ(hf.encode("A CAT </S>"), want);
}

// ---- refusals ----

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

void expect_refused(const std::string& path, ErrorCode code, const std::string& needle,
                    TextCleaning clean = TextCleaning::kNone) {
  try {
    Tokenizer::from_sentencepiece(path, options(clean, 0));
    ADD_FAILURE() << path << ": no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(SentencePieceRefusals, OtherTokenizerJsonKinds) {
  const std::string dir = temp_dir("sp_refusals");
  const std::string wordpiece = write(dir, "wordpiece.json", R"({
    "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "a": 1}}})");
  expect_refused(wordpiece, ErrorCode::kUnsupported, "\"WordPiece\" is not supported");
  const std::string unigram = write(dir, "unigram.json", R"({
    "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
    "model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0]]}})");
  expect_refused(unigram, ErrorCode::kUnsupported, "\"Unigram\" is not supported");
  const std::string bytelevel = write(dir, "bytelevel.json", R"({
    "added_tokens": [], "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false,
              "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}})");
  expect_refused(bytelevel, ErrorCode::kUnsupported, "model.byte_fallback");
  const std::string regex = write(dir, "regex.json", R"({
    "added_tokens": [], "normalizer": null,
    "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated",
                      "invert": false},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
              "vocab": {"<unk>": 0, "a": 1}, "merges": []}})");
  expect_refused(regex, ErrorCode::kUnsupported, "pre_tokenizer.pattern");
  const std::string nfkc = write(dir, "nfkc.json", R"({
    "added_tokens": [], "normalizer": {"type": "NFKC"}, "pre_tokenizer": null,
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
              "vocab": {"<unk>": 0, "a": 1}, "merges": []}})");
  expect_refused(nfkc, ErrorCode::kUnsupported, "normalizer.type");
  expect_refused(write(dir, "broken.json", R"({"model": {"type": "BPE", )"),
                 ErrorCode::kInvalidConfig, "not valid JSON");
  const std::string bad_merge = write(dir, "bad_merge.json", R"({
    "added_tokens": [], "normalizer": null, "pre_tokenizer": null,
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
              "vocab": {"<unk>": 0, "a": 1, "b": 2}, "merges": [["a", "b"]]}})");
  expect_refused(bad_merge, ErrorCode::kInvalidConfig, "model.merges[0]");
}

TEST(SentencePieceRefusals, CorruptModel) {
  ZSCLIP_REQUIRE_SHARED(kUnigram);
  const std::string dir = temp_dir("sp_corrupt");
  const std::string good = read_file(shared_path(kUnigram));
  expect_refused(write(dir, "truncated.model", good.substr(0, good.size() / 2)),
                 ErrorCode::kInvalidConfig, "SentencePiece model");
  expect_refused(write(dir, "text.model", "this is not a protobuf\n"), ErrorCode::kInvalidConfig,
                 "SentencePiece model");
  expect_refused(write(dir, "empty.model", ""), ErrorCode::kInvalidConfig, "is empty");
  try {
    Tokenizer::from_sentencepiece(dir + "/absent.model");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
  // transformers' SiglipTokenizer reads a .model only.
  expect_refused(write(dir, "tokenizer.json", "{}"), ErrorCode::kUnsupported, "siglip_hf",
                 TextCleaning::kSiglipHF);
  // Ids outside the vocabulary (4000 pieces).
  SentencePieceOptions o = options(TextCleaning::kNone, 0);
  o.pad_id = 4000;
  EXPECT_THROW(Tokenizer::from_sentencepiece(shared_path(kUnigram), o), Error);
}

// ---- zsclip's BPE on a small tokenizer.json: merge order, byte fallback, added tokens ----

TEST(SentencePieceJson, MergeOrderByteFallbackAndAddedTokens) {
  const std::string dir = temp_dir("sp_json");
  std::string vocab = R"("<pad>": 0, "<eos>": 1, "<unk>": 2, "<mask>": 3)";
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    vocab += ", \"" + std::string(piece) + "\": " + std::to_string(4 + b);
  }
  // 260: a 261: b 262: c 263: ▁ 264: ab 265: bc 266: abc 267: ▁a 268: aa
  vocab += R"(, "a": 260, "b": 261, "c": 262, "▁": 263, "ab": 264, "bc": 265, "abc": 266,
              "▁a": 267, "aa": 268)";
  const std::string json = R"({"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 3, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": false,
       "normalized": false, "special": true}],
    "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                      "invert": false},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true,
              "byte_fallback": true, "ignore_merges": false, "vocab": {)" +
                           vocab + R"(},
              "merges": [["b", "c"], ["a", "b"], ["ab", "c"], ["▁", "a"], ["a", "a"]]}})";
  const std::string path = write(dir, "tokenizer.json", json);
  SentencePieceOptions o = options(TextCleaning::kNone, 0);
  const Tokenizer tok = Tokenizer::from_sentencepiece(path, o);
  EXPECT_EQ(tok.vocab_size(), 269);
  EXPECT_EQ(tok.num_merges(), 5);
  // "abc": b+c (rank 0) before a+b (rank 1): a, bc; ab+c never forms.
  EXPECT_EQ(tok.encode("abc"), (Ids{260, 265}));
  // "aaa": a+a at rank 4 twice possible; the leftmost goes first: aa, a.
  EXPECT_EQ(tok.encode("aaa"), (Ids{268, 260}));
  // " ab" -> "▁ab": ▁+a (rank 3) loses to a+b (rank 1): ▁, ab.
  EXPECT_EQ(tok.encode(" ab"), (Ids{263, 264}));
  // "é" is not a piece: its UTF-8 bytes C3 A9.
  EXPECT_EQ(tok.encode("\u00e9"), (Ids{4 + 0xC3, 4 + 0xA9}));
  // The added token is cut out first (not merged, not normalized); lstrip eats the spaces before.
  EXPECT_EQ(tok.encode("a  <mask>b"), (Ids{260, 3, 261}));
  EXPECT_EQ(tok.decode({267, 4 + 0xC3, 4 + 0xA9, 261}), " a\u00e9b");
  EXPECT_EQ(tok.encode_with_specials("abc"), (Ids{260, 265, 1}));
}

// ---- config.json format_version 3 -> from_config ----

TEST(SentencePieceConfig, FromConfigDispatchesOnType) {
  ZSCLIP_REQUIRE_SHARED(kUnigram);
  const std::string dir = temp_dir("sp_config");
  std::filesystem::copy_file(shared_path(kUnigram), dir + "/spiece.model");
  nlohmann::json cfg = siglip_tiny_tokenizer_config();
  write(dir, "config.json", cfg.dump());
  const ModelConfig c = ModelConfig::load(dir);
  EXPECT_EQ(c.tokenizer.type, "sentencepiece");
  EXPECT_EQ(c.tokenizer.clean, "canonicalize");
  const Tokenizer tok = Tokenizer::from_config(c);
  EXPECT_EQ(tok.type(), "sentencepiece");
  EXPECT_EQ(tok.context_length(), 64);
  EXPECT_EQ(tok.tokenize({"a photo of a cat."}).row(0)[63], 1);
  EXPECT_EQ(tok.encode_with_specials("Tom &amp; Jerry"), (Ids{13, 39, 518, 40, 585, 1}));

  auto refused = [&](nlohmann::json bad, const std::string& field) {
    try {
      ModelConfig::parse(bad.dump(), "config.json");
      ADD_FAILURE() << "no error for " << field;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig);
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  nlohmann::json bad = cfg;
  bad["tokenizer"]["num_merges"] = 100;
  refused(bad, "tokenizer.num_merges");
  bad = cfg;
  bad["tokenizer"].erase("clean");
  refused(bad, "tokenizer.clean");
  bad = cfg;
  bad["tokenizer"]["clean"] = "lower";
  refused(bad, "tokenizer.clean");
  bad = cfg;
  bad["tokenizer"]["vocab_file"] = "vocab.txt";
  refused(bad, "tokenizer.vocab_file");
  bad = cfg;
  bad["tokenizer"]["vocab_file"] = "tokenizer.json";
  bad["tokenizer"]["clean"] = "siglip_hf";
  refused(bad, "tokenizer.clean");
  bad = cfg;
  bad["tokenizer"]["pad_id"] = 4000;
  refused(bad, "tokenizer.pad_id");
  bad = cfg;
  bad["tokenizer"]["eos_id"] = -1;
  refused(bad, "tokenizer.eos_id");
  bad = cfg;
  bad["tokenizer"]["ftfy"] = true;
  bad["tokenizer"]["clean"] = "none";
  refused(bad, "tokenizer.ftfy");
  bad = cfg;
  bad["tokenizer"]["type"] = "clip_bpe";
  bad["tokenizer"]["num_merges"] = 3486;
  refused(bad, "tokenizer.clean");  // sentencepiece fields refused with clip_bpe
  // The embedding must hold every id the vocabulary can give.
  cfg["text"]["vocab_size"] = 3000;
  write(dir, "config.json", cfg.dump());
  try {
    Tokenizer::from_config(ModelConfig::load(dir));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("text.vocab_size"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace zsclip
