// The approximate part of an index: FAISS HNSW or IVF over inner products (rows are unit length, so
// inner product = cosine). Built only with ZSCLIP_WITH_FAISS; otherwise every entry point refuses.
#include "index/ann.h"

#include "base/json_check.h"
#include "index/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "zsclip/io.h"

#ifdef ZSCLIP_WITH_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <omp.h>
#endif

namespace zsclip::index_detail {
namespace {

void check_kind(const std::string& kind, const std::string& origin) {
  if (kind != "hnsw" && kind != "ivf")
    throw Error(ErrorCode::kInvalidArgument,
                origin + ": approximate index kind \"" + kind + "\" is neither hnsw nor ivf");
}

#ifdef ZSCLIP_WITH_FAISS
// Debian's FAISS is built for baseline x86-64, where its inner products are the scalar reference
// loops (87 % of an HNSW build's time). HNSW therefore gets a flat storage whose distances are
// zsclip's own AVX2 dot products, and IVF lists (float16 codes, not residuals) are scanned with
// them.

struct FastIPDistance : faiss::FlatCodesDistanceComputer {
  explicit FastIPDistance(const faiss::IndexFlat& s)
      : FlatCodesDistanceComputer(s.codes.data(), s.code_size),
        base(s.get_xb()),
        d(s.d),
        q(static_cast<size_t>(s.d)) {}
  void set_query(const float* x) override { std::copy(x, x + d, q.begin()); }
  float distance_to_code(const uint8_t* code) override {
    float r;
    dot_rows(code, IndexDtype::kFloat32, 1, d, q.data(), &r);
    return r;
  }
  float symmetric_dis(faiss::Index::idx_t i, faiss::Index::idx_t j) override {
    float r;
    dot_rows(base + i * d, IndexDtype::kFloat32, 1, d, base + j * d, &r);
    return r;
  }
  const float* base;
  int64_t d;
  std::vector<float> q;
};

struct FastIPStorage : faiss::IndexFlatIP {  // written and read by FAISS as an IndexFlatIP
  explicit FastIPStorage(int64_t d) : faiss::IndexFlatIP(d) {}
  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override {
    return new FastIPDistance(*this);
  }
};

// Gives an HNSW-flat index the fast storage (after index_factory or read_index).
void use_fast_storage(faiss::IndexHNSW* h) {
  auto* old = dynamic_cast<faiss::IndexFlat*>(h->storage);
  if (!old || dynamic_cast<FastIPStorage*>(old)) return;
  auto* fast = new FastIPStorage(h->d);
  fast->codes.swap(old->codes);
  fast->ntotal = old->ntotal;
  if (h->own_fields) delete old;
  h->storage = fast;
  h->own_fields = true;
}

class FaissAnn : public AnnIndex {
 public:
  // node_of_row: the stored vector of each row; empty when vector i is row i.
  FaissAnn(std::unique_ptr<faiss::Index> index, const AnnOptions& o, std::string factory,
           std::vector<int64_t> node_of_row = {})
      : index_(std::move(index)),
        options_(o),
        factory_(std::move(factory)),
        node_of_row_(std::move(node_of_row)) {
    if (node_of_row_.empty()) return;
    first_.assign(static_cast<size_t>(index_->ntotal) + 1, 0);  // rows of node v: first_[v]..
    for (int64_t v : node_of_row_) ++first_[size_t(v) + 1];
    for (size_t v = 1; v < first_.size(); ++v) first_[v] += first_[v - 1];
    rows_.resize(node_of_row_.size());
    std::vector<int64_t> at(first_.begin(), first_.end() - 1);
    for (size_t r = 0; r < node_of_row_.size(); ++r)
      rows_[size_t(at[size_t(node_of_row_[r])]++)] = static_cast<int64_t>(r);
  }

  int64_t distinct() const override { return index_->ntotal; }

  std::vector<int64_t> search(const float* query, int k) const override {
    std::vector<int64_t> nodes = search_nodes(query, k);
    if (node_of_row_.empty()) return nodes;
    std::vector<int64_t> out;
    for (int64_t v : nodes)
      out.insert(out.end(), rows_.begin() + first_[size_t(v)],
                 rows_.begin() + first_[size_t(v) + 1]);
    return out;
  }

