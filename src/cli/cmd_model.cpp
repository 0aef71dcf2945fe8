// zsclip embed / head / classify / info: the subcommands that load a model.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cli.h"
#include "zsclip/classifier.h"
#include "zsclip/error.h"
#include "zsclip/index.h"
#include "zsclip/io.h"
#include "zsclip/model.h"
#include "zsclip/runtime.h"
#include "zsclip/tokenizer.h"
#include "zsclip/utf8.h"
#include "zsclip/version.h"
#include "zsclip/zero_shot.h"

namespace zsclip::cli {

namespace {

using json = nlohmann::json;

std::vector<std::string> labels_of(const Args& args) {
  if (args.has("--labels") && args.has("--labels-file"))
    throw UsageError("give only one of --labels and --labels-file");
  std::vector<std::string> labels = args.has("--labels-file")
                                        ? load_labels_file(args.get("--labels-file"))
                                        : split_list(args.get("--labels"));
  validate_labels(labels, args.has("--labels-file") ? args.get("--labels-file") : "--labels");
  return labels;
}

// {"file": the name as UTF-8}; a name that is not UTF-8 (file names are bytes) gets its invalid
// bytes replaced by U+FFFD there and its exact bytes in "file_hex", so nothing is lost.
json file_json(const std::string& name) {
  json j = {{"file", utf8::replace_invalid(name)}};
  if (!utf8::is_valid(name)) j["file_hex"] = utf8::hex(name);
  return j;
}

// A head built with --truncate says how many prompts were cut.
void report_truncation(const char* command, const ZeroShotHead& head) {
  if (head.truncated_prompts() > 0)
    std::cerr << "zsclip " << command << ": --truncate: " << head.truncated_prompts() << " of "
              << head.num_classes() * static_cast<int64_t>(head.templates().size())
              << " prompts were longer than the model's context and were cut\n";
}

// The head of `labels` and `templates` (read before the model is loaded, their errors first), with
// its progress and what --truncate cut on standard error.
ZeroShotHead build_head(const Args& args, const Model& model,
                        const std::vector<std::string>& labels,
                        const std::vector<std::string>& templates, const char* command,
                        const char* what) {
  HeadBuildOptions ho;
  ho.truncate = args.has("--truncate");
  Progress progress(what, labels.size() * templates.size(), "prompts");
  ho.progress = [&](int64_t done, int64_t) { progress.update(static_cast<size_t>(done)); };
  ZeroShotHead head = ZeroShotHead::build(model, labels, templates, ho);
  report_truncation(command, head);
  return head;
}

// Writes, one element at a time, exactly what dump_json(array, 2) writes for the whole array, so
// that a long output is never held in memory.
class JsonArrayWriter {
 public:
  void add(json item) {
    json one = json::array();
    one.push_back(std::move(item));
    const std::string text = dump_json(one, 2);  // "[\n  ITEM\n]"
    std::cout << (any_ ? ",\n" : "[\n");
    std::cout.write(text.data() + 2, static_cast<std::streamsize>(text.size() - 4));
    any_ = true;
  }
  void finish() { std::cout << (any_ ? "\n]" : "[]") << "\n"; }

