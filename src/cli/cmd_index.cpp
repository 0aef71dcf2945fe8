// zsclip index (build | merge | ann) and zsclip search: embed a collection once, query it many
// times.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "zsclip/error.h"
#include "zsclip/index.h"
#include "zsclip/model.h"
#include "zsclip/tokenizer.h"
#include "zsclip/zero_shot.h"

namespace zsclip::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
    if (ext == e) return true;
  return false;
}

// Files named directly are taken as they are; folders give their image files (by extension),
// sorted.
std::vector<std::string> collect_inputs(const Args& args, const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  if (args.has("--images-from")) {
    const std::string from = args.get("--images-from");
    std::ifstream file;
    if (from != "-") {
      file.open(from, std::ios::binary);
      if (!file) throw Error(ErrorCode::kNotFound, "--images-from " + from + ": cannot be read");
    }
    std::istream& in = from == "-" ? std::cin : file;
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
    }
  }
  const bool recursive = args.has("--recursive");
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      out.push_back(p);
      continue;
    }
    std::vector<std::string> found;
    const auto opts = fs::directory_options::skip_permission_denied;
    if (recursive) {
      for (auto it = fs::recursive_directory_iterator(p, opts, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec) && is_image_name(it->path()))
          found.push_back(it->path().string());
    } else {
      for (auto it = fs::directory_iterator(p, opts, ec); !ec && it != fs::directory_iterator();
           it.increment(ec))
        if (it->is_regular_file(ec) && is_image_name(it->path()))
          found.push_back(it->path().string());
    }
    if (ec) throw Error(ErrorCode::kIo, "folder " + p + ": " + ec.message());
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

// FAISS's "please provide at least N training points", in our words, once.
void note_sparse_ivf(const char* command, const EmbeddingIndex& index) {
  const AnnOptions& o = index.ann_options();
  if (!index.has_ann() || !ivf_sparse_training(o)) return;
  std::cerr << "zsclip " << command << ": note: the ivf part trained " << o.ivf_lists
            << " cells on " << o.ivf_train_rows
            << " rows (fewer than 39 a cell): its cells are coarse; for so few rows an exact "
               "search is as fast (--exact, or build without --ann)\n";
}

AnnOptions ann_options(const Args& args) {
  AnnOptions o;
  o.kind = args.get("--ann");
  if (o.kind != "hnsw" && o.kind != "ivf")
    throw UsageError("--ann must be hnsw or ivf, got \"" + o.kind + "\"");
  o.hnsw_m = args.get_int("--hnsw-m", 4, 256);
  o.hnsw_ef_search = args.get_int("--ef-search", 1, 1 << 16);
  o.ivf_lists = args.get_int("--ivf-lists", 0, 1 << 22);
  o.ivf_probe = args.get_int("--ivf-probe", 0, 1 << 22);
  return o;
}

void parse_shard(const std::string& s, int* k, int* n) {
  const size_t slash = s.find('/');
  try {
    size_t a = 0, b = 0;
    if (slash == std::string::npos) throw std::invalid_argument(s);
    *k = std::stoi(s.substr(0, slash), &a);
    *n = std::stoi(s.substr(slash + 1), &b);
    if (a != slash || b != s.size() - slash - 1) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    throw UsageError("--shard expects K/N (0 <= K < N), got \"" + s + "\"");
  }
  if (*n < 1 || *k < 0 || *k >= *n)
    throw UsageError("--shard K/N needs 0 <= K < N, got \"" + s + "\"");
}