  std::vector<int64_t> search_nodes(const float* query, int k) const {
    k = static_cast<int>(std::min<int64_t>(k, index_->ntotal));
    if (k <= 0) return {};
    if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index_.get()))
      return search_ivf(*ivf, query, k);
    std::vector<float> dist(static_cast<size_t>(k));
    std::vector<faiss::Index::idx_t> labels(static_cast<size_t>(k), -1);
    faiss::SearchParametersHNSW params;
    params.efSearch = std::max(options_.hnsw_ef_search, k);
    // One query needs no OpenMP team: on a busy machine the team's barriers cost more than the
    // search.
    const int team = omp_get_max_threads();
    omp_set_num_threads(1);
    try {
      index_->search(1, query, k, dist.data(), labels.data(), &params);
    } catch (const std::exception& e) {
      omp_set_num_threads(team);
      throw Error(ErrorCode::kInternal, std::string("approximate search failed: ") + e.what());
    }
    omp_set_num_threads(team);
    std::vector<int64_t> out;
    for (auto l : labels)
      if (l >= 0 && l < index_->ntotal) out.push_back(static_cast<int64_t>(l));
    return out;
  }

  void write(const std::string& path) const override {
    try {
      faiss::write_index(index_.get(), path.c_str());
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kIo, path + ": cannot write the approximate index (" + e.what() + ")");
    }
    if (node_of_row_.empty()) return;
    const std::string map = (std::filesystem::path(path).parent_path() / kRowsFile).string();
    io::write_file_atomic(map, "approximate index row map", node_of_row_.data(),
                          node_of_row_.size() * sizeof(int64_t));
  }
  std::string factory() const override { return factory_; }

 private:
  // The probe closest cells by the centroids' inner product, then every float16 row in them.
  std::vector<int64_t> search_ivf(const faiss::IndexIVF& ivf, const float* q, int k) const {
    const auto* centroids = dynamic_cast<const faiss::IndexFlat*>(ivf.quantizer);
    const int64_t d = ivf.d, lists = static_cast<int64_t>(ivf.nlist);
    std::vector<float> cs(static_cast<size_t>(lists));
    dot_rows(centroids->get_xb(), IndexDtype::kFloat32, lists, d, q, cs.data());
    std::vector<int64_t> order(static_cast<size_t>(lists));
    for (int64_t i = 0; i < lists; ++i) order[size_t(i)] = i;
    const int64_t probe = std::min<int64_t>(options_.ivf_probe, lists);
    std::partial_sort(order.begin(), order.begin() + probe, order.end(),
                      [&](int64_t a, int64_t b) { return cs[size_t(a)] > cs[size_t(b)]; });
    std::vector<std::pair<float, int64_t>> best;  // min-heap of the k best (score, id)
    auto worse = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
      return a.first > b.first;
    };
    std::vector<float> scores;
    for (int64_t p = 0; p < probe; ++p) {
      const size_t list = static_cast<size_t>(order[size_t(p)]);
      const size_t n = ivf.invlists->list_size(list);
      if (n == 0) continue;
      faiss::InvertedLists::ScopedCodes codes(ivf.invlists, list);
      faiss::InvertedLists::ScopedIds ids(ivf.invlists, list);
      scores.resize(n);
      dot_rows(codes.get(), IndexDtype::kFloat16, static_cast<int64_t>(n), d, q, scores.data());
      for (size_t i = 0; i < n; ++i) {
        if (best.size() == size_t(k) && scores[i] <= best.front().first) continue;
        best.push_back({scores[i], ids[i]});
        std::push_heap(best.begin(), best.end(), worse);
        if (best.size() > size_t(k)) {
          std::pop_heap(best.begin(), best.end(), worse);
          best.pop_back();
        }
      }
    }
    std::sort(best.begin(), best.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::vector<int64_t> out;
    for (const auto& b : best) out.push_back(b.second);
    return out;
  }

  std::unique_ptr<faiss::Index> index_;
  AnnOptions options_;
  std::string factory_;
  std::vector<int64_t> node_of_row_, first_, rows_;
};

// An IVF index this code can scan: flat centroids, float16 codes of the rows themselves.
bool scannable_ivf(const faiss::Index* index) {
  auto* sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(index);
  return sq && !sq->by_residual && sq->sq.qtype == faiss::ScalarQuantizer::QT_fp16 &&
         dynamic_cast<const faiss::IndexFlat*>(sq->quantizer) != nullptr;
}
#endif

}  // namespace