 private:
  bool any_ = false;
};

int run_embed(const Args& args) {
  const auto images = args.all("--image");
  const auto texts = args.all("--text");
  if (images.empty() && texts.empty()) throw UsageError("give at least one --image or --text");
  for (size_t i = 0; i < texts.size(); ++i)
    utf8::check(texts[i], "--text " + std::to_string(i + 1));
  const int batch = args.get_int("--batch-size", 1, 4096);
  Model model = Model::load(model_dir(args), model_options(args, !texts.empty()));
  report_precision(model);
  const int64_t d = model.embed_dim();
  int status = 0;
  // Everything but "images", which is written as each batch is done (the keys come out in this
  // order: "images" first, the rest after it).
  json rest = {{"texts", json::array()},
               {"logits_per_image", json::array()},
               {"scoring", scoring_name(model.scoring())}};
  const bool has_bias = model.scoring() == Scoring::kSigmoid;
  if (has_bias) {
    rest["logit_bias"] = model.logit_bias();
    rest["logits_per_image_with_bias"] = json::array();  // SigLIP's logits: sigmoid of these
  }

  // Texts first (few, from the command line), so that each image's logits row is computed as soon
  // as its features are, and its features need not be kept.
  std::vector<std::vector<float>> text_feats;
  const bool truncate = args.has("--truncate");
  if (!texts.empty()) {
    const Tokenizer& tok = model.tokenizer();
    for (size_t begin = 0; begin < texts.size(); begin += static_cast<size_t>(batch)) {
      std::vector<std::string> chunk(
          texts.begin() + static_cast<std::ptrdiff_t>(begin),
          texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), begin + batch)));
      IdTensor ids;
      try {
        ids = tok.tokenize(chunk, model.context_length(), truncate);
      } catch (const Error& e) {
        throw Error(e.code(), std::string(e.what()) + " (--truncate cuts it)");
      }
      FloatTensor feats = model.encode_texts(ids);
      for (size_t i = 0; i < chunk.size(); ++i) {
        text_feats.emplace_back(feats.row(static_cast<int64_t>(i)),
                                feats.row(static_cast<int64_t>(i)) + d);
        rest["texts"].push_back(
            {{"text", chunk[i]},
             {"tokens", tok.encode_with_specials(chunk[i], model.context_length(), truncate)},
             {"features", text_feats.back()}});
      }
    }
  }
  auto norm = [&](const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return std::sqrt(s);
  };
  const double scale = model.logit_scale_exp();
  auto logits_row = [&](const std::vector<float>& fi) {
    json row = json::array();
    const double ni = norm(fi);
    for (const auto& ft : text_feats) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k) dot += double(fi[k]) * ft[k];
      row.push_back(scale * dot / (ni * norm(ft)));
    }
    return row;
  };

  // Images: preprocess a batch (bad files reported, others kept), encode the good ones, write them.
  std::cout << "{\"images\":[";
  Preprocessor pre(model.config().preprocess);
  const size_t per = static_cast<size_t>(3 * model.image_size() * model.image_size());
  Progress progress("zsclip embed", images.size(), "images");
  for (size_t begin = 0; begin < images.size(); begin += static_cast<size_t>(batch)) {
    progress.update(begin);
    std::vector<std::string> paths(
        images.begin() + static_cast<std::ptrdiff_t>(begin),
        images.begin() + static_cast<std::ptrdiff_t>(std::min(images.size(), begin + batch)));
    std::vector<float> pixels(paths.size() * per);
    auto status_of = pre.batch_files_into(paths, pixels.data());
    std::vector<size_t> good;
    for (size_t i = 0; i < paths.size(); ++i) {
      if (!status_of[i].ok) {
        std::cerr << "zsclip embed: error [" << error_code_name(status_of[i].code)
                  << "]: " << status_of[i].error << "\n";
        status = 1;
        continue;
      }
      if (good.size() != i)
        std::copy_n(pixels.data() + i * per, per, pixels.data() + good.size() * per);
      good.push_back(i);
    }
    std::vector<float> feats(good.size() * static_cast<size_t>(d));
    model.encode_images(pixels.data(), static_cast<int64_t>(good.size()), feats.data());
    std::vector<std::vector<float>> image_feats(paths.size());
    for (size_t j = 0; j < good.size(); ++j)
      image_feats[good[j]].assign(feats.begin() + static_cast<std::ptrdiff_t>(j * d),
                                  feats.begin() + static_cast<std::ptrdiff_t>((j + 1) * d));
    for (size_t i = 0; i < paths.size(); ++i) {
      json item = file_json(paths[i]);
      if (image_feats[i].empty())
        item["error"] = status_of[i].error;
      else
        item["features"] = image_feats[i];
      std::cout << (begin + i > 0 ? "," : "") << dump_json(item);
      if (!texts.empty()) {
        json row = image_feats[i].empty() ? json(nullptr) : logits_row(image_feats[i]);
        if (has_bias) {
          json biased = row;
          if (!row.is_null())
            for (auto& x : biased) x = x.get<double>() + double(model.logit_bias());
          rest["logits_per_image_with_bias"].push_back(std::move(biased));
        }
        rest["logits_per_image"].push_back(std::move(row));
      }
    }
    flush_stdout();
  }
  progress.update(images.size());
  const std::string tail = dump_json(rest);  // {"logit_bias":..,"logits_per_image":..,...}
  std::cout << "]," << tail.substr(1) << "\n";
  return status;
}