int run_index(const Args& args) {
  if (args.positional().empty()) throw UsageError("give an action: build, merge or ann");
  const std::string action = args.positional()[0];
  const std::vector<std::string> rest(args.positional().begin() + 1, args.positional().end());
  if (action != "build" && action != "merge" && action != "ann")
    throw UsageError("unknown action \"" + action + "\" (build, merge or ann)");
  args.check_action("index", action);

  if (action == "ann") {
    if (rest.size() != 1) throw UsageError("index ann takes one INDEX folder");
    EmbeddingIndex index = EmbeddingIndex::open(rest[0]);
    index.build_ann(ann_options(args));  // below the measured-recall minimum: refused, unchanged
    index.save(rest[0]);
    note_sparse_ivf("index ann", index);
    std::cerr << "zsclip index ann: " << rest[0] << ": " << index.ann_description() << " over "
              << index.size() << " rows\n";
    return 0;
  }
  if (!args.has("--out")) throw UsageError("--out INDEX is required");
  const std::string out = args.get("--out");
  if (action == "merge") {
    if (rest.empty()) throw UsageError("index merge needs at least one SHARD_INDEX");
    if (!args.has("--force")) {  // never replace an index, least of all an input, by surprise
      std::error_code ec;
      for (const auto& in : rest)
        if (fs::equivalent(in, out, ec))
          throw Error(ErrorCode::kInvalidArgument,
                      "index merge: --out " + out + " is the input " + in +
                          "; merging into it replaces it (--force to do so)");
      if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || !fs::is_empty(out, ec))) {
        std::string what;
        if (EmbeddingIndex::exists(out)) what = " (an index)";
        throw Error(ErrorCode::kInvalidArgument,
                    "index merge: --out " + out + " exists" + what +
                        "; merging replaces it whole (--force to do so)");
      }
    }
    EmbeddingIndex merged = merge_indexes(rest);
    merged.save(out);
    std::cerr << "zsclip index merge: " << rest.size() << " shard(s) -> " << out << ": "
              << merged.size() << " rows, " << merged.failures().size() << " failed\n";
    return 0;
  }

  // build
  if (rest.empty() && !args.has("--images-from"))
    throw UsageError("give images: PATH|DIR... or --images-from FILE|-");
  IndexBuildOptions o;
  o.dtype = parse_index_dtype(args.get("--dtype"));
  o.batch_size = args.get_int("--batch-size", o.batch_size, 1, 4096);
  if (args.has("--shard")) parse_shard(args.get("--shard"), &o.shard_k, &o.shard_n);
  if (args.has("--ann")) {
    o.ann = ann_options(args);
    o.build_ann = true;
  }
  const std::vector<std::string> inputs = collect_inputs(args, rest);
  const bool tty = isatty(2);
  o.progress = [tty](int64_t done, int64_t total) {
    if (tty)
      std::cerr << "\rzsclip index build: " << done << "/" << total << " images" << std::flush;
  };
  Model model = Model::load(args.get("--model", default_model_dir()), model_options(args, false));
  report_precision(model);
  IndexBuildReport r = build_index(out, model, inputs, o);
  if (tty && r.added + r.replaced + r.failed > 0) std::cerr << "\n";
  EmbeddingIndex index = EmbeddingIndex::open(out);
  if (!r.ann_refused.empty()) std::cerr << "zsclip index build: note: " << r.ann_refused << "\n";
  note_sparse_ivf("index build", index);
  for (const auto& f : r.failures)
    std::cerr << "zsclip index build: error [" << error_code_name(f.code) << "]: " << f.error
              << "\n";
  std::cerr << "zsclip index build: " << out << ": " << r.inputs << " inputs: " << r.added
            << " added, " << r.replaced << " replaced, " << r.unchanged << " unchanged, "
            << r.failed << " failed";
  if (r.recovered) std::cerr << ", " << r.recovered << " recovered from an interrupted run";
  std::cerr << "; " << r.total_rows << " rows (" << index_dtype_name(index.dtype()) << ", dim "
            << index.dim() << ")";
  if (index.has_ann()) std::cerr << ", " << index.ann_description();
  std::cerr << "\n";
  return 0;
}

