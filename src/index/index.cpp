// EmbeddingIndex without a model: the folder format, rows, merging, exact search and
// classification.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "base/fingerprint.h"
#include "base/json_check.h"
#include "index/ann.h"
#include "index/index_impl.h"
#include "index/kernels.h"
#include "index/npy.h"
#include "zsclip/io.h"
#include "zsclip/runtime.h"
#include "zsclip/utf8.h"
#include "zsclip/version.h"

namespace zsclip {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;
using namespace index_detail;

namespace {

constexpr int kFormatVersion = 1;
constexpr const char* kFormatName = "zsclip-embedding-index";

ErrorCode code_from_name(const std::string& name, bool* ok) {
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c)
    if (name == error_code_name(static_cast<ErrorCode>(c))) {
      *ok = true;
      return static_cast<ErrorCode>(c);
    }
  *ok = false;
  return ErrorCode::kInternal;
}

// index.json and manifest.jsonl: regular files only (a FIFO or device is refused at once, never
// waited on), bounded.
std::string read_text(const std::string& path, uint64_t max_bytes) {
  return io::read_file(path, "index file", {max_bytes, ErrorCode::kInvalidConfig});
}

// The row lines this writer produces, {"row":N,"path":"...","bytes":N,"mtime":X} with no escapes in
// the path, parsed without building a JSON object (a 1,000,000-row manifest: 0.5 s instead of 3.6
// s). Anything else, including a row number out of order, is left to the JSON parser and its
// messages.
bool parse_row_line(std::string_view line, int64_t expected_row, IndexRow* row) {
  auto take = [&](std::string_view lit) {
    if (line.substr(0, lit.size()) != lit) return false;
    line.remove_prefix(lit.size());
    return true;
  };
  auto integer = [&](auto* v) {
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), *v);
    if (ec != std::errc() || p == line.data()) return false;
    line.remove_prefix(static_cast<size_t>(p - line.data()));
    return true;
  };
  int64_t r = -1;
  if (!take("{\"row\":") || !integer(&r) || r != expected_row || !take(",\"path\":\""))
    return false;
  size_t end = 0;
  while (end < line.size() && line[end] != '"') {
    if (line[end] == '\\' || static_cast<unsigned char>(line[end]) < 0x20) return false;
    ++end;
  }
  if (end == 0 || end == line.size()) return false;
  std::string path(line.substr(0, end));
  line.remove_prefix(end + 1);
  if (!take(",\"bytes\":") || !integer(&row->stamp.bytes) || !take(",\"mtime\":")) return false;
  auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), row->stamp.mtime);
  if (ec != std::errc() || std::string_view(p, size_t(line.data() + line.size() - p)) != "}" ||
      !utf8::is_valid(path))
    return false;
  row->path = std::move(path);
  return true;
}

// Best-first order: higher score, then lower row.
bool better(const SearchHit& a, const SearchHit& b) {
  return a.score > b.score || (a.score == b.score && a.row < b.row);
}

// A bounded set of the best hits seen (row and score only; paths are filled in at the end).
class TopK {
 public:
  explicit TopK(size_t k) : k_(k) { heap_.reserve(k + 1); }
  float threshold() const { return heap_.size() < k_ ? -INFINITY : heap_.front().score; }
  void push(int64_t row, float score) {
    if (heap_.size() == k_ && !better({row, {}, score}, heap_.front())) return;
    heap_.push_back({row, {}, score});
    std::push_heap(heap_.begin(), heap_.end(), better);  // worst at the front
    if (heap_.size() > k_) {
      std::pop_heap(heap_.begin(), heap_.end(), better);
      heap_.pop_back();
    }
  }
  void merge(const TopK& o) {
    for (const auto& h : o.heap_) push(h.row, h.score);
  }
  std::vector<SearchHit> sorted() && {
    std::sort(heap_.begin(), heap_.end(), better);
    return std::move(heap_);
  }

 private:
  size_t k_;
  std::vector<SearchHit> heap_;
};

void normalise_into(const float* in, int64_t d, float* out, const char* what) {
  double norm = 0;
  for (int64_t k = 0; k < d; ++k) norm += double(in[k]) * in[k];
  norm = std::sqrt(norm);
  if (!(norm > 0) || !std::isfinite(norm))
    throw Error(ErrorCode::kInvalidArgument, std::string(what) + " is zero or not finite");
  for (int64_t k = 0; k < d; ++k) out[k] = static_cast<float>(in[k] / norm);
}

std::atomic<int> g_tmp_counter{0};

// "row 5 (a.png), row 9 (b.png)" for the first few of `rows`, and how many more.
std::string describe_rows(const EmbeddingIndex& index, const std::vector<int64_t>& rows) {
  std::string s;
  for (size_t i = 0; i < rows.size() && i < 5; ++i)
    s += (i ? ", row " : "row ") + std::to_string(rows[i]) + " (" +
         index.rows()[size_t(rows[i])].path + ")";
  if (rows.size() > 5) s += " and " + std::to_string(rows.size() - 5) + " more";
  return s;
}

std::string index_name(const EmbeddingIndex& index) {
  return index.directory().empty() ? std::string("the index") : "index " + index.directory();
}

// Swaps the folder `from` into place at `to` (which exists): one renameat2(RENAME_EXCHANGE) where
// the file system has it, else two renames (a reader may then briefly find no folder).
void exchange_dirs(const fs::path& from, const fs::path& to) {
#ifdef SYS_renameat2
  if (syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(),
              2 /* RENAME_EXCHANGE */) == 0)
    return;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    throw Error(ErrorCode::kIo, "index " + to.string() + ": cannot swap in the new version (" +
                                    std::strerror(errno) + ")");
#endif
  const fs::path old = to.parent_path() / (from.filename().string() + ".old");
  std::error_code ec;
  fs::rename(to, old, ec);
  if (!ec) fs::rename(from, to, ec);
  if (ec)
    throw Error(ErrorCode::kIo,
                "index " + to.string() + ": cannot replace it (" + ec.message() + ")");
  fs::rename(old, from, ec);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

