// zsclip embed / head / classify / info: the subcommands that load a model.
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <optional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "cli/cli.h"
#include "zsclip/classifier.h"
#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/runtime.h"
#include "zsclip/tokenizer.h"
#include "zsclip/version.h"
#include "zsclip/zero_shot.h"

namespace zsclip::cli {
namespace {

using json = nlohmann::json;

ModelOptions model_options(const Args& args, bool text_encoder) {
  ModelOptions o;
  o.device = args.get("--device", "cpu");
  if (const int threads = args.get_int("--threads", 0, 0, 1024)) {
    RuntimeOptions ro;
    ro.threads = threads;
    o.runtime = Runtime::create(ro);
  }
  o.load_text_encoder = text_encoder;
  return o;
}

std::string model_dir(const Args& args) { return args.get("--model", default_model_dir()); }

std::vector<std::string> labels_of(const Args& args) {
  if (args.has("--labels") && args.has("--labels-file"))
    throw UsageError("give only one of --labels and --labels-file");
  std::vector<std::string> labels = args.has("--labels-file") ? load_labels_file(args.get("--labels-file"))
                                                              : split_list(args.get("--labels"));
  validate_labels(labels, args.has("--labels-file") ? args.get("--labels-file") : "--labels");
  return labels;
}

json features_json(const float* f, int64_t d) { return json(std::vector<float>(f, f + d)); }

int run_embed(const Args& args) {
  const auto images = args.all("--image");
  const auto texts = args.all("--text");
  if (images.empty() && texts.empty()) throw UsageError("give at least one --image or --text");
  const int batch = args.get_int("--batch-size", 16, 1, 4096);
  Model model = Model::load(model_dir(args), model_options(args, !texts.empty()));
  const int64_t d = model.embed_dim();
  int status = 0;
  json out = {{"images", json::array()},
              {"texts", json::array()},
              {"logits_per_image", json::array()},
              {"scoring", scoring_name(model.scoring())}};
  if (model.scoring() == Scoring::kSigmoid) out["logit_bias"] = model.logit_bias();

  // Images: preprocess a batch (bad files reported, others kept), encode the good ones.
  Preprocessor pre(model.config().preprocess);
  std::vector<std::vector<float>> image_feats(images.size());
  const size_t per = static_cast<size_t>(3 * model.image_size() * model.image_size());
  for (size_t begin = 0; begin < images.size(); begin += static_cast<size_t>(batch)) {
    std::vector<std::string> paths(images.begin() + static_cast<std::ptrdiff_t>(begin),
                                   images.begin() + static_cast<std::ptrdiff_t>(std::min(images.size(), begin + batch)));
    std::vector<float> pixels(paths.size() * per);
    auto status_of = pre.batch_files_into(paths, pixels.data());
    std::vector<size_t> good;
    for (size_t i = 0; i < paths.size(); ++i) {
      if (!status_of[i].ok) {
        std::cerr << "zsclip embed: error [" << error_code_name(status_of[i].code) << "]: " << status_of[i].error << "\n";
        status = 1;
        continue;
      }
      if (good.size() != i) std::copy_n(pixels.data() + i * per, per, pixels.data() + good.size() * per);
      good.push_back(i);
    }
    std::vector<float> feats(good.size() * static_cast<size_t>(d));
    model.encode_images(pixels.data(), static_cast<int64_t>(good.size()), feats.data());
    for (size_t j = 0; j < good.size(); ++j)
      image_feats[begin + good[j]].assign(feats.begin() + static_cast<std::ptrdiff_t>(j * d),
                                          feats.begin() + static_cast<std::ptrdiff_t>((j + 1) * d));
    for (size_t i = 0; i < paths.size(); ++i) {
      if (image_feats[begin + i].empty())
        out["images"].push_back({{"file", paths[i]}, {"error", status_of[i].error}});
      else
        out["images"].push_back({{"file", paths[i]}, {"features", image_feats[begin + i]}});
    }
  }

  std::vector<std::vector<float>> text_feats;
  if (!texts.empty()) {
    Tokenizer tok = model.load_tokenizer();
    for (size_t begin = 0; begin < texts.size(); begin += static_cast<size_t>(batch)) {
      std::vector<std::string> chunk(texts.begin() + static_cast<std::ptrdiff_t>(begin),
                                     texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), begin + batch)));
      IdTensor ids = tok.tokenize(chunk, model.context_length(), true);
      FloatTensor feats = model.encode_texts(ids);
      for (size_t i = 0; i < chunk.size(); ++i) {
        text_feats.emplace_back(feats.row(static_cast<int64_t>(i)), feats.row(static_cast<int64_t>(i)) + d);
        out["texts"].push_back({{"text", chunk[i]},
                                {"tokens", tok.encode_with_specials(chunk[i], model.context_length(), true)},
                                {"features", text_feats.back()}});
      }
    }
    auto norm = [&](const std::vector<float>& v) {
      double s = 0;
      for (float x : v) s += double(x) * x;
      return std::sqrt(s);
    };
    const double scale = model.logit_scale_exp();
    for (const auto& fi : image_feats) {
      if (fi.empty()) {
        out["logits_per_image"].push_back(nullptr);
        continue;
      }
      json row = json::array();
      const double ni = norm(fi);
      for (const auto& ft : text_feats) {
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += double(fi[k]) * ft[k];
        row.push_back(scale * dot / (ni * norm(ft)));
      }
      out["logits_per_image"].push_back(row);
    }
  }
  std::cout << out.dump() << "\n";
  return status;
}

