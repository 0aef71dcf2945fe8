// zsclip/config.h — the configuration that travels with a model's weights (config.json).
//
//   zsclip::ModelConfig cfg = zsclip::ModelConfig::load("models/shapes");  // reads config.json
//   int size = cfg.preprocess.image_size;                                  // 48
//   std::string vocab = cfg.tokenizer_path();  // "models/shapes/bpe_shapes.txt.gz"
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
//                    "crop": "center", "mean": [0.481, 0.458, 0.408],
//                    "std": [0.269, 0.261, 0.276]},
//     "tokenizer": {"type": "clip_bpe", "vocab_file": "bpe_simple_vocab_16e6.txt.gz",
//                   "num_merges": 48894},
//     "files": {"image_encoder": "image_encoder.pt", "text_encoder": "text_encoder.pt",
//               "projection": "projection.pt"}
//   }
// format_version 2 (open_clip and HuggingFace checkpoints) adds, each optional with the v1 meaning
// as its default:
//     "activation": "quick_gelu" | "gelu",              // informational (inside the TorchScript)
//     "source_layout": "openai_torchscript" | "openai_state_dict" | "open_clip" | "hf_clip",
//     "vision": {..., "pool": "tok" | "avg", "ln_pre": true, ...},
//     "text": {..., "causal_mask": true, "pool": "argmax" | "first" | "last" | "eos", "eos_id": N,
//              "proj_bias": false, ...},
//     "preprocess": {..., "resize": "shorter_side" | "stretch" | "longer_side", "crop": "center" |
//                    "none", "fill": 0},                // longer_side + center pads with `fill`
//     "tokenizer": {..., "format": "openai" | "hf", "merges_file": "merges.txt" (hf: vocab_file is
//                   vocab.json), "sot_token": "<|startoftext|>", "eot_token": "<|endoftext|>",
//                   "context_length": 77, "truncate_end": "eot"},
//     "scoring": "softmax" | "sigmoid", "logit_bias": -10.0   // sigmoid: models with a logit_bias
//     "file_checks": {"image_encoder.pt": {"bytes": 6310912, "xxh3_64": "0123456789abcdef"}, ...}
// format_version 3 (SigLIP / SigLIP2) adds SentencePiece tokenizers; v1/v2 files load unchanged:
//     "activation": ... | "gelu_tanh",                  // informational, as above
//     "tokenizer": {
//       "type": "sentencepiece",
//       "vocab_file": "spiece.model" | "tokenizer.model" | "tokenizer.json",
//           // a file in the model directory. *.model: a SentencePiece ModelProto, run by the
//           // SentencePiece library itself (libsentencepiece; unigram or BPE, its own normalizer).
//           // *.json: a HuggingFace tokenizer.json of the Gemma kind only (model BPE with
//           // byte_fallback, normalizer Replace(" " -> "▁"), pre-tokenizer none or Split on
//           // " "), run by zsclip's own BPE with HF tokenizers' semantics; any other kind
//           // (WordPiece, Unigram, byte-level BPE, ...) is refused naming the field.
//           // An exporter copies the .model when the checkpoint has one, else the tokenizer.json.
//       "context_length": 64,          // optional; must equal text.context_length
//       "clean": "canonicalize" | "siglip_hf" | "none",   // required: whose text cleaning
//           // canonicalize: open_clip's _clean_canonicalize (open_clip folders: HFTokenizer with
//           //   tokenizer_kwargs {"clean": "canonicalize"}): html.unescape twice, strip, "_" ->
//           //   space, ASCII string.punctuation deleted, str.lower(), whitespace runs -> one
//           //   space, strip; then the vocabulary's encode. ftfy.fix_text, which open_clip runs
//           //   first, only with "ftfy": true (the reference data was made with ftfy as the
//           //   identity).
//           // siglip_hf: transformers' SiglipTokenizer (HF SiglipModel folders; .model only): text
//           //   lower-cased a character at a time, split at the special-token strings (the
//           //   pieces of eos_id, pad_id and <unk>), each part with ASCII punctuation deleted
//           //   ("_" too, NOT turned into a space), whitespace runs -> one space, "▁" prefixed,
//           //   encoded with the model's add_dummy_prefix off; eos added unless the ids already
//           //   end with it.
//           // none: the text as given (HF Gemma tokenizers, e.g. HF SigLIP2 folders).
//           // The same checkpoint in open_clip and HF layouts may therefore tokenize differently
//           // ("sea_waves", "Tom &amp; Jerry").
//       "ftfy": false,                 // optional, canonicalize only: zsclip's character-level
//                                      // ftfy (zsclip/tokenizer.h) before html.unescape
//       "pad_id": 1,                   // required: fills each row after the ids
//       "eos_id": 1,                   // required: -1 none; appended when add_eos
//       "bos_id": -1,                  // optional (-1: none); >= 0 is prepended
//       "add_eos": true                // required
//     }
//   Ids: [bos] + pieces[:context_length - specials] + [eos], then pad_id up to context_length
//   (open_clip: pieces[:63] + [eos], padded with 1 for SigLIP, 0 for SigLIP2). pad_id, eos_id and
//   bos_id must be < text.vocab_size, and the vocabulary's size <= text.vocab_size.
//   num_merges, format, merges_file, sot_token and eot_token belong to clip_bpe and are refused.
// Unknown fields are ignored, so newer writers may add informational fields without a format bump;
// anything that changes the numbers comes with a format bump, so an older zsclip refuses it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace zsclip {