const char* index_dtype_name(IndexDtype dtype) {
  return dtype == IndexDtype::kFloat16 ? "float16" : "float32";
}

IndexDtype parse_index_dtype(const std::string& name) {
  if (name == "float16") return IndexDtype::kFloat16;
  if (name == "float32") return IndexDtype::kFloat32;
  throw Error(ErrorCode::kInvalidArgument,
              "index dtype \"" + name + "\" is neither float32 nor float16");
}

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    throw Error(error_code_from_errno(e), path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kInvalidImage, path + ": not a regular file");
  return {static_cast<uint64_t>(st.st_size),
          double(st.st_mtim.tv_sec) + double(st.st_mtim.tv_nsec) * 1e-9};
}

namespace index_detail {
std::string canonical_path(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  if (ec) return path;
  p = p.lexically_normal();
  fs::path real = fs::weakly_canonical(p, ec);
  return (ec ? p : real).string();
}
}  // namespace index_detail

bool path_in_shard(const std::string& path, int k, int n) {
  if (n < 1 || k < 0 || k >= n)
    throw Error(ErrorCode::kInvalidArgument,
                "shard " + std::to_string(k) + "/" + std::to_string(n) + ": need 0 <= K < N");
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : path) h = (h ^ c) * 1099511628211ull;
  return h % static_cast<uint64_t>(n) == static_cast<uint64_t>(k);
}

// ---------------------------------------------------------------------------------------------
// Impl

void EmbeddingIndex::Impl::freeze_tail() {
  if (tail_rows == 0) return;
  auto owner = std::make_shared<std::vector<uint8_t>>(std::move(tail));
  spans.push_back({owner, owner->data(), dtype, tail_rows});
  tail = {};
  tail_rows = 0;
}

std::vector<Span> EmbeddingIndex::Impl::all_spans() const {
  std::vector<Span> out = spans;
  if (tail_rows > 0) out.push_back({nullptr, tail.data(), dtype, tail_rows});
  return out;
}

const uint8_t* EmbeddingIndex::Impl::row_ptr(int64_t i, IndexDtype* dt) const {
  for (const Span& s : spans) {
    if (i < s.count) {
      *dt = s.dtype;
      return s.data + static_cast<size_t>(i * dim) * dtype_size(s.dtype);
    }
    i -= s.count;
  }
  *dt = dtype;
  return tail.data() + static_cast<size_t>(i * dim) * dtype_size(dtype);
}

void EmbeddingIndex::Impl::read_rows(int64_t begin, int64_t n, float* out) const {
  int64_t skip = begin;
  for (const Span& s : all_spans()) {
    if (n == 0) break;
    if (skip >= s.count) {
      skip -= s.count;
      continue;
    }
    const int64_t take = std::min(n, s.count - skip);
    widen(s.data + static_cast<size_t>(skip * dim) * dtype_size(s.dtype), s.dtype, take * dim, out);
    out += take * dim;
    n -= take;
    skip = 0;
  }
}

const std::unordered_map<std::string, int64_t>& EmbeddingIndex::Impl::path_map() const {
  std::lock_guard<std::mutex> lock(path_mu);
  if (!path_map_ready) {
    row_of.clear();
    row_of.reserve(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) row_of.emplace(rows[i].path, static_cast<int64_t>(i));
    path_map_ready = true;
  }
  return row_of;
}

void EmbeddingIndex::Impl::drop_rows(const std::vector<int64_t>& sorted_rows) {
  if (sorted_rows.empty()) return;
  freeze_tail();
  std::vector<Span> kept;
  std::vector<IndexRow> kept_rows;
  kept_rows.reserve(rows.size() - sorted_rows.size());
  size_t next = 0;
  int64_t row0 = 0;
  for (const Span& s : spans) {
    int64_t run = 0;  // start of the current kept run within s
    for (int64_t i = 0; i < s.count; ++i) {
      if (next < sorted_rows.size() && sorted_rows[next] == row0 + i) {
        ++next;
        if (i > run)
          kept.push_back(
              {s.owner, s.data + size_t(run * dim) * dtype_size(s.dtype), s.dtype, i - run});
        run = i + 1;
      } else {
        kept_rows.push_back(std::move(rows[static_cast<size_t>(row0 + i)]));
      }
    }
    if (s.count > run)
      kept.push_back(
          {s.owner, s.data + size_t(run * dim) * dtype_size(s.dtype), s.dtype, s.count - run});
    row0 += s.count;
  }
  spans = std::move(kept);
  rows = std::move(kept_rows);
  invalidate();
}

void EmbeddingIndex::Impl::invalidate() {
  {
    std::lock_guard<std::mutex> lock(path_mu);
    path_map_ready = false;
    row_of.clear();
  }
  ann.reset();
  ann_loaded = false;
  ann_file.clear();
  has_ann_json = false;
  ann_distinct = 0;
  std::lock_guard<std::mutex> lock(bad_mu);
  bad_known = false;
  bad_rows.clear();
}

std::vector<SearchHit> EmbeddingIndex::Impl::ann_search(const AnnIndex& approx, const float* q,
                                                        size_t k, int candidates) const {
  TopK top(k);
  for (int64_t r : approx.search(q, candidates)) {
    if (r < 0 || r >= static_cast<int64_t>(rows.size())) continue;
    IndexDtype dt;
    const uint8_t* p = row_ptr(r, &dt);
    float s;
    dot_rows(p, dt, 1, dim, q, &s);
    if (std::isfinite(s)) top.push(r, s);
  }
  return std::move(top).sorted();
}

std::shared_ptr<const AnnIndex> EmbeddingIndex::Impl::ann_index() const {
  std::lock_guard<std::mutex> lock(ann_mu);
  if (!ann_loaded && has_ann_json && ann_built_in()) {  // without FAISS: exact search
    ann =
        read_ann_index(ann_file, ann_options, static_cast<int64_t>(rows.size()), dim, ann_distinct);
    ann_loaded = true;
  }
  return ann;
}

// ---------------------------------------------------------------------------------------------
// Construction, opening, saving