int run_head(const Args& args) {
  if (!args.has("--out")) throw UsageError("--out HEAD is required");
  if (!args.has("--labels") && !args.has("--labels-file"))
    throw UsageError("give --labels or --labels-file");
  auto labels = labels_of(args);
  auto templates = resolve_templates(args.get("--templates"));
  Model model = Model::load(model_dir(args), model_options(args, true));
  report_precision(model);
  ZeroShotHead head = build_head(args, model, labels, templates, "head", "zsclip head");
  head.save(args.get("--out"));
  std::cerr << "zsclip head: " << labels.size() << " classes x " << templates.size()
            << " templates -> " << args.get("--out") << "\n";
  return 0;
}

// classify --index: every indexed image, from its stored features (no image is decoded). `start`
// gets the head once it is ready, then `write` the results, a block at a time.
void classify_index(const Args& args, int top_k,
                    const std::function<void(const ZeroShotHead&)>& start,
                    const std::function<void(const Classification*, size_t)>& write) {
  if (!args.positional().empty())
    throw UsageError("--index classifies the indexed images; give no IMAGE");
  const std::string dir = args.get("--index");
  EmbeddingIndex index = EmbeddingIndex::open(dir);
  std::optional<ZeroShotHead> head;
  if (args.has("--head")) {
    head.emplace(ZeroShotHead::load(args.get("--head")));
    const std::string fingerprint =
        args.has("--model") ? ModelConfig::load(model_dir(args)).fingerprint : "";
    if (args.has("--model") && (fingerprint.empty() || fingerprint != index.model_fingerprint()))
      throw Error(ErrorCode::kInvalidModel,
                  "index " + dir + " was not built with the model " + model_dir(args));
  } else {
    Model model = Model::load(model_dir(args), model_options(args, true));
    report_precision(model);
    index.check_compatible(model, "index " + dir);
    head.emplace(build_head(args, model, labels_of(args),
                            resolve_templates(args.get("--templates")), "classify",
                            "zsclip classify: prompts"));
  }
  index.check_compatible(*head, args.has("--head") ? "head file " + args.get("--head") : "head");
  start(*head);
  index.classify(*head, top_k, write);
}

// Image paths from --images-from FILE ("-": standard input): one a line, blank lines skipped, bytes
// kept as they are (file names need not be UTF-8). Read as they arrive, a chunk at a time, so that
// a list from a pipe is classified while it is being written, and a long one is never held whole.
class ImageListReader {
 public:
  explicit ImageListReader(const std::string& spec)
      : name_(spec == "-" ? std::string("standard input") : "image list '" + spec + "'") {
    if (spec != "-") {
      uint64_t size = 0;
      file_ = io::open_regular_file(spec, "image list", {~uint64_t{0}, ErrorCode::kInvalidArgument},
                                    &size);
    }
    fd_ = spec == "-" ? 0 : file_.get();
  }

