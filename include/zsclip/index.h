// zsclip/index.h — an embedding index: embed a photo collection once, then search and classify it
// from the stored features in milliseconds, without decoding an image again.
//
//   zsclip::Model model = zsclip::Model::load("models/shapes");
//   zsclip::build_index("photos.idx", model, paths);          // resumable; adds only new files
//   auto index = zsclip::EmbeddingIndex::open("photos.idx");  // embeddings.npy mapped, not copied
//   for (const auto& hit : index.search_text(model, "a red circle", 10))
//     std::cout << hit.path << " " << hit.score << "\n";  // cosine similarity, best first
//   auto head = zsclip::ZeroShotHead::build(model, {"cat", "dog"}, templates);
//   std::vector<zsclip::Classification> c = index.classify(head, 5);  // every indexed image
//
// On disk an index is a folder:
//   embeddings.npy   NumPy .npy (numpy.load reads it): [count, dim] little-endian float32 or
//                    float16, L2-normalised image features, one row per image
//   manifest.jsonl   one JSON object a line, in row order: {"row", "path", "bytes", "mtime"} for
//                    each row ("mtime": seconds since the epoch, as Python's os.stat().st_mtime),
//                    and {"path", "error", "code"} for an image that failed (it has no row)
//   index.json       {"format": "zsclip-embedding-index", "format_version": 1, "model_fingerprint",
//                    "model_name", "dim", "dtype", "count", "failed", "ann": null | {"kind",
//                    "file", "factory", "count", "recall_at_10", "recall_queries", ...}}
//                    (recall_*: measured when built; absent in indexes written before)
//   ann.faiss        optional approximate-search index (FAISS), rows numbered as embeddings.npy;
//                    an HNSW over rows with equal features has one node per distinct vector:
//                    then ann gains "distinct" (nodes) and "rows_file": "ann_rows.bin"
//   ann_rows.bin     with "distinct": one little-endian int64 a row, its node in ann.faiss
//   .zsclip-build.lock  the build lock (see build_index); any file or folder here that is not a
//                    regular file where one is expected (a FIFO, a device) is refused at once
// Opening checks that the three files agree (dtype, shape, count, row numbers) and refuses a file
// that does not with a zsclip::Error naming the file, the line or field and the value. Saving
// writes a complete new folder beside the old one and swaps the two in one rename (renameat2
// RENAME_EXCHANGE), so a reader, or a crash, never sees half of an update.
//
// Thread safety: const methods (search, classify, row access) are safe from several threads at
// once; add, merge_from and build_ann are not safe while other threads use the same object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zsclip/encoder.h"
#include "zsclip/error.h"
#include "zsclip/pipeline.h"
#include "zsclip/tensor.h"
#include "zsclip/zero_shot.h"

namespace zsclip {

enum class IndexDtype { kFloat32, kFloat16 };
const char* index_dtype_name(IndexDtype dtype);         // "float32" | "float16"
IndexDtype parse_index_dtype(const std::string& name);  // throws kInvalidArgument

// What a row records about its image file, to notice a changed file when an index is built again.
struct FileStamp {
  uint64_t bytes = 0;
  double mtime = 0;  // seconds since the epoch, with the file system's sub-second part
  bool operator==(const FileStamp& o) const { return bytes == o.bytes && mtime == o.mtime; }
};
// The size and modification time of a file; throws Error (kNotFound, kIo) when it cannot be read.
FileStamp stamp_of(const std::string& path);

struct IndexRow {
  std::string path;
  FileStamp stamp;
};
struct IndexFailure {
  std::string path;
  std::string error;
  ErrorCode code = ErrorCode::kInternal;
};
struct SearchHit {
  int64_t row = 0;
  std::string path;
  float score = 0.f;  // cosine similarity of the normalised query and the stored row
};

// Options of a search.
//   exact  (false) scan every row even when the index has an approximate (ANN) part
//   threads (0)    parts of an exact scan; 0 = the runtime's threads (small indexes: 1)
//   runtime (null) whose threads run the parts of an exact scan; null = Runtime::default_runtime()
//   ann_candidates (0) rows the ANN proposes before they are rescored exactly;
//                  0 = max(4 * top_k, 64)
//   truncate (false) search_text: a query (or template prompt) longer than the model's context is
//                  an Error (kInvalidText) naming it; true cuts it as clip.tokenize(truncate=True)
struct SearchOptions {
  bool exact = false;
  bool truncate = false;
  int threads = 0;
  int ann_candidates = 0;
  std::shared_ptr<Runtime> runtime;
};

// Options of an approximate index (FAISS, inner product).
//   kind       "hnsw" (HNSW graph, no training) or "ivf" (inverted lists over k-means cells)
//   hnsw_m (32), hnsw_ef_construction (80), hnsw_ef_search (96)
//   ivf_lists (0 = sqrt(count), at least 1), ivf_probe (0 = lists / 16, at least 8),
//   ivf_train_rows (0 = min(count, 64 * lists), spread evenly over the rows)
//   min_recall (0.9) build_ann measures recall@10 against exact search on up to 100 sample queries
//                  (normalised sums of two rows, deterministic) and refuses the part below it
// After build_ann (or read from index.json): recall, recall_queries = what was measured; recall
// is -1 for an approximate part written before zsclip measured it.
// HNSW keeps one graph node per distinct vector (rows with equal features share it).
struct AnnOptions {
  std::string kind = "hnsw";
  int hnsw_m = 32;
  int hnsw_ef_construction = 80;
  int hnsw_ef_search = 96;
  int ivf_lists = 0;
  int ivf_probe = 0;
  int64_t ivf_train_rows = 0;
  double min_recall = 0.9;
  double recall = -1;
  int recall_queries = 0;
};
// True when an IVF part was trained with fewer than 39 rows a cell (FAISS's own minimum): its
// cells are coarse; the CLI says so once.
bool ivf_sparse_training(const AnnOptions& options);
// True when this build of zsclip has FAISS (CMake option ZSCLIP_WITH_FAISS).
bool ann_available();

class EmbeddingIndex {
 public:
  // An empty index for features of one model (its config.json fingerprint, embed_dim and name).
  static EmbeddingIndex create(const std::string& model_fingerprint, int64_t dim,
                               IndexDtype dtype = IndexDtype::kFloat16,
                               const std::string& model_name = "");
  static EmbeddingIndex create(const ImageEncoder& encoder,
                               IndexDtype dtype = IndexDtype::kFloat16);
  // Opens a saved index folder; embeddings.npy is mapped read-only (pages are read on use).
  static EmbeddingIndex open(const std::string& dir);
  // True when `dir` holds an index.json (an index, or the start of one).
  static bool exists(const std::string& dir);

