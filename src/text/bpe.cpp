#include "text/bpe.h"

#include <algorithm>
#include <limits>
#include <queue>

namespace zsclip::text {

void bpe_merge_simple(const MergeTable& table, std::vector<int32_t>& word, BpeStats* stats) {
  size_t lookups = 0;
  while (word.size() > 1) {
    lookups += word.size() - 1;
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    const Merge* best = nullptr;
    int32_t first = 0, second = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const Merge* m = table.find(word[i], word[i + 1]);
      if (m != nullptr && m->rank < best_rank) {
        best_rank = m->rank;
        best = m;
        first = word[i];
        second = word[i + 1];
      }
    }
    if (best == nullptr) break;
    size_t out = 0;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        word[out++] = best->result;
        i += 2;
      } else {
        word[out++] = word[i++];
      }
    }
    word.resize(out);
  }
  if (stats) stats->lookups += lookups;
}

void bpe_merge_heap(const MergeTable& table, std::vector<int32_t>& word, BpeStats* stats) {
  const size_t n = word.size();
  if (n < 2) return;
  size_t lookups = 0;
  // A doubly linked list over positions; a node is dead once merged into its left neighbour.
  std::vector<int32_t> ids(word);
  std::vector<size_t> prev(n), next(n);
  std::vector<char> alive(n, 1);
  constexpr size_t kNone = std::numeric_limits<size_t>::max();
  for (size_t i = 0; i < n; ++i) {
    prev[i] = i == 0 ? kNone : i - 1;
    next[i] = i + 1 == n ? kNone : i + 1;
  }
  using Entry = std::pair<int32_t, size_t>;  // (rank, left position), smallest first
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](size_t i) {
    if (i == kNone || next[i] == kNone) return;
    ++lookups;
    if (const Merge* m = table.find(ids[i], ids[next[i]])) heap.push({m->rank, i});
  };
  auto valid = [&](const Entry& e) {
    const size_t i = e.second;
    if (!alive[i] || next[i] == kNone) return false;
    ++lookups;
    const Merge* m = table.find(ids[i], ids[next[i]]);
    return m != nullptr && m->rank == e.first;
  };
  std::vector<size_t> batch, merged;
  for (size_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    if (!valid(top)) continue;
    // Every occurrence of this rank's pair present now, merged left to right as one pass.
    const int32_t rank = top.first;
    batch.assign(1, top.second);
    while (!heap.empty() && heap.top().first == rank) {
      const Entry e = heap.top();
      heap.pop();
      if (valid(e)) batch.push_back(e.second);
    }
    std::sort(batch.begin(), batch.end());
    batch.erase(std::unique(batch.begin(), batch.end()), batch.end());
    ++lookups;
    const Merge* m = table.find(ids[batch[0]], ids[next[batch[0]]]);
    const int32_t first = ids[batch[0]], second = ids[next[batch[0]]];
    const int32_t result = m->result;
    merged.clear();
    for (size_t i : batch) {
      // Skip occurrences broken by an earlier merge of this pass (overlaps such as "a a a").
      if (!alive[i] || ids[i] != first || next[i] == kNone || ids[next[i]] != second) continue;
      const size_t j = next[i];
      ids[i] = result;
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] != kNone) prev[next[j]] = i;
      merged.push_back(i);
    }
    // New pairs only after the pass, as Python recomputes pairs once per pass.
    for (size_t i : merged) {
      if (!alive[i]) continue;
      push(prev[i]);
      push(i);
    }
  }
  word.clear();
  for (size_t i = 0; i != kNone; i = next[i]) word.push_back(ids[i]);
  if (stats) stats->lookups += lookups;
}

void bpe_merge(const MergeTable& table, std::vector<int32_t>& word, BpeStats* stats) {
  if (word.size() <= 64) {
    bpe_merge_simple(table, word, stats);
  } else {
    bpe_merge_heap(table, word, stats);
  }
}

}  // namespace zsclip::text