  // Appends up to `max` paths to `out`: waits for the first, then takes only those that have
  // already arrived. Returns false at the end of the list (nothing appended).
  bool next(std::vector<std::string>& out, size_t max) {
    const size_t start = out.size();
    for (;;) {
      while (out.size() - start < max && pop_line(out)) {
      }
      if (out.size() - start >= max) return true;
      if (eof_) {
        if (pos_ < buf_.size()) add_line(buf_.substr(pos_), out);
        buf_.clear();
        pos_ = 0;
        return out.size() > start;
      }
      if (out.size() > start && !readable_now()) return true;
      fill();
    }
  }

 private:
  static constexpr size_t kMaxLineBytes = size_t{1} << 20;

  static void add_line(std::string line, std::vector<std::string>& out) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(std::move(line));
  }
  bool pop_line(std::vector<std::string>& out) {
    const size_t end = buf_.find('\n', pos_);
    if (end == std::string::npos) {
      if (buf_.size() - pos_ > kMaxLineBytes)
        throw Error(ErrorCode::kInvalidArgument, name_ + ": a line is longer than " +
                                                     std::to_string(kMaxLineBytes) +
                                                     " bytes (not a list of paths?)");
      return false;
    }
    add_line(buf_.substr(pos_, end - pos_), out);
    pos_ = end + 1;
    return true;
  }
  bool readable_now() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) != 0;
  }
  void fill() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char chunk[1 << 16];
    for (;;) {
      const ssize_t got = ::read(fd_, chunk, sizeof chunk);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        const int err = errno;
        throw Error(error_code_from_errno(err), name_ + ": read failed: " + std::strerror(err));
      }
      if (got == 0) eof_ = true;
      buf_.append(chunk, static_cast<size_t>(got));
      return;
    }
  }

  std::string name_;
  io::Fd file_;
  int fd_ = 0;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
};

json classification_json(const Classification& r, const char* scoring) {
  json item = file_json(r.source);
  if (!r.ok) {
    item["error"] = r.error;
    item["code"] = error_code_name(r.code);
  } else {
    json top = json::array();
    for (const auto& s : r.top) top.push_back({{"label", s.label}, {"prob", s.prob}});
    item["top"] = std::move(top);
    item["probs"] = r.probs;
  }
  item["scoring"] = scoring;
  return item;
}

