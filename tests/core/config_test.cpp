// config.json parsing: defaults, strictness, and errors that name the field.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/version.h"

namespace zsclip {
namespace {

using json = nlohmann::json;

json valid() {
  return json::parse(R"({
    "format_version": 1, "name": "t", "fingerprint": "f", "embed_dim": 8,
    "vision": {"image_size": 32, "patch_size": 8, "width": 16, "layers": 1, "heads": 1},
    "text": {"context_length": 16, "vocab_size": 526, "width": 16, "layers": 1, "heads": 1},
    "preprocess": {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    "tokenizer": {"vocab_file": "v.txt", "num_merges": 12},
    "files": {"image_encoder": "i.pt", "text_encoder": "t.pt", "projection": "p.pt"}})");
}

void expect_field_error(const json& j, const std::string& field) {
  try {
    ModelConfig::parse(j.dump(), "dir/config.json");
    ADD_FAILURE() << "accepted " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig) << e.what();
    EXPECT_NE(std::string(e.what()).find("dir/config.json: field '" + field + "'"),
              std::string::npos)
        << e.what();
  }
}

TEST(Config, ParsesAndAppliesDefaults) {
  ModelConfig c = ModelConfig::parse(valid().dump());
  EXPECT_EQ(c.embed_dim, 8);
  EXPECT_EQ(c.vision.patch_size, 8);
  EXPECT_EQ(c.text.vocab_size, 526);
  EXPECT_EQ(c.preprocess.image_size, 32);
  EXPECT_EQ(c.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_EQ(c.preprocess.resize, ResizeRule::kShorterSide);
  EXPECT_EQ(c.preprocess.crop, CropRule::kCenter);
  EXPECT_FLOAT_EQ(c.preprocess.std[1], 0.25f);
  EXPECT_EQ(c.dtype, "float32");
  EXPECT_EQ(c.quantization, "none");
  c.directory = "m";
  EXPECT_EQ(c.tokenizer_path(), "m/v.txt");
}

TEST(Config, EachBadFieldIsNamed) {
  json j = valid();
  j.erase("embed_dim");
  expect_field_error(j, "embed_dim");
  j = valid();
  j["vision"]["width"] = "wide";
  expect_field_error(j, "vision.width");
  j = valid();
  j["vision"]["patch_size"] = 7;
  expect_field_error(j, "vision.patch_size");
  j = valid();
  j["text"]["heads"] = 3;
  expect_field_error(j, "text.heads");
  j = valid();
  j["preprocess"]["mean"] = {0.5, 0.5};
  expect_field_error(j, "preprocess.mean");
  j = valid();
  j["preprocess"]["interpolation"] = "lanczos";
  expect_field_error(j, "preprocess.interpolation");
  j = valid();
  j["preprocess"]["image_size"] = 64;
  expect_field_error(j, "preprocess.image_size");
  j = valid();
  j["tokenizer"]["num_merges"] = 13;
  expect_field_error(j, "tokenizer.num_merges");
  j = valid();
  j["tokenizer"]["vocab_file"] = "../../etc/passwd";
  expect_field_error(j, "tokenizer.vocab_file");
  j = valid();
  j["files"]["projection"] = "/abs/p.pt";
  expect_field_error(j, "files.projection");
  j = valid();
  j["dtype"] = "bfloat16";
  expect_field_error(j, "dtype");
  j = valid();
  j["embed_dim"] = -4;
  expect_field_error(j, "embed_dim");
}

TEST(Config, NotJsonOrNotAnObject) {
  // The last one overflows a double: nlohmann throws out_of_range, not parse_error (found by
  // tests/fuzz/config_fuzz.cpp).
  for (const char* text :
       {"", "{", "[1, 2]", "null", "{\"format_version\": 1", "{\"embed_dim\": 4E6660}"}) {
    try {
      ModelConfig::parse(text, "x/config.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidConfig);
      EXPECT_EQ(std::string(e.what()).rfind("x/config.json: ", 0), 0u) << e.what();
    }
  }
}

TEST(Config, LoadNamesTheMissingDirectoryOrFile) {
  try {
    ModelConfig::load("/nonexistent/zsclip-model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/zsclip-model"), std::string::npos);
  }
}

}  // namespace
}  // namespace zsclip

