// Byte-pair merging over token ids (internal). A word is a sequence of ids; the pair of lowest rank
// is merged everywhere (left to right, without overlap) until no ranked pair remains — the loop of
// SimpleTokenizer.bpe, on ids instead of strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace zsclip::text {

struct Merge {
  int32_t rank;
  int32_t result;  // id of the concatenated token
};

class MergeTable {
 public:
  void set(int32_t first, int32_t second, int32_t rank, int32_t result) {
    map_[key(first, second)] = Merge{rank, result};
  }
  const Merge* find(int32_t first, int32_t second) const {
    auto it = map_.find(key(first, second));
    return it == map_.end() ? nullptr : &it->second;
  }
  size_t size() const { return map_.size(); }

 private:
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::unordered_map<uint64_t, Merge> map_;
};

// Work done by one merge, for tests that check its growth without timing it.
struct BpeStats {
  size_t lookups = 0;  // MergeTable::find calls
};

// Merges `word` in place. Picks the quadratic loop for short words and a heap for long ones.
// `stats`, when given, receives the work done (added to what it holds).
void bpe_merge(const MergeTable& table, std::vector<int32_t>& word, BpeStats* stats = nullptr);
// The two strategies, exposed for tests (they must agree).
void bpe_merge_simple(const MergeTable& table, std::vector<int32_t>& word,
                      BpeStats* stats = nullptr);
void bpe_merge_heap(const MergeTable& table, std::vector<int32_t>& word, BpeStats* stats = nullptr);

}  // namespace zsclip::text