EmbeddingIndex::EmbeddingIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbeddingIndex::EmbeddingIndex(EmbeddingIndex&&) noexcept = default;
EmbeddingIndex& EmbeddingIndex::operator=(EmbeddingIndex&&) noexcept = default;
EmbeddingIndex::~EmbeddingIndex() = default;
EmbeddingIndex::EmbeddingIndex(const EmbeddingIndex& o) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  const Impl& s = *o.impl_;
  d.fingerprint = s.fingerprint;
  d.model_name = s.model_name;
  d.directory = s.directory;
  d.dim = s.dim;
  d.dtype = s.dtype;
  d.rows = s.rows;
  d.failures = s.failures;
  d.spans = s.spans;
  d.tail = s.tail;
  d.tail_rows = s.tail_rows;
  d.ann_options = s.ann_options;
  d.has_ann_json = s.has_ann_json;
  d.ann_file = s.ann_file;
  d.ann_distinct = s.ann_distinct;
  {
    std::lock_guard<std::mutex> lock(s.bad_mu);
    d.bad_known = s.bad_known;
    d.bad_rows = s.bad_rows;
  }
  std::lock_guard<std::mutex> lock(s.ann_mu);
  d.ann = s.ann;
  d.ann_loaded = s.ann_loaded;
}

EmbeddingIndex EmbeddingIndex::create(const std::string& model_fingerprint, int64_t dim,
                                      IndexDtype dtype, const std::string& model_name) {
  if (dim < 1 || dim > (1 << 20))
    throw Error(ErrorCode::kInvalidArgument,
                "index: dimension " + std::to_string(dim) + " is out of range");
  if (model_fingerprint.empty())
    throw Error(ErrorCode::kInvalidModel,
                "index: the model" + (model_name.empty() ? "" : " \"" + model_name + "\"") +
                    " has no fingerprint (its config.json lacks \"fingerprint\"), so the index "
                    "could never be matched to it; export the model again with "
                    "models/export_clip.py, which records one");
  auto impl = std::make_unique<Impl>();
  impl->fingerprint = model_fingerprint;
  impl->model_name = model_name;
  impl->dim = dim;
  impl->dtype = dtype;
  return EmbeddingIndex(std::move(impl));
}

bool EmbeddingIndex::exists(const std::string& dir) {
  std::error_code ec;
  // Any entry named index.json counts (a FIFO too, which open() then refuses by name).
  return fs::exists(fs::symlink_status(fs::path(dir) / "index.json", ec));
}

