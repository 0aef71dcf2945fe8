// The approximate part of an index: FAISS HNSW or IVF over inner products (rows are unit length, so
// inner product = cosine). Built only with ZSCLIP_WITH_FAISS; otherwise every entry point refuses.
#include "index/ann.h"

#include <algorithm>
#include <cmath>

#ifdef ZSCLIP_WITH_FAISS
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <omp.h>
#endif

namespace zsclip::index_detail {
namespace {

void check_kind(const std::string& kind, const std::string& origin) {
  if (kind != "hnsw" && kind != "ivf")
    throw Error(ErrorCode::kInvalidArgument, origin + ": approximate index kind \"" + kind +
                                                 "\" is neither hnsw nor ivf");
}

#ifdef ZSCLIP_WITH_FAISS
class FaissAnn : public AnnIndex {
 public:
  FaissAnn(std::unique_ptr<faiss::Index> index, const AnnOptions& o, std::string factory)
      : index_(std::move(index)), options_(o), factory_(std::move(factory)) {}

  std::vector<int64_t> search(const float* query, int k) const override {
    k = static_cast<int>(std::min<int64_t>(k, index_->ntotal));
    if (k <= 0) return {};
    std::vector<float> dist(static_cast<size_t>(k));
    std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(k), -1);
    faiss::SearchParametersHNSW hnsw;
    faiss::SearchParametersIVF ivf;
    faiss::SearchParameters* params = nullptr;
    if (options_.kind == "hnsw") {
      hnsw.efSearch = std::max(options_.hnsw_ef_search, k);
      params = &hnsw;
    } else {
      ivf.nprobe = static_cast<size_t>(options_.ivf_probe);
      params = &ivf;
    }
    // One query needs no OpenMP team: on a busy machine the team's barriers cost more than the
    // search (HNSW over 20,000 rows: 24 ms with 2 threads at load 9, against well under 1 ms).
    const int team = omp_get_max_threads();
    omp_set_num_threads(1);
    try {
      index_->search(1, query, k, dist.data(), labels.data(), params);
    } catch (const std::exception& e) {
      omp_set_num_threads(team);
      throw Error(ErrorCode::kInternal, std::string("approximate search failed: ") + e.what());
    }
    omp_set_num_threads(team);
    std::vector<int64_t> out;
    for (auto l : labels)
      if (l >= 0) out.push_back(static_cast<int64_t>(l));
    return out;
  }

  void write(const std::string& path) const override {
    try {
      faiss::write_index(index_.get(), path.c_str());
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kIo, path + ": cannot write the approximate index (" + e.what() + ")");
    }
  }
  std::string factory() const override { return factory_; }

 private:
  std::unique_ptr<faiss::Index> index_;
  AnnOptions options_;
  std::string factory_;
};
#endif

}  // namespace

nlohmann::json ann_to_json(const AnnOptions& o, const std::string& factory, int64_t count) {
  nlohmann::json j = {{"kind", o.kind}, {"file", "ann.faiss"}, {"factory", factory}, {"count", count}};
  if (o.kind == "hnsw") {
    j["hnsw_m"] = o.hnsw_m;
    j["hnsw_ef_construction"] = o.hnsw_ef_construction;
    j["hnsw_ef_search"] = o.hnsw_ef_search;
  } else {
    j["ivf_lists"] = o.ivf_lists;
    j["ivf_probe"] = o.ivf_probe;
    j["ivf_train_rows"] = o.ivf_train_rows;
  }
  return j;
}

AnnOptions ann_from_json(const nlohmann::json& j, const std::string& origin) {
  AnnOptions o;
  o.kind = j.at("kind").get<std::string>();
  check_kind(o.kind, origin);
  if (o.kind == "hnsw") {
    o.hnsw_m = j.at("hnsw_m").get<int>();
    o.hnsw_ef_construction = j.at("hnsw_ef_construction").get<int>();
    o.hnsw_ef_search = j.at("hnsw_ef_search").get<int>();
  } else {
    o.ivf_lists = j.at("ivf_lists").get<int>();
    o.ivf_probe = j.at("ivf_probe").get<int>();
    o.ivf_train_rows = j.at("ivf_train_rows").get<int64_t>();
  }
  const std::string file = j.at("file").get<std::string>();
  if (file != "ann.faiss") throw Error(ErrorCode::kInvalidConfig, origin + ": ann.file must be \"ann.faiss\"");
  return o;
}

#ifdef ZSCLIP_WITH_FAISS