nlohmann::json ann_to_json(const AnnOptions& o, const std::string& factory, int64_t count,
                           int64_t distinct) {
  nlohmann::json j = {
      {"kind", o.kind}, {"file", "ann.faiss"}, {"factory", factory}, {"count", count}};
  if (distinct != count) {
    j["distinct"] = distinct;
    j["rows_file"] = kRowsFile;
  }
  if (o.recall >= 0) {
    j["recall_at_10"] = o.recall;
    j["recall_queries"] = o.recall_queries;
  }
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

AnnOptions ann_from_json(const nlohmann::json& j, const std::string& origin, int64_t* distinct) {
  AnnOptions o;
  *distinct = j.contains("distinct") ? j.at("distinct").get<int64_t>() : 0;
  if (*distinct != 0 && j.value("rows_file", std::string()) != kRowsFile)
    throw Error(ErrorCode::kInvalidConfig,
                origin + ": ann.rows_file must be \"" + std::string(kRowsFile) + "\"");
  if (j.contains("recall_at_10")) {
    o.recall = j.at("recall_at_10").get<double>();
    o.recall_queries = j.at("recall_queries").get<int>();
  }
  o.kind = j.at("kind").get<std::string>();
  check_kind(o.kind, origin);
  if (o.kind == "hnsw") {
    o.hnsw_m = static_cast<int>(detail::json_int(j, "hnsw_m", 0, INT32_MAX, origin + ": ann"));
    o.hnsw_ef_construction = static_cast<int>(
        detail::json_int(j, "hnsw_ef_construction", 0, INT32_MAX, origin + ": ann"));
    o.hnsw_ef_search =
        static_cast<int>(detail::json_int(j, "hnsw_ef_search", 0, INT32_MAX, origin + ": ann"));
  } else {
    o.ivf_lists =
        static_cast<int>(detail::json_int(j, "ivf_lists", 0, INT32_MAX, origin + ": ann"));
    o.ivf_probe =
        static_cast<int>(detail::json_int(j, "ivf_probe", 0, INT32_MAX, origin + ": ann"));
    o.ivf_train_rows = detail::json_int(j, "ivf_train_rows", 0, INT64_MAX, origin + ": ann");
  }
  const std::string file = j.at("file").get<std::string>();
  if (file != "ann.faiss")
    throw Error(ErrorCode::kInvalidConfig, origin + ": ann.file must be \"ann.faiss\"");
  return o;
}

#ifdef ZSCLIP_WITH_FAISS

std::shared_ptr<const AnnIndex> build_ann_index(const RowReader& rows, int64_t count, int64_t dim,
                                                AnnOptions& o) {
  check_kind(o.kind, "--ann");
  if (count < 1)
    throw Error(ErrorCode::kInvalidArgument, "approximate index: the index has no rows");
  std::string factory;
  if (o.kind == "hnsw") {
    if (o.hnsw_m < 4 || o.hnsw_m > 256 || o.hnsw_ef_construction < 8 || o.hnsw_ef_search < 1)
      throw Error(ErrorCode::kInvalidArgument,
                  "approximate index: hnsw_m must be 4-256, ef_construction >= 8, ef_search >= 1");
    factory = "HNSW" + std::to_string(o.hnsw_m) + ",Flat";
  } else {  // float16 codes of the rows (not residuals), scanned by search_ivf
    if (o.ivf_lists <= 0)
      o.ivf_lists = static_cast<int>(std::max<double>(1, std::round(std::sqrt(double(count)))));
    o.ivf_lists = static_cast<int>(std::min<int64_t>(o.ivf_lists, count));
    if (o.ivf_probe <= 0) o.ivf_probe = std::min(o.ivf_lists, std::max(8, o.ivf_lists / 16));
    if (o.ivf_train_rows <= 0)
      o.ivf_train_rows = std::min<int64_t>(count, int64_t(64) * o.ivf_lists);
    o.ivf_train_rows = std::max<int64_t>(std::min<int64_t>(o.ivf_train_rows, count), o.ivf_lists);
    factory = "IVF" + std::to_string(o.ivf_lists) + ",SQfp16";
  }
  try {
    std::unique_ptr<faiss::Index> index(
        faiss::index_factory(static_cast<int>(dim), factory.c_str(), faiss::METRIC_INNER_PRODUCT));
    if (auto* h = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
      use_fast_storage(h);
      h->hnsw.efConstruction = o.hnsw_ef_construction;
      h->hnsw.efSearch = o.hnsw_ef_search;
    }
    if (auto* sq = dynamic_cast<faiss::IndexIVFScalarQuantizer*>(index.get()))
      sq->by_residual = false;
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index.get())) {
      // Training rows spread evenly over the index (deterministic).
      const int64_t t = o.ivf_train_rows;
      std::vector<float> sample(static_cast<size_t>(t * dim));
      for (int64_t i = 0; i < t; ++i) rows(i * count / t, 1, sample.data() + i * dim);
      ivf->cp.seed = 1234;
      // FAISS warns on standard error below 39 training rows a cell; zsclip says it once in its
      // own words (ivf_sparse_training).
      ivf->cp.min_points_per_centroid = 1;
      ivf->train(t, sample.data());
      ivf->nprobe = static_cast<size_t>(o.ivf_probe);
    }
    constexpr int64_t kChunk = 65536;
    std::vector<float> buf;
    auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index.get());
    if (!hnsw) {
      for (int64_t b = 0; b < count; b += kChunk) {
        const int64_t m = std::min(kChunk, count - b);
        buf.resize(static_cast<size_t>(m * dim));
        rows(b, m, buf.data());
        index->add(m, buf.data());
      }
      return std::make_shared<FaissAnn>(std::move(index), o, factory);
    }
    // HNSW: one node per distinct vector (bitwise equal rows share one).
    std::vector<int64_t> node_of_row(static_cast<size_t>(count));
    std::unordered_multimap<size_t, int64_t> by_hash;  // hash of the bytes -> node
    std::vector<float> fresh;                          // nodes not yet added to the graph
    const size_t row_bytes = static_cast<size_t>(dim) * sizeof(float);
    for (int64_t b = 0; b < count; b += kChunk) {
      const int64_t m = std::min(kChunk, count - b);
      buf.resize(static_cast<size_t>(m * dim));
      rows(b, m, buf.data());
      const int64_t added = index->ntotal;
      const float* stored = dynamic_cast<const faiss::IndexFlat*>(hnsw->storage)->get_xb();
      fresh.clear();
      for (int64_t i = 0; i < m; ++i) {
        const float* v = buf.data() + i * dim;
        const size_t h = std::hash<std::string_view>{}(
            std::string_view(reinterpret_cast<const char*>(v), row_bytes));
        int64_t node = -1;
        for (auto [it, end] = by_hash.equal_range(h); it != end && node < 0; ++it) {
          const float* w = it->second < added ? stored + it->second * dim
                                              : fresh.data() + (it->second - added) * dim;
          if (std::memcmp(v, w, row_bytes) == 0) node = it->second;
        }
        if (node < 0) {
          node = added + static_cast<int64_t>(fresh.size()) / dim;
          fresh.insert(fresh.end(), v, v + dim);
          by_hash.emplace(h, node);
        }
        node_of_row[size_t(b + i)] = node;
      }
      if (!fresh.empty()) index->add(static_cast<int64_t>(fresh.size()) / dim, fresh.data());
    }
    if (index->ntotal == count) node_of_row.clear();
    return std::make_shared<FaissAnn>(std::move(index), o, factory, std::move(node_of_row));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, "approximate index (" + factory + "): " + e.what());
  }
}