EmbeddingIndex EmbeddingIndex::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(fs::exists(dir, ec) ? ErrorCode::kInvalidArgument : ErrorCode::kNotFound,
                "index " + dir + (fs::exists(dir, ec) ? " is not a folder" : " does not exist"));
  const std::string meta_path = (fs::path(dir) / "index.json").string();
  if (!fs::exists(fs::symlink_status(meta_path, ec)))
    throw Error(ErrorCode::kNotFound,
                "index " + dir + ": no index.json (not a zsclip index folder)");
  auto impl = std::make_unique<Impl>();
  Impl& x = *impl;
  x.directory = dir;
  int64_t count = 0, failed = -1;
  json meta;
  try {
    meta = json::parse(read_text(meta_path, uint64_t(1) << 24));
    if (!meta.is_object())
      throw Error(ErrorCode::kInvalidConfig, meta_path + ": not a JSON object");
    if (meta.value("format", std::string()) != kFormatName)
      throw Error(ErrorCode::kInvalidConfig,
                  meta_path + ": field 'format' is not \"" + kFormatName + "\"");
    const int64_t fv = detail::json_int(meta, "format_version", INT64_MIN, INT64_MAX, meta_path);
    if (fv > kFormatVersion || fv < 1)
      throw Error(ErrorCode::kUnsupported, meta_path + ": format_version " + std::to_string(fv) +
                                               " is not one this zsclip reads (1)");
    x.fingerprint = meta.at("model_fingerprint").get<std::string>();
    x.model_name = meta.value("model_name", std::string());
    x.dim = detail::json_int(meta, "dim", INT64_MIN, INT64_MAX, meta_path);
    x.dtype = parse_index_dtype(meta.at("dtype").get<std::string>());
    count = detail::json_int(meta, "count", INT64_MIN, INT64_MAX, meta_path);
    if (meta.contains("failed"))
      failed = detail::json_int(meta, "failed", INT64_MIN, INT64_MAX, meta_path);
    if (meta.contains("ann") && !meta["ann"].is_null()) {
      x.ann_options = ann_from_json(meta["ann"], meta_path, &x.ann_distinct);
      x.ann_file = (fs::path(dir) / meta["ann"].at("file").get<std::string>()).string();
      x.has_ann_json = true;
      if (detail::json_int(meta["ann"], "count", INT64_MIN, INT64_MAX, meta_path + ": ann") !=
          count)
        throw Error(ErrorCode::kInvalidConfig, meta_path + ": ann.count " +
                                                   meta["ann"]["count"].dump() +
                                                   " differs from count " + std::to_string(count));
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidConfig, meta_path + ": malformed (" + e.what() + ")");
  } catch (const Error& e) {
    if (std::string(e.what()).rfind(meta_path, 0) == 0) throw;
    throw Error(e.code(), meta_path + ": " + e.what());
  }
  if (x.dim < 1 || x.dim > (1 << 20) || count < 0)
    throw Error(ErrorCode::kInvalidConfig, meta_path + ": dim " + std::to_string(x.dim) +
                                               " or count " + std::to_string(count) +
                                               " out of range");

  // embeddings.npy: mapped, header checked against index.json.
  const std::string npy_path = (fs::path(dir) / "embeddings.npy").string();
  auto mapped = MappedFile::open(npy_path);
  const NpyHeader h = parse_npy(mapped->data(), mapped->size(), npy_path);
  if (h.dtype != x.dtype)
    throw Error(ErrorCode::kInvalidConfig, npy_path + ": dtype " + index_dtype_name(h.dtype) +
                                               " but index.json says " + index_dtype_name(x.dtype));
  if (h.cols != x.dim || h.rows != count)
    throw Error(ErrorCode::kInvalidConfig,
                npy_path + ": shape (" + std::to_string(h.rows) + ", " + std::to_string(h.cols) +
                    ") but index.json says count " + std::to_string(count) + ", dim " +
                    std::to_string(x.dim));
  if (h.rows > 0) {
    const uint8_t* data = mapped->data() + h.data_offset;
    std::shared_ptr<const void> owner = mapped;
    if (h.data_offset % dtype_size(h.dtype) != 0) {  // an odd header length: copy to aligned memory
      auto copy =
          std::make_shared<std::vector<uint8_t>>(data, data + (mapped->size() - h.data_offset));
      data = copy->data();
      owner = copy;
    }
    x.spans.push_back({owner, data, h.dtype, h.rows});
  }

  // manifest.jsonl: rows in order, failures anywhere.
  const std::string man_path = (fs::path(dir) / "manifest.jsonl").string();
  const std::string text = read_text(man_path, uint64_t(1) << 36);
  x.rows.reserve(static_cast<size_t>(count));
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    auto fail = [&](const std::string& why) {
      return Error(ErrorCode::kInvalidConfig,
                   man_path + ": line " + std::to_string(line_no) + " " + why);
    };
    if (IndexRow row; parse_row_line(line, static_cast<int64_t>(x.rows.size()), &row)) {
      x.rows.push_back(std::move(row));
      continue;
    }
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      throw fail("is not valid JSON" + std::string(end == text.size() ? " (truncated file?)" : ""));
    }
    try {
      if (!j.is_object()) throw fail("is not a JSON object");
      if (j.contains("row")) {
        const int64_t r = j.at("row").get<int64_t>();
        if (r != static_cast<int64_t>(x.rows.size()))
          throw fail("has row " + std::to_string(r) + ", expected " +
                     std::to_string(x.rows.size()) + " (rows must be in order)");
        IndexRow row;
        row.path = j.at("path").get<std::string>();
        row.stamp.bytes = j.at("bytes").get<uint64_t>();
        row.stamp.mtime = j.at("mtime").get<double>();
        if (row.path.empty()) throw fail("has an empty path");
        x.rows.push_back(std::move(row));
      } else if (j.contains("error")) {
        IndexFailure f;
        f.path = j.at("path").get<std::string>();
        f.error = j.at("error").get<std::string>();
        bool ok = false;
        f.code = code_from_name(j.value("code", std::string("internal")), &ok);
        if (!ok) throw fail("has an unknown error code " + j["code"].dump());
        x.failures.push_back(std::move(f));
      } else {
        throw fail("has neither \"row\" nor \"error\"");
      }
    } catch (const json::exception& e) {
      throw fail("is malformed (" + std::string(e.what()) + ")");
    }
  }
  if (static_cast<int64_t>(x.rows.size()) != count)
    throw Error(ErrorCode::kInvalidConfig, man_path + ": " + std::to_string(x.rows.size()) +
                                               " rows, but index.json and embeddings.npy have " +
                                               std::to_string(count) +
                                               " (truncated or from another index)");
  if (failed >= 0 && static_cast<int64_t>(x.failures.size()) != failed)
    throw Error(ErrorCode::kInvalidConfig, man_path + ": " + std::to_string(x.failures.size()) +
                                               " failure lines, but index.json says " +
                                               std::to_string(failed));
  {  // Duplicate paths, found by sorting hashes (the path -> row map is built only when needed).
    std::vector<std::pair<size_t, int64_t>> h(x.rows.size());
    for (size_t i = 0; i < x.rows.size(); ++i)
      h[i] = {std::hash<std::string>{}(x.rows[i].path), int64_t(i)};
    std::sort(h.begin(), h.end());
    for (size_t b = 0, e = 0; b < h.size(); b = e) {
      for (e = b + 1; e < h.size() && h[e].first == h[b].first;) ++e;
      for (size_t i = b; i < e; ++i)
        for (size_t j = i + 1; j < e; ++j)
          if (x.rows[size_t(h[i].second)].path == x.rows[size_t(h[j].second)].path)
            throw Error(ErrorCode::kInvalidConfig,
                        man_path + ": path \"" + x.rows[size_t(h[i].second)].path +
                            "\" appears at rows " + std::to_string(h[i].second) + " and " +
                            std::to_string(h[j].second));
    }
  }
  return EmbeddingIndex(std::move(impl));
}