int run_classify(const Args& args) {
  // Paths given as IMAGE first, then --images-from's, read a chunk at a time.
  constexpr size_t kListChunk = 4096;
  std::vector<std::string> images = args.positional();
  std::optional<ImageListReader> list;
  if (args.has("--images-from")) {
    if (args.has("--index")) throw UsageError("--images-from and --index cannot be combined");
    list.emplace(args.get("--images-from"));
    if (!list->next(images, kListChunk)) {
      list.reset();
      if (images.empty())
        throw UsageError("--images-from " + args.get("--images-from") + " lists no image");
    }
  }
  if (images.empty() && !args.has("--index")) throw UsageError("no IMAGE given");
  const bool has_labels = args.has("--labels") || args.has("--labels-file");
  if (has_labels == args.has("--head"))
    throw UsageError("give --labels, --labels-file or --head (one of them)");
  if (args.has("--head") && args.has("--templates"))
    throw UsageError("--templates has no effect with --head (the head has its own)");
  if (args.has("--json") && args.has("--jsonl"))
    throw UsageError("give only one of --json and --jsonl");
  ClassifierOptions co;
  co.top_k = args.get_int("--top-k", 1, 1 << 20);
  co.batch_size = args.get_int("--batch-size", 1, 4096);
  co.truncate_prompts = args.has("--truncate");
  if (args.has("--head") && args.has("--truncate"))
    throw UsageError("--truncate has no effect with --head (its prompts are embedded)");
  const bool as_json = args.has("--json"), as_jsonl = args.has("--jsonl");
  int status = 0;
  JsonArrayWriter array;  // --json: one array, written an element at a time
  const char* scoring = "softmax";
  bool sigmoid = false;
  const std::vector<std::string>* labels = nullptr;
  // Each result as soon as it is ready: a table, a JSON line, or a --json array element; flushed.
  auto write = [&](const Classification* results, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const Classification& r = results[i];
      if (!r.ok) {
        std::cerr << "zsclip classify: error [" << error_code_name(r.code) << "]: " << r.error
                  << "\n";
        status = 1;
      }
      if (as_json) {
        json item = classification_json(r, scoring);
        item["labels"] = *labels;
        array.add(std::move(item));
      } else if (as_jsonl) {
        std::cout << dump_json(classification_json(r, scoring)) << "\n";
      } else if (r.ok) {
        std::cout << r.source << "\n";
        for (const auto& s : r.top) {
          // Sigmoid scores are each label's own probability, often all far below 0.0001.
          if (sigmoid)
            std::cout << "  " << std::scientific << std::setprecision(4) << s.prob;
          else
            std::cout << "  " << std::fixed << std::setprecision(4) << s.prob;
          std::cout << "  " << s.label << "\n";
        }
      }
    }
    flush_stdout();
  };
  // Called once the head is known, before any result.
  auto start = [&](const ZeroShotHead& head) {
    scoring = scoring_name(head.scoring());
    sigmoid = head.scoring() == Scoring::kSigmoid;
    labels = &head.labels();
    if (as_jsonl) {
      // The first line names the labels (and the scoring) once, so `probs` can be read alone.
      std::cout << dump_json(json{{"labels", *labels}, {"scoring", scoring}}) << "\n";
      flush_stdout();
    } else if (!as_json && sigmoid) {
      std::cout << "scoring: sigmoid (each label's own probability, sigmoid(logit_scale * cosine "
                   "+ logit_bias); they do not sum to 1)\n";
    }
  };
  if (args.has("--index")) {
    classify_index(args, co.top_k, start, write);
  } else {
    std::optional<ZeroShotClassifier> clf;
    if (args.has("--head")) {
      clf.emplace(ZeroShotClassifier::from_head(model_dir(args), args.get("--head"),
                                                model_options(args, false), co));
    } else {
      // The head is built here rather than by ZeroShotClassifier::create, to show its progress.
      const auto class_labels = labels_of(args);
      const auto templates = resolve_templates(args.get("--templates"));
      Model model = Model::load(model_dir(args), model_options(args, true));
      report_precision(model);
      ZeroShotHead head =
          build_head(args, model, class_labels, templates, "classify", "zsclip classify: prompts");
      clf.emplace(std::move(model), std::move(head), co);
    }
    start(clf->head());
    Progress progress("zsclip classify", list ? Progress::kUnknown : images.size(), "images");
    size_t done = 0;
    for (;;) {
      clf->classify_files_streamed(images,
                                   [&](size_t first, const Classification* results, size_t n) {
                                     write(results, n);
                                     progress.update(done + first + n);
                                   });
      done += images.size();
      images.clear();
      if (!list || !list->next(images, kListChunk)) break;
    }
    progress.finish(done);
  }
  if (as_json) array.finish();
  return status;
}

int run_info(const Args& args) {
  Model model = Model::load(model_dir(args), model_options(args, true));
  report_precision(model);
  const ModelConfig& c = model.config();
  json j = {{"zsclip_version", version()},
            {"model", c.directory},
            {"name", c.name},
            {"fingerprint", c.fingerprint},
            {"embed_dim", c.embed_dim},
            {"image_size", c.vision.image_size},
            {"context_length", c.text.context_length},
            {"vocab_size", c.text.vocab_size},
            {"dtype", model.dtype()},
            {"linear_kernels", model.linear_kernels()},
            {"linear_primitive", model.linear_primitive()},
            {"cpu_isa", model.cpu_isa()},
            {"int8_kernel", model.int8_kernel()},
            {"quantization", c.quantization},
            {"device", model.device()},
            {"logit_scale_exp", model.logit_scale_exp()},
            {"scoring", scoring_name(model.scoring())},
            {"logit_bias", model.logit_bias()},
            {"activation", c.activation},
            {"source_layout", c.source_layout},
            {"cuda_available", cuda_available()}};
  std::cout << dump_json(j, 2) << "\n";
  return 0;
}