int run_search(const Args& args) {
  if (!args.has("--index")) throw UsageError("--index INDEX is required");
  if (args.has("--text") == args.has("--image"))
    throw UsageError("give one of --text TEXT and --image FILE");
  if (args.has("--templates") && !args.has("--text"))
    throw UsageError("--templates applies to --text queries");
  if (!args.positional().empty())
    throw UsageError("unexpected argument \"" + args.positional()[0] + "\"");
  const int top_k = args.get_int("--top-k", 1, 1 << 20);
  const std::string dir = args.get("--index");
  EmbeddingIndex index = EmbeddingIndex::open(dir);
  SearchOptions so;
  so.exact = args.has("--exact");
  so.truncate = args.has("--truncate");
  Model model = Model::load(args.get("--model", default_model_dir()),
                            model_options(args, args.has("--text")));
  report_precision(model);
  std::vector<SearchHit> hits;
  if (args.has("--text")) {
    std::vector<std::string> templates;
    if (args.has("--templates")) templates = resolve_templates(args.get("--templates"));
    hits = index.search_text(model, args.get("--text"), top_k, templates, so);
  } else {
    hits = index.search_image(model, args.get("--image"), top_k, so);
  }
  if (!so.exact && index.has_ann() && ann_available() && index.ann_options().recall < 0)
    std::cerr << "zsclip search: note: the approximate part of " << dir
              << " was built before zsclip measured its recall (it can miss rows, most where "
                 "images repeat); `zsclip index ann "
              << dir << "` builds it again, measured; --exact scans every row\n";
  // Rows holding NaN or Inf (an index damaged from outside) are left out: say which.
  if (const std::string bad = index.nonfinite_report(); !bad.empty())
    std::cerr << "zsclip search: warning: " << bad << "; they are left out of the results\n";
  std::error_code ec;
  if (fs::exists(fs::path(dir) / "pending", ec))
    std::cerr << "zsclip search: note: " << dir
              << " has segments of an interrupted build that are not searched; "
              << "run `zsclip index build` again to fold them in\n";
  if (args.has("--json")) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& h : hits)
      out.push_back({{"path", h.path}, {"score", h.score}, {"row", h.row}});
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& h : hits)
      std::cout << std::fixed << std::setprecision(4) << h.score << "  " << h.path << "\n";
  }
  return 0;
}

ZSCLIP_COMMAND(Command{
    "index",
    "build --out INDEX [--model DIR] [--images-from FILE|-] [PATH|DIR...] [--recursive] [--shard "
    "K/N] [--dtype float32|float16] [--batch-size N] [--ann hnsw|ivf]\n"
    "       zsclip index merge --out INDEX [--force] SHARD_INDEX...\n"
    "       zsclip index ann INDEX [--ann hnsw|ivf]",
    "embed images once into an index folder (build), merge shards (merge), add approximate search "
    "(ann)",
    "build: embeds the images (files as given; folders: their .jpg/.jpeg/.png/.bmp/.webp/.tif "
    "files, sorted, with --recursive their subfolders too) into INDEX/: embeddings.npy (NumPy, "
    "L2-normalised rows), manifest.jsonl (one {\"row\",\"path\",\"bytes\",\"mtime\"} a row, "
    "{\"path\",\"error\",\"code\"} for an image that failed) and index.json (model fingerprint, "
    "dim, dtype, count). Running it again adds only new paths, and embeds again a path whose size "
    "or mtime changed. Each batch is committed as it is encoded: an interrupted run loses at most "
    "the batch in flight, and the next run picks up the rest. --shard K/N (0 <= K < N) keeps the "
    "paths whose FNV-1a hash is K modulo N, so that N machines can split a collection; `index "
    "merge` joins the shards (same model; a path in two shards is refused). Failed images are "
    "recorded and printed; the exit status is still 0. --ann hnsw|ivf (or `index ann INDEX`) adds "
    "a FAISS index (ann.faiss) that `zsclip search` uses; its recall@10 against exact search is "
    "measured on 100 sample queries, and below 0.9 it is not kept (build: a note, searches stay "
    "exact; ann: an error). Paths are stored canonical (absolute, links resolved): one row a file "
    "however it is spelled. merge refuses an --out that exists or is one of the inputs unless "
    "--force.",
    run_index});

ZSCLIP_COMMAND(Command{
    "search",
    "--index INDEX [--model DIR] (--text TEXT | --image FILE) [--top-k K] [--templates NAME|FILE] "
    "[--json] "
    "[--exact] [--truncate]",
    "the indexed images most similar to a text or an image",
    "Prints the top-K rows by cosine similarity (score, path), or with --json [{\"path\", "
    "\"score\", \"row\"}]. A text is embedded as given; with --templates it is embedded like a "
    "zero-shot class (the mean of the normalised template embeddings). The model must be the one "
    "the index was built with (its fingerprint is checked). An index with an approximate part "
    "(ann.faiss) is searched through it, candidates rescored exactly; --exact scans every row.",
    run_search});

}  // namespace
}  // namespace zsclip::cli