void EmbeddingIndex::save(const std::string& dir) const {
  const Impl& x = *impl_;
  fs::path target = fs::absolute(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  // Through symbolic links: the real folder is replaced, and a link to it stays a link.
  if (fs::path real = fs::weakly_canonical(target, ec); !ec) target = real;
  const fs::path parent = target.parent_path();
  fs::create_directories(parent, ec);
  if (fs::exists(target, ec)) {
    if (!fs::is_directory(target, ec))
      throw Error(ErrorCode::kInvalidArgument, "index " + dir + " exists and is not a folder");
    bool empty = true;  // but for the build lock
    for (const auto& e : fs::directory_iterator(target, ec))
      if (e.path().filename() != kLockFile) empty = false;
    if (!empty && !exists(target.string()))
      throw Error(ErrorCode::kInvalidArgument,
                  "index " + dir +
                      " exists, is not empty and is not a zsclip index "
                      "(no index.json); refusing to replace it");
  }
  const fs::path tmp = parent / ("." + target.filename().string() + ".tmp-" +
                                 std::to_string(getpid()) + "-" + std::to_string(g_tmp_counter++));
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec))
    throw Error(ErrorCode::kIo,
                "index " + dir + ": cannot create " + tmp.string() + " (" + ec.message() + ")");
  const std::string written = "index " + dir + ": file";  // errors name the index and the file
  try {
    const int64_t n = size();
    {  // embeddings.npy, streamed span by span (rows widened or narrowed where dtypes differ)
      io::FileWriter out((tmp / "embeddings.npy").string(), written);
      out.write(npy_header(x.dtype, n, x.dim));
      std::vector<float> wide;
      std::vector<uint16_t> narrow;
      for (const Span& s : x.all_spans()) {
        const size_t item = dtype_size(s.dtype);
        if (s.dtype == x.dtype) {
          out.write(s.data, size_t(s.count * x.dim) * item);
          continue;
        }
        constexpr int64_t kChunk = 4096;
        for (int64_t r = 0; r < s.count; r += kChunk) {
          const int64_t m = std::min(kChunk, s.count - r) * x.dim;
          wide.resize(static_cast<size_t>(m));
          widen(s.data + size_t(r * x.dim) * item, s.dtype, m, wide.data());
          if (x.dtype == IndexDtype::kFloat32) {
            out.write(wide.data(), size_t(m) * 4);
          } else {
            narrow.resize(static_cast<size_t>(m));
            narrow_to_half(wide.data(), m, narrow.data());
            out.write(narrow.data(), size_t(m) * 2);
          }
        }
      }
      out.close();
    }
    {
      io::FileWriter out((tmp / "manifest.jsonl").string(), written);
      for (size_t i = 0; i < x.rows.size(); ++i) {
        ordered_json j = {{"row", i},
                          {"path", x.rows[i].path},
                          {"bytes", x.rows[i].stamp.bytes},
                          {"mtime", x.rows[i].stamp.mtime}};
        out.write(j.dump() + '\n');
      }
      for (const auto& f : x.failures) {
        ordered_json j = {{"path", f.path}, {"error", f.error}, {"code", error_code_name(f.code)}};
        out.write(j.dump(-1, ' ', false, json::error_handler_t::replace) + '\n');
      }
      out.close();
    }
    ordered_json meta = {{"format", kFormatName},
                         {"format_version", kFormatVersion},
                         {"model_fingerprint", x.fingerprint},
                         {"model_name", x.model_name},
                         {"dim", x.dim},
                         {"dtype", index_dtype_name(x.dtype)},
                         {"count", n},
                         {"failed", x.failures.size()},
                         {"ann", nullptr},
                         {"written_by", std::string("zsclip ") + version()}};
    if (auto ann = x.ann_index()) {
      ann->write((tmp / "ann.faiss").string());
      meta["ann"] = ann_to_json(x.ann_options, ann->factory(), n, ann->distinct());
    }
    io::FileWriter out((tmp / "index.json").string(), written);
    out.write(meta.dump(2) + '\n');
    out.close();
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (!fs::exists(target, ec)) {
    fs::rename(tmp, target, ec);
    if (ec) {
      fs::remove_all(tmp, ec);
      throw Error(ErrorCode::kIo, "index " + dir + ": cannot move the new index into place");
    }
    return;
  }
  try {
    const fs::path lock = target / kLockFile;
    if (::link(lock.c_str(), (tmp / kLockFile).c_str()) != 0 && errno != ENOENT)
      throw Error(ErrorCode::kIo, "index " + dir + ": cannot carry the build lock " +
                                      lock.string() + " into the new version (" +
                                      std::strerror(errno) + ")");
    exchange_dirs(tmp, target);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  fs::remove_all(tmp, ec);  // the old version
}

// ---------------------------------------------------------------------------------------------
// Adding and merging

void EmbeddingIndex::add(const IndexRow& row, const float* features) {
  Impl& x = *impl_;
  if (row.path.empty()) throw Error(ErrorCode::kInvalidArgument, "index: a row needs a path");
  if (!utf8::is_valid(row.path))
    throw Error(
        ErrorCode::kInvalidArgument,
        "index: path \"" + row.path + "\" is not valid UTF-8 (manifest.jsonl is UTF-8 JSON)");
  if (find(row.path) >= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "index: path " + row.path + " is already in the index");
  std::vector<float> v(static_cast<size_t>(x.dim));
  normalise_into(features, x.dim, v.data(), ("index: features of " + row.path).c_str());
  const size_t item = dtype_size(x.dtype), old = x.tail.size();
  x.tail.resize(old + static_cast<size_t>(x.dim) * item);
  if (x.dtype == IndexDtype::kFloat32)
    std::memcpy(x.tail.data() + old, v.data(), v.size() * 4);
  else
    narrow_to_half(v.data(), x.dim, reinterpret_cast<uint16_t*>(x.tail.data() + old));
  ++x.tail_rows;
  x.rows.push_back(row);
  {
    std::lock_guard<std::mutex> lock(x.path_mu);
    if (x.path_map_ready) x.row_of.emplace(row.path, static_cast<int64_t>(x.rows.size()) - 1);
  }
  x.ann.reset();
  x.ann_loaded = false;
  x.has_ann_json = false;
}

void EmbeddingIndex::add_failure(IndexFailure failure) {
  impl_->failures.push_back(std::move(failure));
}

void EmbeddingIndex::merge_from(const EmbeddingIndex& other, bool replace) {
  Impl& x = *impl_;
  const Impl& o = *other.impl_;
  const std::string name = o.directory.empty() ? "the other index" : "index " + o.directory;
  if (!detail::fingerprints_match(o.fingerprint, x.fingerprint))
    throw Error(ErrorCode::kInvalidModel,
                name + " was built with the model of " +
                    detail::describe_fingerprint(o.fingerprint) + ", not " +
                    detail::describe_fingerprint(x.fingerprint) + " (" +
                    (x.directory.empty() ? std::string("this index") : x.directory) +
                    "); an empty fingerprint matches none");
  if (o.dim != x.dim)
    throw Error(ErrorCode::kInvalidModel, name + " has dimension " + std::to_string(o.dim) +
                                              ", not " + std::to_string(x.dim));
  const auto& mine = x.path_map();
  std::vector<int64_t> drop;
  for (const auto& r : o.rows)
    if (auto it = mine.find(r.path); it != mine.end()) {
      if (!replace)
        throw Error(ErrorCode::kInvalidArgument,
                    name + ": path " + r.path + " is already at row " + std::to_string(it->second) +
                        " of " +
                        (x.directory.empty() ? std::string("the merged index") : x.directory) +
                        " (duplicate paths)");
      drop.push_back(it->second);
    }
  std::unordered_map<std::string, int> incoming;
  for (const auto& r : o.rows) incoming[r.path] = 1;
  for (const auto& f : o.failures) {
    if (auto it = mine.find(f.path); it != mine.end()) {
      if (!replace)
        throw Error(ErrorCode::kInvalidArgument,
                    name + ": path " + f.path + " failed there but has a row here");
      drop.push_back(it->second);
    }
    incoming[f.path] = 1;
  }
  if (replace) {
    x.failures.erase(
        std::remove_if(x.failures.begin(), x.failures.end(),
                       [&](const IndexFailure& f) { return incoming.count(f.path) > 0; }),
        x.failures.end());
  }
  std::sort(drop.begin(), drop.end());
  drop.erase(std::unique(drop.begin(), drop.end()), drop.end());
  x.drop_rows(drop);
  x.freeze_tail();
  for (const Span& s : o.all_spans()) {
    if (s.owner) {
      x.spans.push_back(s);
    } else {  // the other's unshared tail: copy it
      auto copy = std::make_shared<std::vector<uint8_t>>(
          s.data, s.data + size_t(s.count * o.dim) * dtype_size(s.dtype));
      x.spans.push_back({copy, copy->data(), s.dtype, s.count});
    }
  }
  x.rows.insert(x.rows.end(), o.rows.begin(), o.rows.end());
  x.failures.insert(x.failures.end(), o.failures.begin(), o.failures.end());
  x.invalidate();
}

EmbeddingIndex merge_indexes(const std::vector<std::string>& shard_dirs) {
  if (shard_dirs.empty()) throw Error(ErrorCode::kInvalidArgument, "index merge: no shard given");
  std::vector<EmbeddingIndex> shards;
  // canonical path -> (shard, path as written), to name both in an error
  std::unordered_map<std::string, std::pair<size_t, std::string>> owner;
  for (size_t i = 0; i < shard_dirs.size(); ++i) {
    shards.push_back(EmbeddingIndex::open(shard_dirs[i]));
    shards.back().check_finite("index merge");
    auto note = [&](const std::string& path) {
      auto [it, fresh] = owner.emplace(canonical_path(path), std::make_pair(i, path));
      if (!fresh)
        throw Error(
            ErrorCode::kInvalidArgument,
            "index merge: path " + path + " is in both " + shard_dirs[it->second.first] + " and " +
                shard_dirs[i] +
                (it->second.second == path ? std::string()
                                           : " (in " + shard_dirs[it->second.first] + " as " +
                                                 it->second.second + ": the same file)") +
                " (duplicate paths)");
    };
    for (const auto& r : shards.back().rows()) note(r.path);
    for (const auto& f : shards.back().failures()) note(f.path);
  }
  const EmbeddingIndex& first = shards[0];
  EmbeddingIndex out = EmbeddingIndex::create(first.model_fingerprint(), first.dim(), first.dtype(),
                                              first.model_name());
  for (const auto& s : shards) out.merge_from(s, false);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Accessors

const std::string& EmbeddingIndex::model_fingerprint() const { return impl_->fingerprint; }
const std::string& EmbeddingIndex::model_name() const { return impl_->model_name; }
int64_t EmbeddingIndex::dim() const { return impl_->dim; }
IndexDtype EmbeddingIndex::dtype() const { return impl_->dtype; }
int64_t EmbeddingIndex::size() const { return static_cast<int64_t>(impl_->rows.size()); }
const std::vector<IndexRow>& EmbeddingIndex::rows() const { return impl_->rows; }
const std::vector<IndexFailure>& EmbeddingIndex::failures() const { return impl_->failures; }
const std::string& EmbeddingIndex::directory() const { return impl_->directory; }

int64_t EmbeddingIndex::find(const std::string& path) const {
  const auto& m = impl_->path_map();
  auto it = m.find(path);
  return it == m.end() ? -1 : it->second;
}

void EmbeddingIndex::row(int64_t i, float* out) const {
  if (i < 0 || i >= size())
    throw Error(ErrorCode::kInvalidArgument, "index: row " + std::to_string(i) + " out of range (" +
                                                 std::to_string(size()) + " rows)");
  impl_->read_rows(i, 1, out);
}

std::vector<float> EmbeddingIndex::row(int64_t i) const {
  std::vector<float> v(static_cast<size_t>(dim()));
  row(i, v.data());
  return v;
}

void EmbeddingIndex::check_compatible(const ZeroShotHead& head, const std::string& origin) const {
  const std::string where = impl_->directory.empty() ? "the index" : "index " + impl_->directory;
  if (head.embed_dim() != dim())
    throw Error(ErrorCode::kInvalidModel,
                origin + ": embed_dim " + std::to_string(head.embed_dim()) + " does not match " +
                    where + " (dim " + std::to_string(dim()) + ")");
  if (!detail::fingerprints_match(head.model_fingerprint(), model_fingerprint()))
    throw Error(ErrorCode::kInvalidModel,
                origin + ": built for the model with " +
                    detail::describe_fingerprint(head.model_fingerprint()) + ", but " + where +
                    " holds features of the model with " +
                    detail::describe_fingerprint(model_fingerprint()) +
                    " (an empty fingerprint matches none)");
}

// ---------------------------------------------------------------------------------------------
// Search

std::vector<std::vector<SearchHit>> EmbeddingIndex::search(const FloatTensor& queries, int top_k,
                                                           const SearchOptions& options) const {
  const Impl& x = *impl_;
  if (queries.dim() != 2 || queries.size(1) != x.dim)
    throw Error(ErrorCode::kInvalidArgument,
                "index search: queries must be [Q, " + std::to_string(x.dim) + "]");
  if (top_k < 1) throw Error(ErrorCode::kInvalidArgument, "index search: top_k must be >= 1");
  const int64_t nq = queries.size(0), n = size(), d = x.dim;
  std::vector<float> q(static_cast<size_t>(nq * d));
  for (int64_t j = 0; j < nq; ++j)
    normalise_into(queries.row(j), d, q.data() + j * d, "index search: query");
  std::vector<std::vector<SearchHit>> results(static_cast<size_t>(nq));
  if (nq == 0 || n == 0) return results;
  const size_t k = static_cast<size_t>(std::min<int64_t>(top_k, n));

  std::shared_ptr<const AnnIndex> ann = options.exact ? nullptr : x.ann_index();
  if (ann) {
    const int cand = options.ann_candidates > 0 ? options.ann_candidates : std::max(4 * top_k, 64);
    for (int64_t j = 0; j < nq; ++j)
      results[size_t(j)] = x.ann_search(*ann, q.data() + j * d, k, cand);
  } else {
    // Exact: the rows are cut into one contiguous range per part, run on the runtime's threads;
    // each part keeps its own top-k.
    const std::shared_ptr<Runtime> runtime = Runtime::or_default(options.runtime);
    int threads = options.threads > 0 ? options.threads : runtime->threads();
    const int64_t work = n * d * std::max<int64_t>(1, nq);
    threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, work / (1 << 19))));
    const auto spans = x.all_spans();
    std::vector<std::vector<TopK>> tops(static_cast<size_t>(threads),
                                        std::vector<TopK>(size_t(nq), TopK(k)));
    // Rows whose score is not finite hold NaN or Inf: left out, and remembered (nonfinite_rows).
    std::vector<std::vector<int64_t>> bad(static_cast<size_t>(threads));
    runtime->parallel_for(threads, [&](int64_t t) {
      const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      constexpr int64_t kBlock = 1024;
      std::vector<float> scores(static_cast<size_t>(kBlock * nq));
      auto& mine = tops[size_t(t)];
      int64_t row0 = 0;
      for (const Span& s : spans) {
        const int64_t lo = std::max(begin, row0), hi = std::min(end, row0 + s.count);
        for (int64_t r = lo; r < hi; r += kBlock) {
          const int64_t m = std::min(kBlock, hi - r);
          const uint8_t* p = s.data + size_t((r - row0) * d) * dtype_size(s.dtype);
          if (nq == 1)
            dot_rows(p, s.dtype, m, d, q.data(), scores.data());
          else
            dot_rows_multi(p, s.dtype, m, d, q.data(), nq, scores.data());
          for (int64_t i = 0; i < m; ++i)
            if (!std::isfinite(scores[size_t(i * nq)])) bad[size_t(t)].push_back(r + i);
          for (int64_t j = 0; j < nq; ++j) {
            TopK& top = mine[size_t(j)];
            float thr = top.threshold();
            for (int64_t i = 0; i < m; ++i) {
              const float sc = scores[size_t(i * nq + j)];
              if (sc >= thr && std::isfinite(sc)) {
                top.push(r + i, sc);
                thr = top.threshold();
              }
            }
          }
        }
        row0 += s.count;
      }
    });
    {
      std::lock_guard<std::mutex> lock(x.bad_mu);
      if (!x.bad_known) {
        x.bad_rows.clear();
        for (const auto& b : bad) x.bad_rows.insert(x.bad_rows.end(), b.begin(), b.end());
        std::sort(x.bad_rows.begin(), x.bad_rows.end());
        x.bad_known = true;
      }
    }
    for (int64_t j = 0; j < nq; ++j) {
      for (int t = 1; t < threads; ++t) tops[0][size_t(j)].merge(tops[size_t(t)][size_t(j)]);
      results[size_t(j)] = std::move(tops[0][size_t(j)]).sorted();
    }
  }
  for (auto& hits : results)
    for (auto& h : hits) h.path = x.rows[size_t(h.row)].path;
  return results;
}

