#include "zsclip/config.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/version.h"

namespace zsclip {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;  // a config.json is a few kB

[[noreturn]] void fail(const std::string& origin, const std::string& field,
                       const std::string& what) {
  throw Error(ErrorCode::kInvalidConfig, origin + ": field '" + field + "' " + what);
}

const json& member(const json& obj, const std::string& origin, const std::string& path,
                   const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(origin, path + key, "is missing");
  return *it;
}

std::string type_name(const json& v) { return v.type_name(); }

int64_t get_int(const json& obj, const std::string& origin, const std::string& path,
                const char* key, int64_t min_value) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_number_integer())
    fail(origin, path + key, "must be an integer, got " + type_name(v) + " " + v.dump());
  // An unsigned JSON integer above INT64_MAX would wrap to a negative int64_t.
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    fail(origin, path + key, "is out of range, got " + v.dump());
  int64_t x = v.get<int64_t>();
  if (x < min_value)
    fail(origin, path + key,
         "must be >= " + std::to_string(min_value) + ", got " + std::to_string(x));
  return x;
}

std::string get_string(const json& obj, const std::string& origin, const std::string& path,
                       const char* key) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_string())
    fail(origin, path + key, "must be a string, got " + type_name(v) + " " + v.dump());
  return v.get<std::string>();
}

std::string get_string_or(const json& obj, const std::string& origin, const std::string& path,
                          const char* key, const std::string& fallback) {
  if (!obj.contains(key)) return fallback;
  return get_string(obj, origin, path, key);
}

const json& get_object(const json& obj, const std::string& origin, const std::string& path,
                       const char* key) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_object()) fail(origin, path + key, "must be an object, got " + type_name(v));
  return v;
}

std::array<float, 3> get_triple(const json& obj, const std::string& origin, const std::string& path,
                                const char* key, bool positive) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_array() || v.size() != 3)
    fail(origin, path + key, "must be an array of 3 numbers, got " + v.dump());
  std::array<float, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!v[i].is_number()) fail(origin, path + key, "must hold numbers, got " + v.dump());
    double x = v[i].get<double>();
    if (!std::isfinite(x) || (positive && x <= 0))
      fail(origin, path + key,
           std::string("must hold finite") + (positive ? " positive" : "") + " numbers, got " +
               v.dump());
    out[i] = static_cast<float>(x);
  }
  return out;
}

bool get_bool_or(const json& obj, const std::string& origin, const std::string& path,
                 const char* key, bool fallback) {
  if (!obj.contains(key)) return fallback;
  const json& v = obj.at(key);
  if (!v.is_boolean()) fail(origin, path + key, "must be true or false, got " + v.dump());
  return v.get<bool>();
}

double get_number(const json& obj, const std::string& origin, const std::string& path,
                  const char* key) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_number())
    fail(origin, path + key, "must be a number, got " + type_name(v) + " " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x)) fail(origin, path + key, "must be finite, got " + v.dump());
  return x;
}

template <typename E>
E get_enum(const json& obj, const std::string& origin, const std::string& path, const char* key,
           std::initializer_list<std::pair<const char*, E>> names, E fallback) {
  if (!obj.contains(key)) return fallback;
  std::string s = get_string(obj, origin, path, key);
  std::string allowed;
  for (const auto& [name, value] : names) {
    if (s == name) return value;
    allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  }
  fail(origin, path + key, "has unknown value \"" + s + "\" (expected one of: " + allowed + ")");
}

void check_choice(const std::string& origin, const std::string& field, const std::string& value,
                  std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  fail(origin, field, "has unknown value \"" + value + "\" (expected one of: " + list + ")");
}

void check_file_name(const std::string& origin, const std::string& field, const std::string& name) {
  if (name.empty()) fail(origin, field, "is empty");
  if (std::filesystem::path(name).is_absolute() || name.find("..") != std::string::npos)
    fail(origin, field, "must be a file name inside the model directory, got \"" + name + "\"");
}