enum class Interpolation { kBicubic, kBilinear, kNearest };
// kShorterSide: shorter side to image_size (torchvision Resize(n)); kStretch: both sides to
// image_size (open_clip "squash"); kLongerSide: longer side to image_size, aspect ratio kept
// (open_clip "longest": ResizeKeepRatio(n, longest=1), sizes rounded half to even).
enum class ResizeRule { kShorterSide, kStretch, kLongerSide };
enum class CropRule { kCenter, kNone };

// Options of the image pipeline. The defaults are OpenAI CLIP's `_transform(224)`.
struct PreprocessConfig {
  int image_size = 224;  // output is 3 x image_size^2
  std::array<float, 3> mean = {0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std = {0.26862954f, 0.26130258f, 0.27577711f};
  Interpolation interpolation = Interpolation::kBicubic;  // Pillow-exact resampling
  ResizeRule resize = ResizeRule::kShorterSide;
  // kCenter crops the centre n x n (offsets rounded half to even) and, where the resized image is
  // smaller than n, pads it centred (left/top get the floor half) with `fill`, as open_clip's
  // CenterCropOrPad; OpenAI's pipeline never pads.
  CropRule crop = CropRule::kCenter;
  int fill = 0;  // padding value 0-255 in every channel (a palette image: the palette entry)
  bool apply_exif_orientation = false;  // false as Pillow's Image.open; true rotates by EXIF
  int64_t max_pixels = 178956970;       // refuse larger images before decoding (Pillow's limit x2)
};

enum class TokenizerFormat {
  kOpenAI,  // one merges file, gzip or plain (bpe_simple_vocab_16e6.txt.gz): ids from its order
  kHF,      // HuggingFace CLIPTokenizer files: vocab.json (token -> id) + merges.txt
};

struct TokenizerConfig {
  std::string type = "clip_bpe";  // clip_bpe | sentencepiece
  TokenizerFormat format = TokenizerFormat::kOpenAI;
  std::string vocab_file;   // path relative to the model directory (kHF: vocab.json)
  std::string merges_file;  // kHF only: merges.txt
  int64_t num_merges = -1;  // merges used after the header line; -1: every line in the file
  // Special tokens as the text spells them: OpenAI and HF "<|startoftext|>"/"<|endoftext|>",
  // open_clip "<start_of_text>"/"<end_of_text>" (a literal "<|endoftext|>" is plain text there).
  std::string sot_token = "<|startoftext|>";
  std::string eot_token = "<|endoftext|>";
  // type "sentencepiece" only (format_version 3; see the table above).
  std::string clean = "none";  // canonicalize | siglip_hf | none
  bool ftfy = false;
  int64_t pad_id = 0;
  int64_t eos_id = -1;  // -1: none
  int64_t bos_id = -1;  // -1: none
  bool add_eos = false;
};

enum class Scoring {
  kSoftmax,  // softmax over classes of logit_scale_exp * cosine (CLIP)
  kSigmoid,  // each class on its own: sigmoid(logit_scale_exp * cosine + logit_bias) (SigLIP-style)
};
const char* scoring_name(Scoring s);  // "softmax" | "sigmoid"

enum class TextPool { kArgmax, kFirst, kLast, kEos };

struct TowerConfig {
  int64_t width = 0, layers = 0, heads = 0;
  int64_t image_size = 0, patch_size = 0;      // vision only
  int64_t context_length = 0, vocab_size = 0;  // text only
  // Text only: how the tower attends and pools (the TorchScript module does it; zsclip needs it to
  // know which trailing padding columns it may skip). v1 configs: causal, argmax.
  bool causal_mask = true;
  TextPool pool = TextPool::kArgmax;
  int64_t eos_id = -1;  // kEos: pooled at the first occurrence of this id
};

// What the exporter recorded about a file of the model directory (config.json "file_checks").
struct FileCheck {
  int64_t bytes = 0;
  uint64_t xxh3_64 = 0;  // XXH3 64-bit hash of the whole file, seed 0
};

struct ModelConfig {
  int format_version = 1;
  std::string name;
  std::string fingerprint;
  // clip-vit: OpenAI's ViT image tower + projection. siglip-vit (SigLIP / SigLIP2, exported with a
  // SentencePiece tokenizer): timm's ViT with the attention-pooling head, no class token, patch
  // bias; the pooled output is the image feature (projection.pt's image_projection is the
  // identity), and patch_size need not divide image_size (the top-left grid is read, as timm).
  std::string architecture = "clip-vit";
  std::string dtype = "float32";
  std::string quantization = "none";
  std::string activation = "quick_gelu";  // informational: the TorchScript modules implement it
  std::string source_layout;              // informational: what the exporter read
  int64_t embed_dim = 0;
  Scoring scoring = Scoring::kSoftmax;
  float logit_bias = 0.f;  // kSigmoid only (projection.pt holds the value that is used)
  TowerConfig vision, text;
  PreprocessConfig preprocess;
  TokenizerConfig tokenizer;
  std::string image_encoder_file = "image_encoder.pt";
  std::string text_encoder_file = "text_encoder.pt";
  std::string projection_file = "projection.pt";

