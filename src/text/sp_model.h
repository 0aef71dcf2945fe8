// A SentencePiece model run by the SentencePiece library (internal; see zsclip/tokenizer.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace zsclip::text {

class SpModel {
 public:
  // Reads a serialized ModelProto (spiece.model, tokenizer.model). no_dummy_prefix: the model's
  // normalizer_spec.add_dummy_prefix set to false, as transformers' SiglipTokenizer loads it.
  // Throws Error: the file's errors as io::read_file, kInvalidConfig when the library refuses it.
  SpModel(const std::string& path, bool no_dummy_prefix);
  ~SpModel();
  SpModel(const SpModel&) = delete;
  SpModel& operator=(const SpModel&) = delete;

  // The ids of UTF-8 text (the library's Encode; thread-safe).
  std::vector<int32_t> encode(std::string_view utf8) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  int64_t size() const;
  // The id of a piece, or -1 when the vocabulary has no such piece.
  int32_t find(std::string_view piece) const;
  const std::string& piece(int32_t id) const;  // id must be in [0, size())
  int32_t unk_id() const;

 private:
  struct Deleter {
    void operator()(sentencepiece::SentencePieceProcessor* sp) const;
  };
  std::unique_ptr<sentencepiece::SentencePieceProcessor, Deleter> sp_;
  std::string path_;
};

}  // namespace zsclip::text