int run_head(const Args& args) {
  if (!args.has("--out")) throw UsageError("--out HEAD is required");
  if (!args.has("--labels") && !args.has("--labels-file")) throw UsageError("give --labels or --labels-file");
  auto labels = labels_of(args);
  auto templates = resolve_templates(args.get("--templates", "simple"));
  Model model = Model::load(model_dir(args), model_options(args, true));
  ZeroShotHead head = ZeroShotHead::build(model, model.load_tokenizer(), labels, templates);
  head.save(args.get("--out"));
  std::cerr << "zsclip head: " << labels.size() << " classes x " << templates.size() << " templates -> "
            << args.get("--out") << "\n";
  return 0;
}

int run_classify(const Args& args) {
  const auto& images = args.positional();
  if (images.empty()) throw UsageError("no IMAGE given");
  const bool has_labels = args.has("--labels") || args.has("--labels-file");
  if (has_labels == args.has("--head")) throw UsageError("give --labels, --labels-file or --head (one of them)");
  ClassifierOptions co;
  co.top_k = args.get_int("--top-k", 5, 1, 1 << 20);
  co.batch_size = args.get_int("--batch-size", 16, 1, 4096);
  std::optional<ZeroShotClassifier> clf;
  if (args.has("--head")) {
    if (args.has("--templates")) throw UsageError("--templates has no effect with --head (the head has its own)");
    clf.emplace(ZeroShotClassifier::from_head(model_dir(args), args.get("--head"), model_options(args, false), co));
  } else {
    clf.emplace(ZeroShotClassifier::create(model_dir(args), labels_of(args),
                                           resolve_templates(args.get("--templates", "simple")),
                                           model_options(args, true), co));
  }
  auto results = clf->classify_files(images);
  const char* scoring = scoring_name(clf->head().scoring());
  int status = 0;
  if (args.has("--json")) {
    json out = json::array();
    for (const auto& r : results) {
      if (!r.ok) {
        out.push_back({{"file", r.source}, {"error", r.error}, {"code", error_code_name(r.code)}, {"scoring", scoring}});
        continue;
      }
      json top = json::array();
      for (const auto& s : r.top) top.push_back({{"label", s.label}, {"prob", s.prob}});
      out.push_back({{"file", r.source}, {"top", top}, {"probs", r.probs}, {"scoring", scoring}});
    }
    std::cout << out.dump(2) << "\n";
  } else {
    for (const auto& r : results) {
      if (!r.ok) continue;
      std::cout << r.source << "\n";
      for (const auto& s : r.top)
        std::cout << "  " << std::fixed << std::setprecision(4) << s.prob << "  " << s.label << "\n";
    }
  }
  for (const auto& r : results)
    if (!r.ok) {
      std::cerr << "zsclip classify: error [" << error_code_name(r.code) << "]: " << r.error << "\n";
      status = 1;
    }
  return status;
}

