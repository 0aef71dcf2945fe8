// zsclip/config.h — the configuration that travels with a model's weights (config.json).
//
//   zsclip::ModelConfig cfg = zsclip::ModelConfig::load("models/shapes");   // reads config.json
//   cfg.preprocess.image_size;   // 48
//   cfg.tokenizer_path();        // "models/shapes/bpe_shapes.txt.gz"
//
// Nothing about a model is hard-coded in zsclip: image size, mean/std, resize rule, context length
// and vocabulary all come from here. Parsing is strict: a missing field, a wrong type or an
// impossible value is a zsclip::Error (kInvalidConfig) naming the file and the field.
//
// config.json, format_version 1 (written by models/export_clip.py):
//   {
//     "format_version": 1,                 // files newer than kConfigFormatVersion are refused
//     "name": "openai-tiny",               // free text
//     "fingerprint": "3f2a...",            // identity of the weights (zero-shot heads record it)
//     "architecture": "clip-vit",
//     "dtype": "float32",                  // float32 | float16: how the weights are stored
//     "quantization": "none",              // none | int8 (dynamic, linear layers)
//     "embed_dim": 64,
//     "vision": {"image_size": 224, "patch_size": 32, "width": 128, "layers": 2, "heads": 2},
//     "text":   {"context_length": 77, "vocab_size": 49408, "width": 64, "layers": 2, "heads": 1},
//     "preprocess": {"image_size": 224, "resize": "shorter_side", "interpolation": "bicubic",
//                    "crop": "center", "mean": [0.481, 0.458, 0.408], "std": [0.269, 0.261, 0.276]},
//     "tokenizer": {"type": "clip_bpe", "vocab_file": "bpe_simple_vocab_16e6.txt.gz",
//                   "num_merges": 48894},
//     "files": {"image_encoder": "image_encoder.pt", "text_encoder": "text_encoder.pt",
//               "projection": "projection.pt"}
//   }
// Unknown fields are ignored, so newer writers may add fields without a format bump.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace zsclip {

enum class Interpolation { kBicubic, kBilinear, kNearest };
enum class ResizeRule { kShorterSide, kStretch };  // shorter side to image_size / both sides
enum class CropRule { kCenter, kNone };

// Options of the image pipeline. The defaults are OpenAI CLIP's `_transform(224)`.
struct PreprocessConfig {
  int image_size = 224;                                           // output is 3 x image_size^2
  std::array<float, 3> mean = {0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std = {0.26862954f, 0.26130258f, 0.27577711f};
  Interpolation interpolation = Interpolation::kBicubic;          // Pillow-exact resampling
  ResizeRule resize = ResizeRule::kShorterSide;
  CropRule crop = CropRule::kCenter;
  bool apply_exif_orientation = false;  // false as Pillow's Image.open; true rotates by EXIF
  int64_t max_pixels = 178956970;       // refuse larger images before decoding (Pillow's limit x2)
};

struct TokenizerConfig {
  std::string type = "clip_bpe";
  std::string vocab_file;   // path relative to the model directory
  int64_t num_merges = -1;  // merges used after the header line; -1: every line in the file
};

struct TowerConfig {
  int64_t width = 0, layers = 0, heads = 0;
  int64_t image_size = 0, patch_size = 0;          // vision only
  int64_t context_length = 0, vocab_size = 0;      // text only
};

struct ModelConfig {
  int format_version = 1;
  std::string name;
  std::string fingerprint;
  std::string architecture = "clip-vit";
  std::string dtype = "float32";
  std::string quantization = "none";
  int64_t embed_dim = 0;
  TowerConfig vision, text;
  PreprocessConfig preprocess;
  TokenizerConfig tokenizer;
  std::string image_encoder_file = "image_encoder.pt";
  std::string text_encoder_file = "text_encoder.pt";
  std::string projection_file = "projection.pt";

  std::string directory;  // the model directory it was loaded from ("" when parsed from a string)

  // Reads DIR/config.json (a regular file of at most 16 MiB). Throws zsclip::Error naming the file
  // and the field; a DIR that is not a directory is kInvalidArgument.
  static ModelConfig load(const std::string& model_dir);
  // Parses config.json text; `origin` names it in error messages.
  static ModelConfig parse(const std::string& json_text, const std::string& origin = "config.json");

  std::string path_of(const std::string& file) const;  // directory + "/" + file
  std::string tokenizer_path() const { return path_of(tokenizer.vocab_file); }
};

}  // namespace zsclip
