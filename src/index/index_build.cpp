// The half of EmbeddingIndex that needs encoders: text and image queries, and building an index
// from image files through the embedding engine (resumable, committed batch by batch).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "base/fingerprint.h"
#include "index/index_impl.h"
#include "zsclip/embed.h"
#include "zsclip/index.h"
#include "zsclip/zero_shot.h"

namespace zsclip {

namespace fs = std::filesystem;

namespace {

// The engine of one call, over an encoder the caller owns.
EmbeddingEngine engine_of(const ImageEncoder& encoder, EmbedOptions options = {}) {
  return EmbeddingEngine(std::shared_ptr<const ImageEncoder>(std::shared_ptr<void>(), &encoder),
                         std::move(options));
}

// Throws unless the index holds features of this fingerprint and dim; `who` names the encoder.
void check_model(const EmbeddingIndex& index, const std::string& fingerprint, int64_t dim,
                 const std::string& who, const std::string& origin) {
  if (!detail::fingerprints_match(fingerprint, index.model_fingerprint()) || dim != index.dim())
    throw Error(ErrorCode::kInvalidModel,
                origin + " holds features of the model \"" + index.model_name() +
                    "\" (fingerprint \"" + index.model_fingerprint() + "\", dim " +
                    std::to_string(index.dim()) + "), not of " + who + "fingerprint \"" +
                    fingerprint + "\", dim " + std::to_string(dim) +
                    "); use the index's model (--model) or build the index again with this one");
}

std::string describe(const ImageEncoder& encoder) {
  return encoder.describe() + " (\"" + encoder.name() + "\", ";
}

// An exclusive lock on the file index_detail::kLockFile inside the real index folder, held while a
// build writes it. The folder is swapped on each commit; save() hard-links the lock file into each
// new version, so every build, whatever path leads it to the folder, locks the same file.
class BuildLock {
 public:
  explicit BuildLock(const fs::path& target) {
    const fs::path lock = target / index_detail::kLockFile;
    fd_ = ::open(lock.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0)
      throw Error(ErrorCode::kIo, "index " + target.string() + ": cannot create the lock file " +
                                      lock.string() + " (" + std::strerror(errno) + ")");
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw Error(ErrorCode::kIo, "index " + target.string() +
                                      ": another zsclip index build is writing it (lock " +
                                      lock.string() + ")");
    }
  }
  ~BuildLock() { ::close(fd_); }
  BuildLock(const BuildLock&) = delete;
  BuildLock& operator=(const BuildLock&) = delete;

 private:
  int fd_ = -1;
};

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

struct Pending {
  int64_t number;
  EmbeddingIndex index;
};

}  // namespace

EmbeddingIndex EmbeddingIndex::create(const ImageEncoder& encoder, IndexDtype dtype) {
  return create(encoder.fingerprint(), encoder.embed_dim(), dtype, encoder.name());
}

void EmbeddingIndex::check_compatible(const ImageEncoder& encoder,
                                      const std::string& origin) const {
  check_model(*this, encoder.fingerprint(), encoder.embed_dim(), describe(encoder), origin);
}

std::vector<SearchHit> EmbeddingIndex::search_text(const TextEncoder& encoder,
                                                   const std::string& text, int top_k,
                                                   const std::vector<std::string>& templates,
                                                   const SearchOptions& options) const {
  const auto* image = dynamic_cast<const ImageEncoder*>(&encoder);  // a Model is both
  check_model(*this, encoder.fingerprint(), encoder.embed_dim(),
              image ? describe(*image) : "the text encoder (",
              directory().empty() ? "the index" : "index " + directory());
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "search: the text query is empty");
  if (!templates.empty()) {  // a zero-shot class: the mean of the normalised template embeddings
    HeadBuildOptions build_options;
    build_options.truncate = options.truncate;
    ZeroShotHead head = ZeroShotHead::build(encoder, {text}, templates, build_options);
    return search(head.weights().row(0), top_k, options);
  }
  FloatTensor f = encoder.encode_texts(
      encoder.tokenizer().tokenize({text}, encoder.context_length(), options.truncate));
  return search(f.row(0), top_k, options);
}