const char* kLabelsHelp =
    "Labels: --labels \"red circle,blue star\" (comma-separated) or --labels-file F (one a "
    "line).\nTemplates: a built-in set (simple: \"a photo of a {}.\", openai-cifar: 18, "
    "openai-imagenet: 80) or a file with one template a line; {} is replaced by the label. Labels "
    "and templates must be UTF-8. A prompt longer than the model's context is an error naming the "
    "label, the template and its token count, unless --truncate (which then says how many it cut).";

ZSCLIP_COMMAND(Command{
    "embed", "[--model DIR] [--image FILE]... [--text TEXT]... [--batch-size N] [--truncate]",
    "print projected image/text features and logits as JSON",
    "Output: {\"images\":[{\"file\",\"features\"}], "
    "\"texts\":[{\"text\",\"tokens\",\"features\"}], \"logits_per_image\":[[...]]}; features are "
    "projected, not normalised; logits are logit_scale_exp * cosine; models with a logit_bias "
    "(SigLIP, scoring \"sigmoid\") add \"logit_bias\" and \"logits_per_image_with_bias\" (their "
    "sigmoid is the per-pair probability). An unreadable image gets an \"error\" field (and a null "
    "logits row), the others are still embedded, and the exit status is 1. A file name that is not "
    "UTF-8 is given with U+FFFD for its bad bytes in \"file\" and exactly, in hex, in "
    "\"file_hex\". A text longer than the model's context is an error unless --truncate.",
    run_embed});

ZSCLIP_COMMAND(Command{
    "head",
    "[--model DIR] (--labels A,B,C | --labels-file F) [--templates NAME|FILE] [--truncate] "
    "--out HEAD",
    "build a zero-shot head (class weights) and save it",
    std::string("The head records the model's fingerprint; classify --head refuses it for another "
                "model.\n") +
        kLabelsHelp,
    run_head});

ZSCLIP_COMMAND(Command{
    "classify",
    "[--model DIR] (--labels A,B,C | --labels-file F | --head HEAD) [--templates NAME|FILE] "
    "[--truncate] [--top-k K] [--batch-size N] [--json | --jsonl] (IMAGE... | --images-from FILE | "
    "--index INDEX)",
    "zero-shot classify images",
    std::string(
        "Prints a table (top-k labels and probabilities per image) as each batch is done, or with "
        "--json an array of {\"file\", \"top\":[{\"label\",\"prob\"}], \"probs\":[every class, in "
        "label order], \"labels\":[the classes, in that order], \"scoring\"}, or with --jsonl a "
        "first line {\"labels\", \"scoring\"} and then one such object (without \"labels\") per "
        "image. All three are written and flushed per batch (memory does not grow with the "
        "images); --images-from is read as it arrives. A sigmoid model's table says so on its "
        "first line and gives scores in scientific notation. Progress goes to standard error when "
        "it is a terminal.\nscoring \"softmax\" (CLIP): probabilities over the labels, summing to "
        "1.\nscoring \"sigmoid\" (models with a logit_bias, SigLIP-style): each label's own "
        "probability sigmoid(logit_scale * cosine + logit_bias); these do NOT sum to 1, and all "
        "may be small. An unreadable image is reported on stderr (and as "
        "{\"file\",\"error\",\"code\"} in JSON) while the others are still classified; the exit "
        "status is then 1. A file name that is not UTF-8 is given with U+FFFD for its bad bytes in "
        "\"file\" and exactly, in hex, in \"file_hex\".\n--index INDEX classifies every image of "
        "an index (`zsclip index build`) from its stored features, without decoding them; its "
        "failed images are reported as above. ") +
        kLabelsHelp,
    run_classify});

ZSCLIP_COMMAND(Command{"info", "[--model DIR]", "load a model and print what it is (JSON)", "",
                       run_info});

}  // namespace
}  // namespace zsclip::cli