std::vector<SearchHit> EmbeddingIndex::search(const float* query, int top_k,
                                              const SearchOptions& options) const {
  FloatTensor q({1, dim()}, std::vector<float>(query, query + dim()));
  return std::move(search(q, top_k, options)[0]);
}

std::vector<Classification> EmbeddingIndex::classify(const ZeroShotHead& head, int top_k) const {
  std::vector<Classification> out;
  out.reserve(static_cast<size_t>(size()) + impl_->failures.size());
  classify(head, top_k, [&](const Classification* results, size_t n) {
    out.insert(out.end(), results, results + n);
  });
  return out;
}

void EmbeddingIndex::classify(
    const ZeroShotHead& head, int top_k,
    const std::function<void(const Classification* results, size_t n)>& on_results) const {
  check_compatible(head);
  const int64_t n = size(), d = dim();
  constexpr int64_t kBlock = 256;
  std::vector<Classification> block;
  for (int64_t r = 0; r < n; r += kBlock) {
    const int64_t m = std::min(kBlock, n - r);
    FloatTensor feats({m, d});
    impl_->read_rows(r, m, feats.ptr());
    // A row holding NaN or Inf fails alone; the others are classified.
    block.clear();
    std::vector<char> finite(static_cast<size_t>(m), 1);
    int64_t good = 0;
    for (int64_t i = 0; i < m; ++i) {
      const float* f = feats.ptr() + i * d;
      for (int64_t k = 0; k < d && finite[size_t(i)]; ++k) finite[size_t(i)] = std::isfinite(f[k]);
      if (finite[size_t(i)]) {
        if (good != i) std::copy_n(f, d, feats.ptr() + good * d);
        ++good;
      }
    }
    std::vector<Prediction> preds;
    if (good > 0) {
      FloatTensor kept({good, d}, std::vector<float>(feats.ptr(), feats.ptr() + good * d));
      preds = head.classify(kept, top_k);
    }
    for (int64_t i = 0, g = 0; i < m; ++i) {
      Classification c;
      c.source = impl_->rows[size_t(r + i)].path;
      if (finite[size_t(i)]) {
        c.top = std::move(preds[size_t(g)].top);
        c.probs = std::move(preds[size_t(g)].probs);
        ++g;
      } else {
        c.ok = false;
        c.code = ErrorCode::kInvalidConfig;
        c.error = index_name(*this) + ": row " + std::to_string(r + i) + " (" + c.source +
                  ") holds NaN or Inf values; `zsclip index build` with this image embeds it again";
      }
      block.push_back(std::move(c));
    }
    on_results(block.data(), block.size());
  }
  block.clear();
  for (const auto& f : impl_->failures) {
    Classification c;
    c.source = f.path;
    c.ok = false;
    c.code = f.code;
    c.error = f.error;
    block.push_back(std::move(c));
  }
  if (!block.empty()) on_results(block.data(), block.size());
}