  // file name -> size and hash, for every file config.json names (optional: absent in configs
  // written before zsclip recorded them). Model::load checks them unless ModelOptions::verify_files
  // is false (`--no-verify`), so an edited or swapped file is refused instead of run.
  std::map<std::string, FileCheck> file_checks;

  std::string directory;  // the model directory it was loaded from ("" when parsed from a string)

  // Reads DIR/config.json (a regular file of at most 16 MiB). Throws zsclip::Error naming the file
  // and the field; a DIR that is not a directory is kInvalidArgument.
  static ModelConfig load(const std::string& model_dir);
  // Parses config.json text; `origin` names it in error messages.
  static ModelConfig parse(const std::string& json_text, const std::string& origin = "config.json");

  std::string path_of(const std::string& file) const;  // directory + "/" + file
  // Checks the file_checks entries against the files on disk: size first, then the hash (the file
  // is mapped, not copied). Throws Error(kInvalidModel) naming the file and what differs.
  // text_files = false skips the text encoder and the tokenizer files (an image-only load).
  void verify_files(bool text_files = true) const;
  std::string tokenizer_path() const { return path_of(tokenizer.vocab_file); }
  std::string merges_path() const { return path_of(tokenizer.merges_file); }  // kHF only
};

}  // namespace zsclip
