// The approximate part of an index (FAISS). Without FAISS every entry point throws kUnsupported.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zsclip/index.h"

namespace zsclip::index_detail {

class AnnIndex {
 public:
  virtual ~AnnIndex() = default;
  // Candidate rows for one normalised query: the rows of up to k nearest stored vectors (-1
  // entries dropped). Rows with equal vectors share one stored vector (see distinct()), so this
  // may be more than k rows.
  virtual std::vector<int64_t> search(const float* query, int k) const = 0;
  // Writes the FAISS file `path` and, when rows share vectors, kRowsFile beside it.
  virtual void write(const std::string& path) const = 0;
  virtual std::string factory() const = 0;
  virtual int64_t distinct() const = 0;  // vectors stored (== rows unless some rows are equal)
};

// HNSW stores one graph node per distinct vector (a graph over many equal vectors falls apart
// into cliques of equal nodes that a search cannot leave); this file maps rows to nodes: one
// little-endian int64 a row, the node of that row. Written only when some rows are equal.
constexpr const char* kRowsFile = "ann_rows.bin";

// Fills `out` with rows [begin, begin + n) as float32.
using RowReader = std::function<void(int64_t begin, int64_t n, float* out)>;

// Throws Error(kUnsupported) naming the option when zsclip was built without FAISS.
std::shared_ptr<const AnnIndex> build_ann_index(const RowReader& rows, int64_t count, int64_t dim,
                                                AnnOptions& options);
// `distinct`: index.json's ann.distinct (0 when absent: one vector a row, as indexes written
// before it).
std::shared_ptr<const AnnIndex> read_ann_index(const std::string& path, const AnnOptions& options,
                                               int64_t count, int64_t dim, int64_t distinct);

bool ann_built_in();

// index.json's "ann" object <-> options.
nlohmann::json ann_to_json(const AnnOptions& options, const std::string& factory, int64_t count,
                           int64_t distinct);
AnnOptions ann_from_json(const nlohmann::json& j, const std::string& origin, int64_t* distinct);

}  // namespace zsclip::index_detail
