// The state behind zsclip::Tokenizer (internal): one subclass per tokenizer type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zsclip/tokenizer.h"

namespace zsclip {

class Tokenizer::Impl {
 public:
  virtual ~Impl() = default;
  // The ids of a text without special tokens (Tokenizer::encode).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // The token string of an id; throws Error(kInvalidArgument) outside the vocabulary.
  virtual std::string token(int32_t id) const = 0;

  std::string type;                  // "clip_bpe" | "sentencepiece"
  std::string sot_token, eot_token;  // "" where there is none
  int32_t sot = -1;                  // prepended when >= 0
  int32_t eot = -1;                  // appended when >= 0
  // transformers' T5-style _add_eos_if_not_present: no eot after ids that end with it.
  bool eot_if_absent = false;
  int32_t pad = 0;  // fills a row after the ids
  int64_t vocab_size = 0;
  int64_t num_merges = 0;
};

}  // namespace zsclip