// ---------------------------------------------------------------------------------------------
// ANN

std::vector<int64_t> EmbeddingIndex::nonfinite_rows() const {
  const Impl& x = *impl_;
  {
    std::lock_guard<std::mutex> lock(x.bad_mu);
    if (x.bad_known) return x.bad_rows;
  }
  std::vector<int64_t> bad;
  constexpr int64_t kBlock = 4096;
  std::vector<float> buf;
  const int64_t n = size(), d = x.dim;
  for (int64_t r = 0; r < n; r += kBlock) {
    const int64_t m = std::min(kBlock, n - r);
    buf.resize(static_cast<size_t>(m * d));
    x.read_rows(r, m, buf.data());
    for (int64_t i = 0; i < m; ++i)
      if (!std::all_of(buf.begin() + i * d, buf.begin() + (i + 1) * d,
                       [](float v) { return std::isfinite(v); }))
        bad.push_back(r + i);
  }
  std::lock_guard<std::mutex> lock(x.bad_mu);
  x.bad_known = true;
  x.bad_rows = bad;
  return bad;
}

std::string EmbeddingIndex::nonfinite_report() const {
  const std::vector<int64_t> bad = nonfinite_rows();
  if (bad.empty()) return "";
  return index_name(*this) + ": " + std::to_string(bad.size()) +
         " row(s) hold NaN or Inf values: " + describe_rows(*this, bad) +
         " (`zsclip index build` with those images embeds them again)";
}