int run_info(const Args& args) {
  Model model = Model::load(model_dir(args), model_options(args, true));
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
            {"quantization", c.quantization},
            {"device", model.device()},
            {"logit_scale_exp", model.logit_scale_exp()},
            {"scoring", scoring_name(model.scoring())},
            {"logit_bias", model.logit_bias()},
            {"activation", c.activation},
            {"source_layout", c.source_layout},
            {"cuda_available", cuda_available()}};
  std::cout << j.dump(2) << "\n";
  return 0;
}

const char* kLabelsHelp =
    "Labels: --labels \"red circle,blue star\" (comma-separated) or --labels-file F (one a line).\n"
    "Templates: a built-in set (simple: \"a photo of a {}.\", openai-cifar: 18, openai-imagenet: 80)\n"
    "or a file with one template a line; {} is replaced by the label.";

ZSCLIP_COMMAND(Command{
    "embed",
    "[--model DIR] [--image FILE]... [--text TEXT]... [--batch-size N]",
    "print projected image/text features and logits as JSON",
    "Output: {\"images\":[{\"file\",\"features\"}], \"texts\":[{\"text\",\"tokens\",\"features\"}],\n"
    "\"logits_per_image\":[[...]]}; features are projected, not normalised; logits are\n"
    "logit_scale_exp * cosine. An unreadable image gets an \"error\" field (and a null logits row),\n"
    "the others are still embedded, and the exit status is 1.",
    {model_option(), {"--image", "FILE", "an image to embed", true}, {"--text", "TEXT", "a text to embed", true},
     {"--batch-size", "N", "images/texts per encoder call (default 16)"}, threads_option(), device_option()},
    run_embed});

ZSCLIP_COMMAND(Command{
    "head",
    "[--model DIR] (--labels A,B,C | --labels-file F) [--templates NAME|FILE] --out HEAD",
    "build a zero-shot head (class weights) and save it",
    std::string("The head records the model's fingerprint; classify --head refuses it for another model.\n") +
        kLabelsHelp,
    {model_option(), {"--labels", "LIST", "comma-separated class labels"},
     {"--labels-file", "FILE", "class labels, one a line"},
     {"--templates", "NAME|FILE", "prompt templates (default: simple)"}, {"--out", "HEAD", "output head file"},
     threads_option(), device_option()},
    run_head});

ZSCLIP_COMMAND(Command{
    "classify",
    "[--model DIR] (--labels A,B,C | --labels-file F | --head HEAD) [--templates NAME|FILE] [--top-k K] "
    "[--batch-size N] [--json] IMAGE...",
    "zero-shot classify images",
    std::string("Prints a table (top-k labels and probabilities per image), or with --json an array of\n"
                "{\"file\", \"top\":[{\"label\",\"prob\"}], \"probs\":[every class, in label order],\n"
                "\"scoring\"}. scoring \"softmax\" (CLIP): probabilities over the labels, summing to 1.\n"
                "scoring \"sigmoid\" (models with a logit_bias, SigLIP-style): each label's own probability\n"
                "sigmoid(logit_scale * cosine + logit_bias); these do NOT sum to 1, and all may be small.\n"
                "An unreadable image is reported on stderr (and as {\"file\",\"error\"} in JSON) while the\n"
                "others are still classified; the exit status is then 1.\n") +
        kLabelsHelp,
    {model_option(), {"--labels", "LIST", "comma-separated class labels"},
     {"--labels-file", "FILE", "class labels, one a line"},
     {"--head", "HEAD", "a head saved by `zsclip head` (the text encoder is not loaded)"},
     {"--templates", "NAME|FILE", "prompt templates (default: simple)"},
     {"--top-k", "K", "labels shown per image (default 5)"},
     {"--batch-size", "N", "images per encoder call (default 16)"}, {"--json", "", "JSON output"},
     threads_option(), device_option()},
    run_classify});

ZSCLIP_COMMAND(Command{"info", "[--model DIR]", "load a model and print what it is (JSON)", "",
                       {model_option(), threads_option(), device_option()}, run_info});

}  // namespace
}  // namespace zsclip::cli