namespace zsclip {
namespace {

// format_version 2: open_clip / HF checkpoints.
nlohmann::json valid_v2() {
  nlohmann::json j = nlohmann::json::parse(R"({
    "format_version": 2, "name": "t", "fingerprint": "f", "embed_dim": 8, "activation": "gelu",
    "source_layout": "open_clip",
    "vision": {"image_size": 32, "patch_size": 8, "width": 16, "layers": 1, "heads": 1, "pool": "avg"},
    "text": {"context_length": 16, "vocab_size": 526, "width": 16, "layers": 1, "heads": 1,
             "causal_mask": false, "pool": "eos", "eos_id": 525},
    "preprocess": {"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
                   "resize": "longer_side", "crop": "center", "fill": 7, "interpolation": "bilinear"},
    "tokenizer": {"format": "hf", "vocab_file": "vocab.json", "merges_file": "merges.txt", "num_merges": 12,
                  "sot_token": "<start_of_text>", "eot_token": "<end_of_text>", "context_length": 16,
                  "truncate_end": "eot"},
    "scoring": "sigmoid", "logit_bias": -10.0,
    "files": {"image_encoder": "i.pt", "text_encoder": "t.pt", "projection": "p.pt"}})");
  return j;
}

TEST(ConfigV2, ParsesEveryNewField) {
  ModelConfig c = ModelConfig::parse(valid_v2().dump());
  EXPECT_EQ(c.format_version, 2);
  EXPECT_EQ(c.activation, "gelu");
  EXPECT_EQ(c.source_layout, "open_clip");
  EXPECT_FALSE(c.text.causal_mask);
  EXPECT_EQ(c.text.pool, TextPool::kEos);
  EXPECT_EQ(c.text.eos_id, 525);
  EXPECT_EQ(c.preprocess.resize, ResizeRule::kLongerSide);
  EXPECT_EQ(c.preprocess.fill, 7);
  EXPECT_EQ(c.preprocess.interpolation, Interpolation::kBilinear);
  EXPECT_EQ(c.tokenizer.format, TokenizerFormat::kHF);
  EXPECT_EQ(c.tokenizer.merges_file, "merges.txt");
  EXPECT_EQ(c.tokenizer.sot_token, "<start_of_text>");
  EXPECT_EQ(c.tokenizer.eot_token, "<end_of_text>");
  EXPECT_EQ(c.scoring, Scoring::kSigmoid);
  EXPECT_EQ(c.logit_bias, -10.0f);
  EXPECT_STREQ(scoring_name(c.scoring), "sigmoid");
}

TEST(ConfigV2, VersionOneKeepsTodaysMeaning) {
  ModelConfig c = ModelConfig::parse(valid().dump());
  EXPECT_TRUE(c.text.causal_mask);
  EXPECT_EQ(c.text.pool, TextPool::kArgmax);
  EXPECT_EQ(c.scoring, Scoring::kSoftmax);
  EXPECT_EQ(c.tokenizer.format, TokenizerFormat::kOpenAI);
  EXPECT_EQ(c.tokenizer.eot_token, "<|endoftext|>");
  EXPECT_EQ(c.activation, "quick_gelu");
  EXPECT_EQ(c.preprocess.fill, 0);
}

TEST(ConfigV2, NewerVersionIsRefused) {
  nlohmann::json j = valid_v2();
  j["format_version"] = kConfigFormatVersion + 1;
  try {
    ModelConfig::parse(j.dump(), "dir/config.json");
    ADD_FAILURE() << "format_version " << kConfigFormatVersion + 1 << " accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
  }
}

// Integers are checked as 64-bit values before they are narrowed: 2^32 + 1 must not read as 1, nor
// 2^64 - 1 as -1.
TEST(Config, IntegersAreCheckedBeforeNarrowing) {
  nlohmann::json j = valid();
  j["format_version"] = (int64_t{1} << 32) + 1;
  try {
    ModelConfig::parse(j.dump(), "dir/config.json");
    ADD_FAILURE() << "format_version 2^32 + 1 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("4294967297"), std::string::npos) << e.what();
  }
  j = valid();
  j["preprocess"]["image_size"] = (int64_t{1} << 32) + 32;
  j["vision"]["image_size"] = (int64_t{1} << 32) + 32;
  expect_field_error(j, "preprocess.image_size");
  j = valid();
  j["embed_dim"] = ~uint64_t{0};
  expect_field_error(j, "embed_dim");
  j = valid();
  j["format_version"] = 1.5;
  expect_field_error(j, "format_version");
}

TEST(ConfigV2, EachBadFieldIsNamed) {
  nlohmann::json j = valid_v2();
  j["scoring"] = "tanh";
  expect_field_error(j, "scoring");
  j = valid_v2();
  j.erase("logit_bias");
  expect_field_error(j, "logit_bias");
  j = valid_v2();
  j["scoring"] = "softmax";  // a bias without sigmoid scoring would be silently unused
  expect_field_error(j, "logit_bias");
  j = valid_v2();
  j["text"]["pool"] = "mean";
  expect_field_error(j, "text.pool");
  j = valid_v2();
  j["text"]["eos_id"] = 526;
  expect_field_error(j, "text.eos_id");
  j = valid_v2();
  j["text"]["causal_mask"] = "no";
  expect_field_error(j, "text.causal_mask");
  j = valid_v2();
  j["preprocess"]["resize"] = "longest";
  expect_field_error(j, "preprocess.resize");
  j = valid_v2();
  j["preprocess"]["crop"] = "none";  // only squash may skip the crop
  expect_field_error(j, "preprocess.crop");
  j = valid_v2();
  j["preprocess"]["fill"] = 256;
  expect_field_error(j, "preprocess.fill");
  j = valid_v2();
  j["tokenizer"]["format"] = "sentencepiece";
  expect_field_error(j, "tokenizer.format");
  j = valid_v2();
  j["tokenizer"].erase("merges_file");
  expect_field_error(j, "tokenizer.merges_file");
  j = valid_v2();
  j["tokenizer"]["eot_token"] = "end";
  expect_field_error(j, "tokenizer.eot_token");
  j = valid_v2();
  j["tokenizer"]["context_length"] = 77;
  expect_field_error(j, "tokenizer.context_length");
  j = valid_v2();
  j["tokenizer"]["truncate_end"] = "cut";
  expect_field_error(j, "tokenizer.truncate_end");
  j = valid_v2();
  j["activation"] = "relu";
  expect_field_error(j, "activation");
  j = valid_v2();
  j["file_checks"] = {{"i.pt", {{"bytes", 10}, {"xxh3_64", "XYZ"}}}};
  expect_field_error(j, "file_checks.i.pt.xxh3_64");
  j = valid_v2();
  j["file_checks"] = {{"../i.pt", {{"bytes", 10}, {"xxh3_64", "0123456789abcdef"}}}};
  expect_field_error(j, "file_checks.../i.pt");
  j = valid_v2();
  j["file_checks"] = {{"i.pt", {{"bytes", -1}, {"xxh3_64", "0123456789abcdef"}}}};
  expect_field_error(j, "file_checks.i.pt.bytes");
  j = valid_v2();
  j["file_checks"] = {{"i.pt", {{"bytes", 10}, {"xxh3_64", "0123456789abcdef"}}}};
  EXPECT_EQ(ModelConfig::parse(j.dump()).file_checks.at("i.pt").xxh3_64, 0x0123456789abcdefULL);
}

}  // namespace
}  // namespace zsclip
