// A HuggingFace tokenizer.json of the Gemma kind: BPE with byte fallback (internal; the rules are
// documented in zsclip/tokenizer.h).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace zsclip::text {

class HfBpe {
 public:
  // Reads and checks `path`. Throws Error: the file's errors as io::read_file, kInvalidConfig for
  // JSON that is corrupt or has fields of the wrong type, kUnsupported for a tokenizer of another
  // kind (each naming the file and the field).
  explicit HfBpe(const std::string& path);

  // Added tokens cut out, each other part normalized and merged; the ids.
  std::vector<int32_t> encode(std::string_view utf8) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  int64_t size() const { return static_cast<int64_t>(offsets_.size()) - 1; }
  int64_t num_merges() const { return num_merges_; }
  // The piece of an id ("" for an id no token has); id must be in [0, size()).
  std::string_view piece(int32_t id) const {
    return std::string_view(arena_).substr(
        offsets_[static_cast<size_t>(id)],
        offsets_[static_cast<size_t>(id) + 1] - offsets_[static_cast<size_t>(id)]);
  }
  // The id of a piece (vocabulary or added token), or -1.
  int32_t find(std::string_view piece) const;

 private:
  struct NormStep {
    bool prepend;  // else replace
    std::string pattern, content;
  };
  struct Added {
    std::string content;
    int32_t id;
    bool lstrip, rstrip;
  };
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  void index_pieces();
  void add_merge(int32_t a, int32_t b, int32_t rank, int32_t result);
  const Merge* find_merge(int32_t a, int32_t b) const;
  std::string normalize(std::string_view text) const;
  // Leftmost-longest added token at `pos`, or -1 (its index in added_).
  int32_t match_added(std::string_view text, size_t pos) const;
  void encode_section(std::string_view normalized, std::vector<int32_t>& ids) const;

  std::string path_;
  // Pieces by id: arena_[offsets_[id], offsets_[id + 1]).
  std::string arena_;
  std::vector<uint32_t> offsets_;
  struct Slot {
    int32_t id;    // -1: empty
    uint32_t tag;  // high half of the piece's hash
  };
  std::vector<Slot> table_;  // open addressing: piece -> id
  std::vector<uint64_t> merge_keys_;
  std::vector<Merge> merge_values_;
  int64_t num_merges_ = 0;
  std::array<int32_t, 256> byte_ids_{};  // <0xNN> pieces (-1: absent)
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::vector<NormStep> norm_;
  std::vector<Added> added_;
  // Trie of the added tokens over bytes: (node << 8 | byte) -> node; node_token_[node] -> index.
  std::vector<uint64_t> trie_keys_;
  std::vector<int32_t> trie_next_;
  std::vector<int32_t> node_token_;
  std::array<bool, 256> added_first_{};
};

}  // namespace zsclip::text
