// A config.json (format_version 3) for a model folder holding ../shared/clip/siglip-tiny's
// spiece.model: what the SentencePiece tests give ModelConfig and `zsclip tokenize --model`.
#pragma once

#include <nlohmann/json.hpp>

namespace zsclip::testing {

inline nlohmann::json siglip_tiny_tokenizer_config() {
  return {{"format_version", 3},
          {"embed_dim", 64},
          {"vision",
           {{"image_size", 64}, {"patch_size", 16}, {"width", 64}, {"layers", 2}, {"heads", 2}}},
          {"text",
           {{"context_length", 64},
            {"vocab_size", 4000},
            {"width", 64},
            {"layers", 2},
            {"heads", 2},
            {"causal_mask", false},
            {"pool", "last"}}},
          {"preprocess",
           {{"image_size", 64},
            {"mean", {0.5, 0.5, 0.5}},
            {"std", {0.5, 0.5, 0.5}},
            {"resize", "stretch"},
            {"crop", "none"}}},
          {"tokenizer",
           {{"type", "sentencepiece"},
            {"vocab_file", "spiece.model"},
            {"context_length", 64},
            {"clean", "canonicalize"},
            {"pad_id", 1},
            {"eos_id", 1},
            {"bos_id", -1},
            {"add_eos", true}}},
          {"scoring", "sigmoid"},
          {"logit_bias", -1.7},
          {"files", {{"image_encoder", "image_encoder.pt"}, {"projection", "projection.pt"}}}};
}

}  // namespace zsclip::testing
