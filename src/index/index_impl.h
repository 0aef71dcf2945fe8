// EmbeddingIndex's state: row metadata, and the stored rows as a list of contiguous spans (a mapped
// embeddings.npy, merged-in shards, rows added in memory), so that opening, merging and dropping
// rows never copy the features.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "index/ann.h"
#include "zsclip/index.h"

namespace zsclip {
namespace index_detail {

// The lock file of index builds, inside the index folder. save() carries it (a hard link) into
// each new version of the folder, so that the lock held on it survives the folder swap.
constexpr const char* kLockFile = ".zsclip-build.lock";

// The key of an image path: absolute, with symbolic links, "." and ".." resolved as far as the path
// exists (so that "imgs/a.png", "./imgs/a.png", "$PWD/imgs/a.png" and a linked folder agree).
std::string canonical_path(const std::string& path);

struct Span {
  std::shared_ptr<const void> owner;  // keeps the mapping or buffer alive; null for Impl::tail
  const uint8_t* data = nullptr;
  IndexDtype dtype = IndexDtype::kFloat32;
  int64_t count = 0;
};

}  // namespace index_detail

struct EmbeddingIndex::Impl {
  std::string fingerprint, model_name, directory;
  int64_t dim = 0;
  IndexDtype dtype = IndexDtype::kFloat16;
  std::vector<IndexRow> rows;
  std::vector<IndexFailure> failures;
  std::vector<index_detail::Span> spans;
  std::vector<uint8_t> tail;  // rows added since the last freeze, in `dtype`
  int64_t tail_rows = 0;

  // path -> row, built on first use.
  mutable std::mutex path_mu;
  mutable bool path_map_ready = false;
  mutable std::unordered_map<std::string, int64_t> row_of;

  // The ANN part: described by index.json and read from ann_file on first use, or built in memory.
  AnnOptions ann_options;
  int64_t ann_distinct = 0;  // index.json's ann.distinct (0: one vector a row)
  bool has_ann_json = false;
  std::string ann_file;
  mutable std::mutex ann_mu;
  mutable bool ann_loaded = false;
  mutable std::shared_ptr<const index_detail::AnnIndex> ann;

  // Rows whose stored values are not all finite (an index damaged from outside, or written before
  // zsclip refused such rows), found by a full scan (nonfinite_rows, or an exact search).
  mutable std::mutex bad_mu;
  mutable bool bad_known = false;
  mutable std::vector<int64_t> bad_rows;

  void freeze_tail();
  std::vector<index_detail::Span> all_spans() const;  // spans + the tail
  const uint8_t* row_ptr(int64_t i, IndexDtype* dtype) const;
  void read_rows(int64_t begin, int64_t n, float* out) const;
  const std::unordered_map<std::string, int64_t>& path_map() const;
  void drop_rows(const std::vector<int64_t>& sorted_rows);
  void invalidate();  // after rows moved: the path map and the ANN part
  std::shared_ptr<const index_detail::AnnIndex> ann_index() const;
  // The ANN's candidates for one normalised query, rescored exactly; rows whose stored values are
  // not finite are left out.
  std::vector<SearchHit> ann_search(const index_detail::AnnIndex& approx, const float* q, size_t k,
                                    int candidates) const;
};

}  // namespace zsclip
