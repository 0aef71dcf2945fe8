#include "zsclip/config.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/io.h"
#include "zsclip/error.h"
#include "zsclip/version.h"

namespace zsclip {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxConfigBytes = uint64_t{16} << 20;  // a config.json is a few kB

[[noreturn]] void fail(const std::string& origin, const std::string& field, const std::string& what) {
  throw Error(ErrorCode::kInvalidConfig, origin + ": field '" + field + "' " + what);
}

const json& member(const json& obj, const std::string& origin, const std::string& path,
                   const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) fail(origin, path + key, "is missing");
  return *it;
}

std::string type_name(const json& v) { return v.type_name(); }

int64_t get_int(const json& obj, const std::string& origin, const std::string& path, const char* key,
                int64_t min_value) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_number_integer())
    fail(origin, path + key, "must be an integer, got " + type_name(v) + " " + v.dump());
  int64_t x = v.get<int64_t>();
  if (x < min_value)
    fail(origin, path + key, "must be >= " + std::to_string(min_value) + ", got " + std::to_string(x));
  return x;
}

std::string get_string(const json& obj, const std::string& origin, const std::string& path,
                       const char* key) {
  const json& v = member(obj, origin, path, key);
  if (!v.is_string()) fail(origin, path + key, "must be a string, got " + type_name(v) + " " + v.dump());
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
      fail(origin, path + key, std::string("must hold finite") + (positive ? " positive" : "") +
                                   " numbers, got " + v.dump());
    out[i] = static_cast<float>(x);
  }
  return out;
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

}  // namespace

ModelConfig ModelConfig::parse(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for number overflow
    throw Error(ErrorCode::kInvalidConfig, origin + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(ErrorCode::kInvalidConfig, origin + ": top level must be a JSON object");

  ModelConfig c;
  c.format_version = static_cast<int>(get_int(j, origin, "", "format_version", 1));
  if (c.format_version > kConfigFormatVersion)
    throw Error(ErrorCode::kUnsupported,
                origin + ": format_version " + std::to_string(c.format_version) +
                    " is newer than this zsclip (" + version() + ") reads (up to " +
                    std::to_string(kConfigFormatVersion) + "); upgrade zsclip");
  c.name = get_string_or(j, origin, "", "name", "");
  c.fingerprint = get_string_or(j, origin, "", "fingerprint", "");
  c.architecture = get_string_or(j, origin, "", "architecture", "clip-vit");
  check_choice(origin, "architecture", c.architecture, {"clip-vit"});
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
  if (c.vision.image_size % c.vision.patch_size != 0)
    fail(origin, "vision.patch_size", "must divide vision.image_size (" +
                                          std::to_string(c.vision.image_size) + "), got " +
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

  const json& p = get_object(j, origin, "", "preprocess");
  c.preprocess.image_size = static_cast<int>(get_int(p, origin, "preprocess.", "image_size", 1));
  if (c.preprocess.image_size > 8192)
    fail(origin, "preprocess.image_size", "is implausibly large: " + std::to_string(c.preprocess.image_size));
  c.preprocess.mean = get_triple(p, origin, "preprocess.", "mean", false);
  c.preprocess.std = get_triple(p, origin, "preprocess.", "std", true);
  c.preprocess.interpolation = get_enum<Interpolation>(
      p, origin, "preprocess.", "interpolation",
      {{"bicubic", Interpolation::kBicubic}, {"bilinear", Interpolation::kBilinear},
       {"nearest", Interpolation::kNearest}},
      Interpolation::kBicubic);
  c.preprocess.resize = get_enum<ResizeRule>(
      p, origin, "preprocess.", "resize",
      {{"shorter_side", ResizeRule::kShorterSide}, {"stretch", ResizeRule::kStretch}},
      ResizeRule::kShorterSide);
  c.preprocess.crop = get_enum<CropRule>(p, origin, "preprocess.", "crop",
                                         {{"center", CropRule::kCenter}, {"none", CropRule::kNone}},
                                         CropRule::kCenter);
  if (c.preprocess.image_size != c.vision.image_size)
    fail(origin, "preprocess.image_size",
         "(" + std::to_string(c.preprocess.image_size) + ") disagrees with vision.image_size (" +
             std::to_string(c.vision.image_size) + ")");

  const json& tok = get_object(j, origin, "", "tokenizer");
  c.tokenizer.type = get_string_or(tok, origin, "tokenizer.", "type", "clip_bpe");
  check_choice(origin, "tokenizer.type", c.tokenizer.type, {"clip_bpe"});
  c.tokenizer.vocab_file = get_string(tok, origin, "tokenizer.", "vocab_file");
  check_file_name(origin, "tokenizer.vocab_file", c.tokenizer.vocab_file);
  c.tokenizer.num_merges = get_int(tok, origin, "tokenizer.", "num_merges", 1);
  if (c.tokenizer.num_merges + 514 != c.text.vocab_size)
    fail(origin, "tokenizer.num_merges",
         "(" + std::to_string(c.tokenizer.num_merges) + ") disagrees with text.vocab_size (" +
             std::to_string(c.text.vocab_size) + " = 512 byte symbols + merges + 2 special tokens)");

  const json& f = get_object(j, origin, "", "files");
  c.image_encoder_file = get_string(f, origin, "files.", "image_encoder");
  c.text_encoder_file = get_string_or(f, origin, "files.", "text_encoder", "");
  c.projection_file = get_string(f, origin, "files.", "projection");
  check_file_name(origin, "files.image_encoder", c.image_encoder_file);
  check_file_name(origin, "files.projection", c.projection_file);
  if (!c.text_encoder_file.empty()) check_file_name(origin, "files.text_encoder", c.text_encoder_file);
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
    throw Error(ErrorCode::kNotFound, path + ": missing (every model directory needs a config.json)");
  ModelConfig c =
      parse(io::read_file(path, "config file", {kMaxConfigBytes, ErrorCode::kInvalidConfig}), path);
  c.directory = model_dir;
  return c;
}

std::string ModelConfig::path_of(const std::string& file) const {
  if (directory.empty()) return file;
  return (std::filesystem::path(directory) / file).string();
}

}  // namespace zsclip