std::shared_ptr<const AnnIndex> build_ann_index(const RowReader& rows, int64_t count, int64_t dim,
                                                AnnOptions& o) {
  check_kind(o.kind, "--ann");
  if (count < 1) throw Error(ErrorCode::kInvalidArgument, "approximate index: the index has no rows");
  std::string factory;
  if (o.kind == "hnsw") {
    if (o.hnsw_m < 4 || o.hnsw_m > 256 || o.hnsw_ef_construction < 8 || o.hnsw_ef_search < 1)
      throw Error(ErrorCode::kInvalidArgument, "approximate index: hnsw_m must be 4-256, ef_construction >= 8, ef_search >= 1");
    factory = "HNSW" + std::to_string(o.hnsw_m) + ",Flat";
  } else {
    if (o.ivf_lists <= 0) o.ivf_lists = static_cast<int>(std::max<double>(1, std::round(std::sqrt(double(count)))));
    o.ivf_lists = static_cast<int>(std::min<int64_t>(o.ivf_lists, count));
    if (o.ivf_probe <= 0) o.ivf_probe = std::min(o.ivf_lists, std::max(8, o.ivf_lists / 16));
    if (o.ivf_train_rows <= 0) o.ivf_train_rows = std::min<int64_t>(count, int64_t(64) * o.ivf_lists);
    o.ivf_train_rows = std::max<int64_t>(std::min<int64_t>(o.ivf_train_rows, count), o.ivf_lists);
    factory = "IVF" + std::to_string(o.ivf_lists) + ",Flat";
  }
  try {
    std::unique_ptr<faiss::Index> index(faiss::index_factory(static_cast<int>(dim), factory.c_str(),
                                                             faiss::METRIC_INNER_PRODUCT));
    if (auto* h = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
      h->hnsw.efConstruction = o.hnsw_ef_construction;
      h->hnsw.efSearch = o.hnsw_ef_search;
    }
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index.get())) {
      // Training rows spread evenly over the index (deterministic).
      const int64_t t = o.ivf_train_rows;
      std::vector<float> sample(static_cast<size_t>(t * dim));
      for (int64_t i = 0; i < t; ++i) rows(i * count / t, 1, sample.data() + i * dim);
      ivf->cp.seed = 1234;
      ivf->train(t, sample.data());
      ivf->nprobe = static_cast<size_t>(o.ivf_probe);
    }
    constexpr int64_t kChunk = 65536;
    std::vector<float> buf;
    for (int64_t b = 0; b < count; b += kChunk) {
      const int64_t m = std::min(kChunk, count - b);
      buf.resize(static_cast<size_t>(m * dim));
      rows(b, m, buf.data());
      index->add(m, buf.data());
    }
    return std::make_shared<FaissAnn>(std::move(index), o, factory);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, "approximate index (" + factory + "): " + e.what());
  }
}

std::shared_ptr<const AnnIndex> read_ann_index(const std::string& path, const AnnOptions& o, int64_t count,
                                               int64_t dim) {
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::read_index(path.c_str(), faiss::IO_FLAG_READ_ONLY));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInvalidConfig, path + ": not a readable FAISS index (" + e.what() + ")");
  }
  if (index->d != dim || index->ntotal != count || index->metric_type != faiss::METRIC_INNER_PRODUCT)
    throw Error(ErrorCode::kInvalidConfig, path + ": holds " + std::to_string(index->ntotal) + " vectors of dimension " +
                                               std::to_string(index->d) + ", but the index has " + std::to_string(count) +
                                               " rows of dimension " + std::to_string(dim) + " (stale or foreign file)");
  const bool hnsw = dynamic_cast<faiss::IndexHNSW*>(index.get()) != nullptr;
  const bool ivf = dynamic_cast<faiss::IndexIVF*>(index.get()) != nullptr;
  if ((o.kind == "hnsw" && !hnsw) || (o.kind == "ivf" && !ivf))
    throw Error(ErrorCode::kInvalidConfig, path + ": is not the " + o.kind + " index that index.json describes");
  const std::string factory = o.kind == "hnsw" ? "HNSW" + std::to_string(o.hnsw_m) + ",Flat"
                                               : "IVF" + std::to_string(o.ivf_lists) + ",Flat";
  return std::make_shared<FaissAnn>(std::move(index), o, factory);
}

bool ann_built_in() { return true; }

#else

namespace {
[[noreturn]] void no_faiss(const std::string& what) {
  throw Error(ErrorCode::kUnsupported, what + ": this zsclip was built without FAISS (CMake option "
                                              "ZSCLIP_WITH_FAISS; Debian package libfaiss-dev)");
}
}  // namespace

std::shared_ptr<const AnnIndex> build_ann_index(const RowReader&, int64_t, int64_t, AnnOptions& o) {
  check_kind(o.kind, "--ann");
  no_faiss("--ann " + o.kind);
}
std::shared_ptr<const AnnIndex> read_ann_index(const std::string& path, const AnnOptions&, int64_t, int64_t) {
  no_faiss(path + " (approximate index; search with --exact)");
}
bool ann_built_in() { return false; }

#endif

}  // namespace zsclip::index_detail

namespace zsclip {
bool ann_available() { return index_detail::ann_built_in(); }
}  // namespace zsclip