// tokenizer.type "clip_bpe": OpenAI's merges file or HF's vocab.json + merges.txt.
void parse_clip_tokenizer(const json& tok, const std::string& origin, ModelConfig& c) {
  c.tokenizer.format = get_enum<TokenizerFormat>(
      tok, origin, "tokenizer.", "format",
      {{"openai", TokenizerFormat::kOpenAI}, {"hf", TokenizerFormat::kHF}},
      TokenizerFormat::kOpenAI);
  if (c.tokenizer.format == TokenizerFormat::kHF) {
    c.tokenizer.merges_file = get_string(tok, origin, "tokenizer.", "merges_file");
    check_file_name(origin, "tokenizer.merges_file", c.tokenizer.merges_file);
  } else if (tok.contains("merges_file")) {
    fail(origin, "tokenizer.merges_file", "is only used with tokenizer.format \"hf\"");
  }
  for (const char* key : {"clean", "ftfy", "pad_id", "eos_id", "bos_id", "add_eos"})
    if (tok.contains(key))
      fail(origin, std::string("tokenizer.") + key,
           "is only used with tokenizer.type \"sentencepiece\"");
  c.tokenizer.sot_token =
      get_string_or(tok, origin, "tokenizer.", "sot_token", c.tokenizer.sot_token);
  c.tokenizer.eot_token =
      get_string_or(tok, origin, "tokenizer.", "eot_token", c.tokenizer.eot_token);
  for (const auto* special : {&c.tokenizer.sot_token, &c.tokenizer.eot_token})
    if (special->size() < 2 || special->size() > 64 || (*special)[0] != '<' ||
        special->back() != '>' || special->find_first_of(" \t\r\n") != std::string::npos)
      fail(origin,
           special == &c.tokenizer.sot_token ? "tokenizer.sot_token" : "tokenizer.eot_token",
           "must look like <...> without spaces (2-64 bytes), got \"" + *special + "\"");
  if (c.tokenizer.sot_token == c.tokenizer.eot_token)
    fail(origin, "tokenizer.eot_token", "must differ from tokenizer.sot_token");
  if (get_string_or(tok, origin, "tokenizer.", "truncate_end", "eot") != "eot")
    fail(origin, "tokenizer.truncate_end",
         "has unknown value \"" + tok.at("truncate_end").get<std::string>() +
             "\" (expected: eot, the last kept id replaced by the end token)");
  c.tokenizer.num_merges = get_int(tok, origin, "tokenizer.", "num_merges", 1);
  if (c.tokenizer.num_merges + 514 != c.text.vocab_size)
    fail(origin, "tokenizer.num_merges",
         "(" + std::to_string(c.tokenizer.num_merges) + ") disagrees with text.vocab_size (" +
             std::to_string(c.text.vocab_size) +
             " = 512 byte symbols + merges + 2 special tokens)");
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// tokenizer.type "sentencepiece" (format_version 3): see the table in zsclip/config.h.
void parse_sentencepiece_tokenizer(const json& tok, const std::string& origin, ModelConfig& c) {
  TokenizerConfig& t = c.tokenizer;
  for (const char* key :
       {"format", "merges_file", "num_merges", "sot_token", "eot_token", "truncate_end"})
    if (tok.contains(key))
      fail(origin, std::string("tokenizer.") + key,
           "is only used with tokenizer.type \"clip_bpe\", not \"sentencepiece\"");
  const bool is_json = ends_with(t.vocab_file, ".json");
  if (!is_json && !ends_with(t.vocab_file, ".model"))
    fail(origin, "tokenizer.vocab_file",
         "must name a SentencePiece .model or a HuggingFace tokenizer.json, got \"" + t.vocab_file +
             "\"");
  t.clean = get_string(tok, origin, "tokenizer.", "clean");
  check_choice(origin, "tokenizer.clean", t.clean, {"canonicalize", "siglip_hf", "none"});
  if (t.clean == "siglip_hf" && is_json)
    fail(origin, "tokenizer.clean",
         "\"siglip_hf\" (transformers' SiglipTokenizer) needs a SentencePiece .model, not \"" +
             t.vocab_file + "\"");
  t.ftfy = get_bool_or(tok, origin, "tokenizer.", "ftfy", false);
  if (t.ftfy && t.clean != "canonicalize")
    fail(origin, "tokenizer.ftfy", "is only used with tokenizer.clean \"canonicalize\"");
  t.pad_id = get_int(tok, origin, "tokenizer.", "pad_id", 0);
  t.eos_id = get_int(tok, origin, "tokenizer.", "eos_id", -1);
  t.bos_id = tok.contains("bos_id") ? get_int(tok, origin, "tokenizer.", "bos_id", -1) : -1;
  const json& add_eos = member(tok, origin, "tokenizer.", "add_eos");
  if (!add_eos.is_boolean())
    fail(origin, "tokenizer.add_eos", "must be true or false, got " + add_eos.dump());
  t.add_eos = add_eos.get<bool>();
  if (t.add_eos && t.eos_id < 0)
    fail(origin, "tokenizer.eos_id", "must name a token (>= 0) when tokenizer.add_eos is true");
  if (t.clean == "siglip_hf" && (!t.add_eos || t.bos_id >= 0))
    fail(origin, "tokenizer.clean",
         "\"siglip_hf\" appends eos and no bos (add_eos true, bos_id -1), as SiglipTokenizer");
  const int64_t specials = (t.bos_id >= 0 ? 1 : 0) + (t.add_eos ? 1 : 0);
  if (c.text.context_length <= specials)
    fail(origin, "text.context_length",
         "(" + std::to_string(c.text.context_length) + ") leaves no room for a token besides " +
             std::to_string(specials) + " special token(s)");
  for (const auto& [key, id] : {std::pair<const char*, int64_t>{"pad_id", t.pad_id},
                                {"eos_id", t.eos_id},
                                {"bos_id", t.bos_id}})
    if (id >= c.text.vocab_size)
      fail(origin, std::string("tokenizer.") + key,
           "(" + std::to_string(id) + ") is outside text.vocab_size (" +
               std::to_string(c.text.vocab_size) + ")");
}

}  // namespace