std::shared_ptr<const AnnIndex> read_ann_index(const std::string& path, const AnnOptions& o,
                                               int64_t count, int64_t dim, int64_t distinct) {
  std::unique_ptr<faiss::Index> index;
  {
    // Opened as every other input (a FIFO or device is refused at once), read through the stream.
    io::Fd fd = io::open_regular_file(path, "approximate index",
                                      {uint64_t(1) << 40, ErrorCode::kIo}, nullptr);
    FILE* f = ::fdopen(fd.get(), "rb");
    if (!f) throw Error(ErrorCode::kIo, path + ": cannot be read (" + std::strerror(errno) + ")");
    fd.release();
    try {
      index.reset(faiss::read_index(f, faiss::IO_FLAG_READ_ONLY));
    } catch (const std::exception& e) {
      std::fclose(f);
      throw Error(ErrorCode::kInvalidConfig,
                  path + ": not a readable FAISS index (" + e.what() + ")");
    }
    std::fclose(f);
  }
  const bool mapped = distinct != 0;
  if (mapped && (o.kind != "hnsw" || distinct < 1 || distinct >= count))
    throw Error(ErrorCode::kInvalidConfig, path + ": ann.distinct " + std::to_string(distinct) +
                                               " is not a node count below the " +
                                               std::to_string(count) + " rows of an hnsw index");
  std::vector<int64_t> node_of_row;
  if (mapped) {
    const std::string map = (std::filesystem::path(path).parent_path() / kRowsFile).string();
    std::vector<uint8_t> bytes;
    io::read_file(map, "approximate index row map",
                  {uint64_t(count) * sizeof(int64_t), ErrorCode::kInvalidConfig}, &bytes);
    if (bytes.size() != uint64_t(count) * sizeof(int64_t))
      throw Error(ErrorCode::kInvalidConfig, map + ": " + std::to_string(bytes.size()) +
                                                 " bytes, not 8 for each of the " +
                                                 std::to_string(count) + " rows");
    node_of_row.resize(static_cast<size_t>(count));
    std::memcpy(node_of_row.data(), bytes.data(), bytes.size());
    std::vector<char> used(static_cast<size_t>(distinct), 0);
    for (size_t r = 0; r < node_of_row.size(); ++r) {
      if (node_of_row[r] < 0 || node_of_row[r] >= distinct)
        throw Error(ErrorCode::kInvalidConfig, map + ": row " + std::to_string(r) + " has node " +
                                                   std::to_string(node_of_row[r]) +
                                                   ", not in [0, " + std::to_string(distinct) +
                                                   ")");
      used[size_t(node_of_row[r])] = 1;
    }
    if (std::find(used.begin(), used.end(), 0) != used.end())
      throw Error(ErrorCode::kInvalidConfig, map + ": some node has no row");
  }
  const int64_t nodes = mapped ? distinct : count;
  if (index->d != dim || index->ntotal != nodes ||
      index->metric_type != faiss::METRIC_INNER_PRODUCT)
    throw Error(ErrorCode::kInvalidConfig,
                path + ": holds " + std::to_string(index->ntotal) + " vectors of dimension " +
                    std::to_string(index->d) + ", but the index has " + std::to_string(count) +
                    " rows (" + std::to_string(nodes) + " distinct) of dimension " +
                    std::to_string(dim) + " (stale or foreign file)");
  auto* h = dynamic_cast<faiss::IndexHNSWFlat*>(index.get());
  if (h) use_fast_storage(h);
  const bool hnsw = h != nullptr && dynamic_cast<FastIPStorage*>(h->storage) != nullptr;
  const bool ivf = scannable_ivf(index.get());
  if ((o.kind == "hnsw" && !hnsw) || (o.kind == "ivf" && !ivf))
    throw Error(ErrorCode::kInvalidConfig,
                path + ": is not the " + o.kind + " index that index.json describes");
  const std::string factory = o.kind == "hnsw" ? "HNSW" + std::to_string(o.hnsw_m) + ",Flat"
                                               : "IVF" + std::to_string(o.ivf_lists) + ",SQfp16";
  return std::make_shared<FaissAnn>(std::move(index), o, factory, std::move(node_of_row));
}

bool ann_built_in() { return true; }

#else

namespace {
[[noreturn]] void no_faiss(const std::string& what) {
  throw Error(ErrorCode::kUnsupported, what +
                                           ": this zsclip was built without FAISS (CMake option "
                                           "ZSCLIP_WITH_FAISS; Debian package libfaiss-dev)");
}
}  // namespace

std::shared_ptr<const AnnIndex> build_ann_index(const RowReader&, int64_t, int64_t, AnnOptions& o) {
  check_kind(o.kind, "--ann");
  no_faiss("--ann " + o.kind);
}
std::shared_ptr<const AnnIndex> read_ann_index(const std::string& path, const AnnOptions&, int64_t,
                                               int64_t, int64_t) {
  no_faiss(path + " (approximate index; search with --exact)");
}
bool ann_built_in() { return false; }

#endif

}  // namespace zsclip::index_detail

namespace zsclip {
bool ann_available() { return index_detail::ann_built_in(); }
}  // namespace zsclip
