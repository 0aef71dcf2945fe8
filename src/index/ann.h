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
  // Up to k candidate rows for one normalised query (-1 entries dropped).
  virtual std::vector<int64_t> search(const float* query, int k) const = 0;
  virtual void write(const std::string& path) const = 0;
  virtual std::string factory() const = 0;
};

// Fills `out` with rows [begin, begin + n) as float32.
using RowReader = std::function<void(int64_t begin, int64_t n, float* out)>;

// Throws Error(kUnsupported) naming the option when zsclip was built without FAISS.
std::shared_ptr<const AnnIndex> build_ann_index(const RowReader& rows, int64_t count, int64_t dim,
                                                AnnOptions& options);
std::shared_ptr<const AnnIndex> read_ann_index(const std::string& path, const AnnOptions& options,
                                               int64_t count, int64_t dim);

bool ann_built_in();

// index.json's "ann" object <-> options.
nlohmann::json ann_to_json(const AnnOptions& options, const std::string& factory, int64_t count);
AnnOptions ann_from_json(const nlohmann::json& j, const std::string& origin);

}  // namespace zsclip::index_detail