ModelConfig ModelConfig::parse(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for number overflow
    throw Error(ErrorCode::kInvalidConfig, origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object())
    throw Error(ErrorCode::kInvalidConfig, origin + ": top level must be a JSON object");

  ModelConfig c;
  // Compared before it is narrowed to int (2^32 + 1 must not read as 1).
  const int64_t format_version = get_int(j, origin, "", "format_version", 1);
  if (format_version > kConfigFormatVersion)
    throw Error(ErrorCode::kUnsupported,
                origin + ": format_version " + std::to_string(format_version) +
                    " is newer than this zsclip (" + version() + ") reads (up to " +
                    std::to_string(kConfigFormatVersion) + "); upgrade zsclip");
  c.format_version = static_cast<int>(format_version);
  c.name = get_string_or(j, origin, "", "name", "");
  c.fingerprint = get_string_or(j, origin, "", "fingerprint", "");
  c.architecture = get_string_or(j, origin, "", "architecture", "clip-vit");
  // siglip-vit: timm's ViT with the attention-pooling (MAP) head as SigLIP uses it; its image
  // features are the pooled output (projection.pt holds the identity), so nothing differs here
  // but the patch grid below.
  check_choice(origin, "architecture", c.architecture, {"clip-vit", "siglip-vit"});
  c.dtype = get_string_or(j, origin, "", "dtype", "float32");
  check_choice(origin, "dtype", c.dtype, {"float32", "float16"});
  c.quantization = get_string_or(j, origin, "", "quantization", "none");
  check_choice(origin, "quantization", c.quantization, {"none", "int8"});
  c.embed_dim = get_int(j, origin, "", "embed_dim", 1);

  const json& v = get_object(j, origin, "", "vision");
  c.vision.image_size = get_int(v, origin, "vision.", "image_size", 1);
  c.vision.patch_size = get_int(v, origin, "vision.", "patch_size", 1);
  c.vision.width = get_int(v, origin, "vision.", "width", 1);
  c.vision.layers = get_int(v, origin, "vision.", "layers", 1);
  c.vision.heads = get_int(v, origin, "vision.", "heads", 1);
  // siglip-vit reads the top-left (image_size / patch_size)^2 patches, as timm's PatchEmbed does
  // (SigLIP So400m/14 at 384 px: 27 x 27 patches, the last 6 rows and columns unread).
  if (c.architecture == "siglip-vit" ? c.vision.patch_size > c.vision.image_size
                                     : c.vision.image_size % c.vision.patch_size != 0)
    fail(origin, "vision.patch_size",
         std::string(c.architecture == "siglip-vit" ? "must not exceed" : "must divide") +
             " vision.image_size (" + std::to_string(c.vision.image_size) + "), got " +
             std::to_string(c.vision.patch_size));
  if (c.vision.width % c.vision.heads != 0)
    fail(origin, "vision.heads", "must divide vision.width");

  const json& t = get_object(j, origin, "", "text");
  c.text.context_length = get_int(t, origin, "text.", "context_length", 2);
  c.text.vocab_size = get_int(t, origin, "text.", "vocab_size", 515);
  c.text.width = get_int(t, origin, "text.", "width", 1);
  c.text.layers = get_int(t, origin, "text.", "layers", 1);
  c.text.heads = get_int(t, origin, "text.", "heads", 1);
  if (c.text.width % c.text.heads != 0) fail(origin, "text.heads", "must divide text.width");
  c.text.causal_mask = get_bool_or(t, origin, "text.", "causal_mask", true);
  c.text.pool = get_enum<TextPool>(t, origin, "text.", "pool",
                                   {{"argmax", TextPool::kArgmax},
                                    {"first", TextPool::kFirst},
                                    {"last", TextPool::kLast},
                                    {"eos", TextPool::kEos}},
                                   TextPool::kArgmax);
  if (c.text.pool == TextPool::kEos) {
    c.text.eos_id = get_int(t, origin, "text.", "eos_id", 0);
    if (c.text.eos_id >= c.text.vocab_size)
      fail(origin, "text.eos_id",
           "(" + std::to_string(c.text.eos_id) + ") is outside the vocabulary (" +
               std::to_string(c.text.vocab_size) + ")");
  }

  const json& p = get_object(j, origin, "", "preprocess");
  const int64_t preprocess_size = get_int(p, origin, "preprocess.", "image_size", 1);
  if (preprocess_size > 8192)  // checked before it is narrowed to int
    fail(origin, "preprocess.image_size",
         "is implausibly large: " + std::to_string(preprocess_size));
  c.preprocess.image_size = static_cast<int>(preprocess_size);
  c.preprocess.mean = get_triple(p, origin, "preprocess.", "mean", false);
  c.preprocess.std = get_triple(p, origin, "preprocess.", "std", true);
  c.preprocess.interpolation = get_enum<Interpolation>(p, origin, "preprocess.", "interpolation",
                                                       {{"bicubic", Interpolation::kBicubic},
                                                        {"bilinear", Interpolation::kBilinear},
                                                        {"nearest", Interpolation::kNearest}},
                                                       Interpolation::kBicubic);
  c.preprocess.resize = get_enum<ResizeRule>(p, origin, "preprocess.", "resize",
                                             {{"shorter_side", ResizeRule::kShorterSide},
                                              {"stretch", ResizeRule::kStretch},
                                              {"longer_side", ResizeRule::kLongerSide}},
                                             ResizeRule::kShorterSide);
  c.preprocess.crop = get_enum<CropRule>(p, origin, "preprocess.", "crop",
                                         {{"center", CropRule::kCenter}, {"none", CropRule::kNone}},
                                         CropRule::kCenter);
  if (c.preprocess.crop == CropRule::kNone && c.preprocess.resize != ResizeRule::kStretch)
    fail(origin, "preprocess.crop", "'none' needs resize 'stretch' (the output must be square)");
  if (p.contains("fill")) {
    const int64_t fill = get_int(p, origin, "preprocess.", "fill", 0);
    if (fill > 255)
      fail(origin, "preprocess.fill", "must be in 0..255, got " + std::to_string(fill));
    c.preprocess.fill = static_cast<int>(fill);
  }
  if (c.preprocess.image_size != c.vision.image_size)
    fail(origin, "preprocess.image_size",
         "(" + std::to_string(c.preprocess.image_size) + ") disagrees with vision.image_size (" +
             std::to_string(c.vision.image_size) + ")");

  const json& tok = get_object(j, origin, "", "tokenizer");
  c.tokenizer.type = get_string_or(tok, origin, "tokenizer.", "type", "clip_bpe");
  check_choice(origin, "tokenizer.type", c.tokenizer.type, {"clip_bpe", "sentencepiece"});
  c.tokenizer.vocab_file = get_string(tok, origin, "tokenizer.", "vocab_file");
  check_file_name(origin, "tokenizer.vocab_file", c.tokenizer.vocab_file);
  if (tok.contains("context_length") &&
      get_int(tok, origin, "tokenizer.", "context_length", 2) != c.text.context_length)
    fail(origin, "tokenizer.context_length",
         "disagrees with text.context_length (" + std::to_string(c.text.context_length) + ")");
  if (c.tokenizer.type == "sentencepiece")
    parse_sentencepiece_tokenizer(tok, origin, c);
  else
    parse_clip_tokenizer(tok, origin, c);

  c.activation = get_string_or(j, origin, "", "activation", "quick_gelu");
  check_choice(origin, "activation", c.activation, {"quick_gelu", "gelu", "gelu_tanh"});
  c.source_layout = get_string_or(j, origin, "", "source_layout", "");
  c.scoring = get_enum<Scoring>(j, origin, "", "scoring",
                                {{"softmax", Scoring::kSoftmax}, {"sigmoid", Scoring::kSigmoid}},
                                Scoring::kSoftmax);
  if (c.scoring == Scoring::kSigmoid) {
    c.logit_bias = static_cast<float>(get_number(j, origin, "", "logit_bias"));
  } else if (j.contains("logit_bias")) {
    fail(origin, "logit_bias", "is only used with scoring \"sigmoid\"");
  }

  if (j.contains("file_checks")) {
    const json& fc = get_object(j, origin, "", "file_checks");
    for (const auto& [name, entry] : fc.items()) {
      const std::string path = "file_checks." + name;
      check_file_name(origin, path, name);
      if (!entry.is_object()) fail(origin, path, "must be an object {\"bytes\", \"xxh3_64\"}");
      FileCheck check;
      check.bytes = get_int(entry, origin, path + ".", "bytes", 0);
      const std::string hex = get_string(entry, origin, path + ".", "xxh3_64");
      if (hex.size() != 16 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
        fail(origin, path + ".xxh3_64", "must be 16 lower-case hex digits, got \"" + hex + "\"");
      check.xxh3_64 = std::stoull(hex, nullptr, 16);
      c.file_checks[name] = check;
    }
  }

  const json& f = get_object(j, origin, "", "files");
  c.image_encoder_file = get_string(f, origin, "files.", "image_encoder");
  c.text_encoder_file = get_string_or(f, origin, "files.", "text_encoder", "");
  c.projection_file = get_string(f, origin, "files.", "projection");
  check_file_name(origin, "files.image_encoder", c.image_encoder_file);
  check_file_name(origin, "files.projection", c.projection_file);
  if (!c.text_encoder_file.empty())
    check_file_name(origin, "files.text_encoder", c.text_encoder_file);
  return c;
}

ModelConfig ModelConfig::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(model_dir, ec))
    throw Error(ErrorCode::kNotFound, "model directory " + model_dir + " does not exist");
  if (!fs::is_directory(model_dir, ec))
    throw Error(ErrorCode::kInvalidArgument, "model path " + model_dir + " is not a directory");
  std::string path = (fs::path(model_dir) / "config.json").string();
  if (!fs::exists(path, ec))
    throw Error(ErrorCode::kNotFound,
                path + ": missing (every model directory needs a config.json)");
  ModelConfig c =
      parse(io::read_file(path, "config file", {kMaxConfigBytes, ErrorCode::kInvalidConfig}), path);
  c.directory = model_dir;
  return c;
}

const char* scoring_name(Scoring s) { return s == Scoring::kSigmoid ? "sigmoid" : "softmax"; }

std::string ModelConfig::path_of(const std::string& file) const {
  if (directory.empty()) return file;
  return (std::filesystem::path(directory) / file).string();
}

}  // namespace zsclip