void EmbeddingIndex::check_finite(const std::string& action) const {
  const std::string report = nonfinite_report();
  if (!report.empty()) throw Error(ErrorCode::kInvalidConfig, action + " refused: " + report);
}

bool ivf_sparse_training(const AnnOptions& o) {
  return o.kind == "ivf" && o.ivf_lists > 0 && o.ivf_train_rows < int64_t(39) * o.ivf_lists;
}

void EmbeddingIndex::build_ann(const AnnOptions& options) {
  Impl& x = *impl_;
  if (!(options.min_recall >= 0 && options.min_recall <= 1))
    throw Error(ErrorCode::kInvalidArgument,
                "approximate index: min_recall must be in [0, 1], got " +
                    std::to_string(options.min_recall));
  check_finite("approximate index");
  AnnOptions o = options;
  const Impl* self = &x;
  auto built = build_ann_index(
      [self](int64_t b, int64_t n, float* out) { self->read_rows(b, n, out); }, size(), x.dim, o);

  // recall@10 against exact search, on up to 100 queries between two rows (deterministic).
  const int64_t n = size(), d = x.dim;
  const int64_t nq = std::min<int64_t>(100, n);
  const size_t k = static_cast<size_t>(std::min<int64_t>(10, n));
  FloatTensor queries({nq, d});
  std::mt19937_64 rng(20240607);
  std::vector<float> a(static_cast<size_t>(d)), b(static_cast<size_t>(d));
  for (int64_t j = 0; j < nq; ++j) {
    x.read_rows(static_cast<int64_t>(rng() % uint64_t(n)), 1, a.data());
    x.read_rows(static_cast<int64_t>(rng() % uint64_t(n)), 1, b.data());
    double norm = 0;
    for (int64_t i = 0; i < d; ++i)
      norm += double(a[size_t(i)] + b[size_t(i)]) * (a[size_t(i)] + b[size_t(i)]);
    for (int64_t i = 0; i < d; ++i)
      queries.ptr()[j * d + i] =
          norm > 1e-12 ? static_cast<float>((a[size_t(i)] + b[size_t(i)]) / std::sqrt(norm))
                       : a[size_t(i)];
  }
  SearchOptions exact;
  exact.exact = true;
  const auto want = search(queries, static_cast<int>(k), exact);
  int64_t found = 0, total = 0;
  for (int64_t j = 0; j < nq; ++j) {
    const auto got = x.ann_search(*built, queries.row(j), k, std::max(4 * static_cast<int>(k), 64));
    const auto& w = want[size_t(j)];
    if (w.empty()) continue;
    // Scores, not rows: rows with equal scores (equal vectors) are interchangeable.
    const float kth = w.back().score;
    int64_t hit = 0;
    for (const auto& g : got) hit += g.score >= kth - 1e-6f;
    found += std::min<int64_t>(hit, static_cast<int64_t>(w.size()));
    total += static_cast<int64_t>(w.size());
  }
  o.recall = total > 0 ? double(found) / double(total) : 1.0;
  o.recall_queries = static_cast<int>(nq);
  if (o.recall < o.min_recall) {
    char msg[256];
    std::snprintf(msg, sizeof(msg),
                  "approximate index (%s): recall@10 %.3f against exact search on %d sample "
                  "queries is below the minimum %.3f; not built (searches stay exact)",
                  o.kind.c_str(), o.recall, o.recall_queries, o.min_recall);
    throw Error(ErrorCode::kUnsupported, msg);
  }
  std::lock_guard<std::mutex> lock(x.ann_mu);
  x.ann = std::move(built);
  x.ann_loaded = true;
  x.has_ann_json = false;
  x.ann_options = o;
}

bool EmbeddingIndex::has_ann() const { return impl_->has_ann_json || impl_->ann != nullptr; }

std::string EmbeddingIndex::ann_description() const {
  if (!has_ann()) return "";
  const AnnOptions& o = impl_->ann_options;
  std::string recall;
  if (o.recall >= 0) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), ", recall@10 %.3f on %d queries", o.recall, o.recall_queries);
    recall = buf;
  }
  if (o.kind == "hnsw")
    return "hnsw (M " + std::to_string(o.hnsw_m) + ", ef_search " +
           std::to_string(o.hnsw_ef_search) + recall + ")";
  return "ivf (" + std::to_string(o.ivf_lists) + " lists, probe " + std::to_string(o.ivf_probe) +
         recall + ")";
}

const AnnOptions& EmbeddingIndex::ann_options() const { return impl_->ann_options; }

}  // namespace zsclip