std::vector<SearchHit> EmbeddingIndex::search_image(const ImageEncoder& encoder,
                                                    const std::string& image_path, int top_k,
                                                    const SearchOptions& options) const {
  check_compatible(encoder, directory().empty() ? "the index" : "index " + directory());
  return search(engine_of(encoder).encode_file(image_path).data(), top_k, options);
}

IndexBuildReport build_index(const std::string& dir, const ImageEncoder& encoder,
                             const std::vector<std::string>& paths,
                             const IndexBuildOptions& options) {
  if (options.batch_size < 1)
    throw Error(ErrorCode::kInvalidArgument, "index build: batch_size must be >= 1");
  const EmbeddingEngine engine =
      engine_of(encoder, {options.batch_size, options.preprocess_threads});
  path_in_shard("", options.shard_k, options.shard_n);  // checks K/N
  if (options.build_ann && !ann_available())
    throw Error(ErrorCode::kUnsupported,
                "--ann " + options.ann.kind +
                    ": this zsclip was built without FAISS "
                    "(CMake option ZSCLIP_WITH_FAISS; Debian package libfaiss-dev)");
  if (options.build_ann && options.ann.kind != "hnsw" && options.ann.kind != "ivf")
    throw Error(ErrorCode::kInvalidArgument,
                "--ann \"" + options.ann.kind + "\" is neither hnsw nor ivf");
  fs::path target = fs::absolute(dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_directory(target, ec))
    throw Error(ErrorCode::kInvalidArgument, "index " + dir + " exists and is not a folder");
  fs::create_directories(target, ec);
  // The real folder (a symbolic link to it, or any spelling of it, takes the same lock).
  target = fs::canonical(target, ec);
  if (ec)
    throw Error(ErrorCode::kIo,
                "index " + dir + ": cannot create the folder (" + ec.message() + ")");
  BuildLock lock(target);

  // Leftovers of interrupted saves: .NAME.tmp-* beside the folder.
  const std::string tmp_prefix = "." + target.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(target.parent_path(), ec))
    if (starts_with(e.path().filename().string(), tmp_prefix)) fs::remove_all(e.path(), ec);

  if (!EmbeddingIndex::exists(target.string()))
    EmbeddingIndex::create(encoder, options.dtype).save(target.string());
  EmbeddingIndex main = EmbeddingIndex::open(target.string());
  main.check_compatible(encoder, "index " + dir);
  const bool want_ann = options.build_ann || main.has_ann();
  const AnnOptions ann_options = options.build_ann ? options.ann : main.ann_options();

  // Segments committed by an earlier, interrupted run: pending/seg-NNNNNNNN, each a small index.
  const fs::path pending_dir = target / "pending";
  std::vector<Pending> pending;
  for (const auto& e : fs::directory_iterator(pending_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!starts_with(name, "seg-")) {  // .seg-*.tmp-*: a segment whose save was interrupted
      fs::remove_all(e.path(), ec);
      continue;
    }
    try {
      EmbeddingIndex seg = EmbeddingIndex::open(e.path().string());
      seg.check_compatible(encoder, "segment " + e.path().string());
      pending.push_back({std::stoll(name.substr(4)), std::move(seg)});
    } catch (const std::exception&) {  // damaged from outside: its images are embedded again
      fs::remove_all(e.path(), ec);
    }
  }
  std::sort(pending.begin(), pending.end(),
            [](const Pending& a, const Pending& b) { return a.number < b.number; });
  int64_t next_segment = pending.empty() ? 1 : pending.back().number + 1;

  IndexBuildReport report;
  // Rows are keyed by the canonical path of their file (index_detail::canonical_path), which is
  // what this build stores for a new row; a row of an older index written as typed ("imgs/a.png")
  // keeps its spelling, found through its canonical form.
  struct Known {
    std::string stored;
    FileStamp stamp;
  };
  std::unordered_map<std::string, Known> known;
  auto key_of_stored = [](const std::string& p) {
    const fs::path q(p);
    return q.is_absolute() && q.lexically_normal() == q ? p : index_detail::canonical_path(p);
  };
  for (const auto& r : main.rows()) known[key_of_stored(r.path)] = {r.path, r.stamp};
  // A row holding NaN or Inf (damaged from outside) is embedded again when its file is given.
  for (int64_t r : main.nonfinite_rows())
    known[key_of_stored(main.rows()[size_t(r)].path)].stamp.bytes = UINT64_MAX;
  for (const auto& p : pending) {
    report.recovered += p.index.size();
    for (const auto& r : p.index.rows()) known[key_of_stored(r.path)] = {r.path, r.stamp};
  }

  // What to embed: new paths, and paths whose size or mtime changed (failed ones are tried again).
  struct Item {
    std::string path;
    FileStamp stamp;
    bool replaces = false;
  };
  std::vector<Item> todo;
  std::unordered_set<std::string> seen;
  for (const auto& given : paths) {
    const std::string p = index_detail::canonical_path(given);
    if (!seen.insert(p).second || !path_in_shard(p, options.shard_k, options.shard_n)) continue;
    ++report.inputs;
    Item item{p, {}, false};
    try {
      item.stamp = stamp_of(p);
    } catch (const Error&) {  // preprocessing reports it as the image's error
    }
    auto it = known.find(p);
    if (it != known.end() && it->second.stamp == item.stamp) {
      ++report.unchanged;
      continue;
    }
    if (it != known.end()) item.path = it->second.stored;
    item.replaces = it != known.end();
    todo.push_back(std::move(item));
  }

  auto commit = [&](bool final_commit) {
    EmbeddingIndex merged(main);
    for (const auto& p : pending) merged.merge_from(p.index, /*replace=*/true);
    if (final_commit && want_ann && merged.size() > 0) {
      try {
        merged.build_ann(ann_options);
      } catch (const Error& e) {  // recall below the minimum, NaN rows: the rows are kept, exact
        if (e.code() != ErrorCode::kUnsupported && e.code() != ErrorCode::kInvalidConfig) throw;
        report.ann_refused = e.what();
      }
    }
    merged.save(target.string());  // the old folder, pending/ included, goes away
    main = EmbeddingIndex::open(target.string());
    pending.clear();
  };

  int64_t pending_rows = 0;
  for (const auto& p : pending) pending_rows += p.index.size();
  std::vector<std::string> todo_paths;
  for (const auto& item : todo) todo_paths.push_back(item.path);
  engine.run_files(todo_paths, [&](EmbeddedBatch& b) {
    EmbeddingIndex seg = EmbeddingIndex::create(encoder, main.dtype());
    auto fail = [&](IndexFailure failure) {
      report.failures.push_back(std::move(failure));
      seg.add_failure(report.failures.back());
    };
    for (size_t i = 0; i < b.status.size(); ++i)
      if (!b.status[i].ok) fail({todo_paths[b.begin + i], b.status[i].error, b.status[i].code});
    for (size_t j = 0; j < b.encoded.size(); ++j) {
      const Item& item = todo[b.encoded[j]];
      try {
        seg.add({item.path, item.stamp}, b.features.row(static_cast<int64_t>(j)));
        ++(item.replaces ? report.replaced : report.added);
      } catch (const Error& e) {  // a non-UTF-8 path, or features that are zero or not finite
        fail({item.path, e.what(), e.code()});
      }
    }
    char name[32];
    std::snprintf(name, sizeof(name), "seg-%08lld", static_cast<long long>(next_segment++));
    seg.save((pending_dir / name).string());
    pending_rows += seg.size();
    pending.push_back({next_segment - 1, std::move(seg)});
    const size_t done = b.begin + b.status.size();
    if (options.progress)
      options.progress(static_cast<int64_t>(done), static_cast<int64_t>(todo.size()));
    // Fold the segments in once they are a quarter of the index: O(total) writing over a long run.
    if (pending_rows >= std::max<int64_t>(main.size() / 4, 1024) && done < todo.size()) {
      commit(false);
      pending_rows = 0;
    }
  });
  if (!pending.empty() || (want_ann && !main.has_ann() && main.size() > 0) || options.build_ann)
    commit(true);
  report.total_rows = main.size();
  report.failed = static_cast<int64_t>(report.failures.size());
  return report;
}

}  // namespace zsclip