  EmbeddingIndex(EmbeddingIndex&&) noexcept;
  EmbeddingIndex& operator=(EmbeddingIndex&&) noexcept;
  EmbeddingIndex(const EmbeddingIndex&);  // rows are shared, not copied
  ~EmbeddingIndex();

  // Writes the index to `dir` (created, or replaced whole), including the ANN part when built.
  void save(const std::string& dir) const;

  // Appends one row; `features` (dim floats, projected, any length) are L2-normalised here. A path
  // already in the index is refused (kInvalidArgument); zero or non-finite features too.
  void add(const IndexRow& row, const float* features);
  void add_failure(IndexFailure failure);
  // Appends the rows and failures of `other` (same model and dim, else kInvalidModel). A path in
  // both is refused (kInvalidArgument) unless replace is true: then other's row or failure replaces
  // this one's (the row moves to the end). Rows are shared, not copied. Drops an ANN part.
  void merge_from(const EmbeddingIndex& other, bool replace = false);

  const std::string& model_fingerprint() const;
  const std::string& model_name() const;
  int64_t dim() const;
  IndexDtype dtype() const;
  int64_t size() const;  // rows
  const std::vector<IndexRow>& rows() const;
  const std::vector<IndexFailure>& failures() const;
  int64_t find(const std::string& path) const;  // row of a path, or -1
  // Row i as float32 (widened from float16 when stored so).
  void row(int64_t i, float* out) const;
  std::vector<float> row(int64_t i) const;
  const std::string& directory() const;  // where it was opened from ("" for a new one)

  // Throws Error(kInvalidModel) unless the index was built with this model (fingerprint and dim).
  void check_compatible(const ImageEncoder& encoder, const std::string& origin = "index") const;
  void check_compatible(const ZeroShotHead& head, const std::string& origin = "head") const;

  // The top_k rows by cosine similarity with `query` (dim floats, normalised here), best first;
  // ties go to the lower row. Exact unless the index has an ANN part and options.exact is false.
  std::vector<SearchHit> search(const float* query, int top_k,
                                const SearchOptions& options = {}) const;
  // Several queries [Q, dim] at once: one pass over the rows for all of them.
  std::vector<std::vector<SearchHit>> search(const FloatTensor& queries, int top_k,
                                             const SearchOptions& options = {}) const;
  // A text query embedded by the model: as given, or with templates like a zero-shot class (the
  // mean of the normalised template embeddings). The model must be the index's.
  std::vector<SearchHit> search_text(const TextEncoder& encoder, const std::string& text, int top_k,
                                     const std::vector<std::string>& templates = {},
                                     const SearchOptions& options = {}) const;
  // "More like this image": the image file embedded by the model (embed.h).
  std::vector<SearchHit> search_image(const ImageEncoder& encoder, const std::string& image_path,
                                      int top_k, const SearchOptions& options = {}) const;
  // Zero-shot classification of every row, in row order (then one failed entry per failure), as
  // ZeroShotClassifier::classify_files would give for the same files. The head must be the index's.
  // A row holding NaN or Inf values gives a failed entry (kInvalidConfig, naming row and path).
  std::vector<Classification> classify(const ZeroShotHead& head, int top_k = 5) const;
  // The same, streamed: on_results(results, n) gets the next n of them (about 256 rows at a time,
  // then the failures) and keeps nothing after it returns, so memory does not grow with the rows.
  void classify(
      const ZeroShotHead& head, int top_k,
      const std::function<void(const Classification* results, size_t n)>& on_results) const;

  // Rows whose stored values are not all finite (NaN or Inf: an index damaged from outside, or
  // written before zsclip refused such rows), ascending. One pass over the rows, remembered; an
  // exact search finds them on its way. Searches leave such rows out; build_ann and
  // merge_indexes refuse an index that has any. nonfinite_report: "" or a message naming them (row
  // and path); check_finite throws it as kInvalidConfig, "<action> refused: <report>".
  std::vector<int64_t> nonfinite_rows() const;
  std::string nonfinite_report() const;
  void check_finite(const std::string& action) const;

  // The approximate part (needs FAISS): built over the current rows, saved as ann.faiss by save().
  // Its recall@10 is measured against exact search (AnnOptions::min_recall): below the minimum it
  // is refused (kUnsupported, with the figure) and the index keeps what it had.
  void build_ann(const AnnOptions& options);
  bool has_ann() const;
  std::string ann_description()
      const;  // "" without one, else e.g. "hnsw (HNSW32,Flat, ef_search 96)"
  const AnnOptions& ann_options() const;

 private:
  struct Impl;
  explicit EmbeddingIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Merges shard indexes (same model and dim) in argument order. Refused: a file in two shards (paths
// compared after resolving them: "a.png" and "./a.png" are one file), and a shard with rows that
// hold NaN or Inf values (named by row and path).
EmbeddingIndex merge_indexes(const std::vector<std::string>& shard_dirs);

// True when `path` belongs to shard k of n (0 <= k < n): a 64-bit FNV-1a hash of the path string,
// modulo n. Deterministic across machines and runs.
bool path_in_shard(const std::string& path, int k, int n);

// Options of build_index.
//   dtype        (kFloat16) how rows are stored; an existing index keeps its own
//   batch_size   (16)       images per encoder call, and per committed segment
//   preprocess_threads (0)  decode/preprocess parts; 0 = the threads of the encoder's runtime
//   shard_k, shard_n (0, 1) take only the paths of shard k of n (path_in_shard)
//   ann          ("")       "hnsw" | "ivf": build the approximate part at the end (FAISS)
//   progress                called after each committed batch with (done, total) images of this run
struct IndexBuildOptions {
  IndexDtype dtype = IndexDtype::kFloat16;
  int batch_size = 16;
  int preprocess_threads = 0;
  int shard_k = 0, shard_n = 1;
  AnnOptions ann;
  bool build_ann = false;
  std::function<void(int64_t, int64_t)> progress;
};
struct IndexBuildReport {
  int64_t inputs = 0;     // paths given after the shard filter (duplicates removed)
  int64_t unchanged = 0;  // already indexed with the same size and mtime: not embedded again
  int64_t added = 0;      // new rows
  int64_t replaced = 0;   // rows embedded again because the file changed
  int64_t failed = 0;     // images that could not be read (recorded in the manifest)
  int64_t recovered = 0;  // rows of an interrupted earlier run picked up without embedding again
  int64_t total_rows = 0;
  std::vector<IndexFailure> failures;  // this run's
  // Why the approximate part asked for was not built (its measured recall was below
  // AnnOptions::min_recall, ...): the index is saved without it and searched exactly. "" otherwise.
  std::string ann_refused;
};

// Embeds `paths` with `encoder` into the index folder `dir`, creating it or adding to it, through
// the embedding engine (embed.h: decoded on the encoder's runtime, two batches ahead). Each batch
// is committed as a small segment under dir/pending/ (write and rename) as soon as it is encoded,
// and the segments are folded into embeddings.npy/manifest.jsonl as they grow and at the end; an
// interrupted run loses at most the batch in flight, the folder stays a valid index, and the next
// run picks the segments up. Only one build may write a folder at a time: a second is refused
// (flock on the file .zsclip-build.lock inside the real folder, whatever path or symbolic link
// names it). Rows are keyed by the canonical path of their file (absolute, links resolved): "imgs",
// "./imgs", "$PWD/imgs" and a linked folder give one row a file, stored under that path; the shard
// of a path (path_in_shard) is that of its canonical path.
IndexBuildReport build_index(const std::string& dir, const ImageEncoder& encoder,
                             const std::vector<std::string>& paths,
                             const IndexBuildOptions& options = {});

}  // namespace zsclip
