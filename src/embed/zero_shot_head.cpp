// The torch-free half of the zero-shot head: prompt sets, scoring, and the head file format.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "base/json_check.h"
#include "base/tensor_check.h"
#include "text/clean.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/utf8.h"
#include "zsclip/zero_shot.h"

namespace zsclip {
namespace {

using detail::check_finite;
using detail::check_tensor;
using detail::json_int;
using detail::shape_string;

#include "embed/prompts_data.inc"

template <size_t N>
std::vector<std::string> to_vector(const char* const (&items)[N]) {
  return std::vector<std::string>(items, items + N);
}

const std::map<std::string, std::vector<std::string>>& template_sets() {
  static const auto* sets = new std::map<std::string, std::vector<std::string>>{
      {"openai-cifar", to_vector(k_cifar100_templates)},
      {"openai-imagenet", to_vector(k_imagenet_templates)},
      {"simple", {"a photo of a {}."}},
  };
  return *sets;
}

constexpr uint64_t kMaxTextFileBytes = uint64_t{64} << 20;  // labels / templates files
constexpr uint64_t kMaxHeadBytes = uint64_t{4} << 30;

std::vector<std::string> read_lines(const std::string& path, const char* what) {
  const std::string text = io::read_file(path, std::string(what) + " file",
                                         {kMaxTextFileBytes, ErrorCode::kInvalidArgument});
  std::vector<std::string> lines;
  // A byte-order mark (as some editors on Windows write) is no part of the first line.
  const size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  for (size_t pos = start; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    lines.push_back(std::move(line));
  }
  return lines;
}

// Head file: "ZSHEAD01", uint64 little-endian JSON length, JSON header, float32 weights [C, D].
constexpr char kHeadMagic[8] = {'Z', 'S', 'H', 'E', 'A', 'D', '0', '1'};

// A number field that must fit a finite float.
float header_float(const nlohmann::json& h, const char* key, const std::string& path) {
  const nlohmann::json& v = h.at(key);
  if (!v.is_number() || !(std::fabs(v.get<double>()) <= double(FLT_MAX)))
    throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": field '" + key +
                                               "' must be a finite float32 number, got " +
                                               v.dump());
  return static_cast<float>(v.get<double>());
}

std::string shorten(const std::string& s, size_t max = 80) {
  return s.size() <= max ? s : s.substr(0, max) + "...(" + std::to_string(s.size()) + " bytes)";
}

}  // namespace

const std::vector<std::string>& builtin_templates(const std::string& name) {
  auto it = template_sets().find(name);
  if (it == template_sets().end()) {
    std::string names;
    for (const auto& [n, _] : template_sets()) names += (names.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::kInvalidArgument,
                "unknown template set \"" + name + "\" (built in: " + names + ")");
  }
  return it->second;
}

std::vector<std::string> builtin_template_names() {
  std::vector<std::string> names;
  for (const auto& [n, _] : template_sets()) names.push_back(n);
  return names;
}

const std::vector<std::string>& builtin_classes(const std::string& dataset) {
  static const auto* sets = new std::map<std::string, std::vector<std::string>>{
      {"cifar10", to_vector(k_cifar10_classes)},
      {"cifar100", to_vector(k_cifar100_classes)},
      {"imagenet", to_vector(k_imagenet_classes)},
  };
  auto it = sets->find(dataset);
  if (it == sets->end())
    throw Error(ErrorCode::kInvalidArgument,
                "unknown dataset \"" + dataset + "\" (built in: cifar10, cifar100, imagenet)");
  return it->second;
}

void validate_templates(const std::vector<std::string>& templates, const std::string& origin) {
  if (templates.empty()) throw Error(ErrorCode::kInvalidArgument, origin + ": no templates");
  for (size_t i = 0; i < templates.size(); ++i) {
    utf8::check(templates[i], origin + ": template " + std::to_string(i + 1));
    if (templates[i].find("{}") == std::string::npos)
      throw Error(ErrorCode::kInvalidArgument, origin + ": template " + std::to_string(i + 1) +
                                                   " \"" + shorten(templates[i]) +
                                                   "\" has no \"{}\" for the class name");
  }
}

void validate_labels(const std::vector<std::string>& labels, const std::string& origin) {
  if (labels.empty()) throw Error(ErrorCode::kInvalidArgument, origin + ": no labels");
  std::set<std::string> seen;
  for (size_t i = 0; i < labels.size(); ++i) {
    utf8::check(labels[i], origin + ": label " + std::to_string(i + 1));
    // Empty once cleaned as CLIP's tokenizer cleans text: nothing but (Unicode) white space, such
    // as a no-break space, byte-order marks or HTML entities of them.
    if (text::normalize_text(labels[i]).empty())
      throw Error(ErrorCode::kInvalidArgument,
                  origin + ": label " + std::to_string(i + 1) + " is empty" +
                      (labels[i].empty() ? "" : " (only white space once cleaned)"));
    if (!seen.insert(labels[i]).second)
      throw Error(ErrorCode::kInvalidArgument, origin + ": label \"" + shorten(labels[i]) +
                                                   "\" appears twice (labels must be unique)");
  }
}

std::vector<std::string> load_templates_file(const std::string& path) {
  auto t = read_lines(path, "template");
  validate_templates(t, path);
  return t;
}

std::vector<std::string> load_labels_file(const std::string& path) {
  auto l = read_lines(path, "labels");
  validate_labels(l, path);
  return l;
}

std::vector<std::string> resolve_templates(const std::string& name_or_path) {
  if (template_sets().count(name_or_path)) return builtin_templates(name_or_path);
  std::error_code ec;
  if (!std::filesystem::exists(name_or_path, ec)) {
    std::string names;
    for (const auto& n : builtin_template_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error(
        ErrorCode::kNotFound,
        "templates \"" + name_or_path + "\" is neither a built-in set (" + names + ") nor a file");
  }
  return load_templates_file(name_or_path);
}

std::string fill_template(const std::string& templ, const std::string& label) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = templ.find("{}", pos)) != std::string::npos; pos = hit + 2)
    out.append(templ, pos, hit - pos).append(label);
  return out.append(templ, pos, std::string::npos);
}

ZeroShotHead ZeroShotHead::from_weights(std::vector<std::string> labels, FloatTensor weights,
                                        float logit_scale_exp, std::string model_fingerprint,
                                        std::vector<std::string> templates, Scoring scoring,
                                        float logit_bias) {
  validate_labels(labels, "zero-shot head");
  for (size_t i = 0; i < templates.size(); ++i)
    utf8::check(templates[i], "zero-shot head: template " + std::to_string(i + 1));
  utf8::check(model_fingerprint, "zero-shot head: model fingerprint");
  check_tensor(weights, "zero-shot head: weights");
  if (weights.dim() != 2 || weights.size(0) != static_cast<int64_t>(labels.size()) ||
      weights.size(1) < 1)
    throw Error(ErrorCode::kInvalidArgument, "zero-shot head: weights must be [num_labels=" +
                                                 std::to_string(labels.size()) + ", D]");
  if (!std::isfinite(logit_scale_exp) || logit_scale_exp <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "zero-shot head: logit_scale_exp must be positive and finite");
  if (!std::isfinite(logit_bias) || (scoring == Scoring::kSoftmax && logit_bias != 0.f))
    throw Error(ErrorCode::kInvalidArgument,
                "zero-shot head: logit_bias must be finite, and 0 with softmax scoring");
  const int64_t d = weights.size(1);
  for (int64_t c = 0; c < weights.size(0); ++c) {
    float* w = weights.row(c);
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += double(w[k]) * w[k];
    norm = std::sqrt(norm);
    if (!(norm > 0) || !std::isfinite(norm))
      throw Error(
          ErrorCode::kInvalidArgument,
          "zero-shot head: weights of label \"" + shorten(labels[c]) + "\" are zero or not finite");
    for (int64_t k = 0; k < d; ++k) w[k] = static_cast<float>(w[k] / norm);
  }
  ZeroShotHead h;
  h.labels_ = std::move(labels);
  h.templates_ = std::move(templates);
  h.weights_ = std::move(weights);
  h.logit_scale_exp_ = logit_scale_exp;
  h.scoring_ = scoring;
  h.logit_bias_ = logit_bias;
  h.fingerprint_ = std::move(model_fingerprint);
  return h;
}

void ZeroShotHead::save(const std::string& path) const {
  if (fingerprint_.empty())
    throw Error(
        ErrorCode::kInvalidModel,
        "head file " + path +
            ": the head's model has no fingerprint (its config.json lacks \"fingerprint\"), "
            "so a saved head could never be matched to it; export the model again with "
            "models/export_clip.py, which records one");
  std::string text;
  try {
    // Softmax heads stay format 1 (older zsclip reads them); a sigmoid head is format 2, which
    // older zsclip refuses instead of scoring it with a softmax.
    nlohmann::json header = {{"format_version", scoring_ == Scoring::kSigmoid ? 2 : 1},
                             {"scoring", scoring_name(scoring_)},
                             {"logit_bias", logit_bias_},
                             {"labels", labels_},
                             {"templates", templates_},
                             {"model_fingerprint", fingerprint_},
                             {"logit_scale_exp", logit_scale_exp_},
                             {"num_classes", num_classes()},
                             {"embed_dim", embed_dim()}};
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // from_weights admits only UTF-8 text: a bug
    throw Error(ErrorCode::kInternal,
                "head file " + path + ": cannot write the header (" + e.what() + ")");
  }
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  // Weights are written in the host's (little-endian x86/ARM) float layout.
  io::write_file_atomic(path, "head file",
                        {{kHeadMagic, 8},
                         {len, 8},
                         {text.data(), text.size()},
                         {weights_.ptr(), weights_.data.size() * sizeof(float)}});
}

ZeroShotHead ZeroShotHead::load(const std::string& path) {
  const std::string bytes =
      io::read_file(path, "head file", {kMaxHeadBytes, ErrorCode::kInvalidConfig});
  const uint64_t file_size = bytes.size();
  if (file_size < 16 || std::memcmp(bytes.data(), kHeadMagic, 8) != 0)
    throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": not a zsclip head (bad magic)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  if (n > file_size - 16)
    throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": truncated header");
  const std::string text = bytes.substr(16, n);
  nlohmann::json h;
  std::vector<std::string> labels, templates;
  int64_t c = 0, d = 0;
  float scale = 0, bias = 0;
  Scoring scoring = Scoring::kSoftmax;
  std::string fingerprint;
  try {
    h = nlohmann::json::parse(text);
    if (!h.is_object())
      throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": the header is not an object");
    const int64_t fv = json_int(h, "format_version", INT64_MIN, INT64_MAX, "head file " + path);
    if (fv > 2)
      throw Error(ErrorCode::kUnsupported, "head file " + path + ": format_version " +
                                               std::to_string(fv) +
                                               " is newer than this zsclip reads");
    if (fv < 1)
      throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": format_version " +
                                                 std::to_string(fv) + " is not 1 or 2");
    labels = h.at("labels").get<std::vector<std::string>>();
    templates = h.value("templates", std::vector<std::string>{});
    fingerprint = h.at("model_fingerprint").get<std::string>();
    scale = header_float(h, "logit_scale_exp", path);
    const std::string sc = h.value("scoring", std::string("softmax"));
    if (sc == "sigmoid") {
      scoring = Scoring::kSigmoid;
      bias = header_float(h, "logit_bias", path);
      if (fv < 2)
        throw Error(ErrorCode::kInvalidConfig,
                    "head file " + path + ": sigmoid scoring needs format_version 2");
    } else if (sc != "softmax") {
      throw Error(ErrorCode::kInvalidConfig,
                  "head file " + path + ": unknown scoring \"" + sc + "\"");
    }
    c = json_int(h, "num_classes", 1, INT32_MAX, "head file " + path);
    d = json_int(h, "embed_dim", 1, 1 << 20, "head file " + path);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": bad header (" + e.what() + ")");
  }
  if (c != static_cast<int64_t>(labels.size()) || d < 1 || d > (1 << 20))
    throw Error(ErrorCode::kInvalidConfig,
                "head file " + path + ": num_classes/embed_dim disagree with labels");
  const uint64_t want = 16 + n + uint64_t(c) * uint64_t(d) * sizeof(float);
  if (file_size != want)
    throw Error(ErrorCode::kInvalidConfig, "head file " + path + ": size " +
                                               std::to_string(file_size) + " bytes, expected " +
                                               std::to_string(want) + " (truncated or corrupt)");
  FloatTensor w({c, d});
  std::memcpy(w.ptr(), bytes.data() + 16 + n, w.data.size() * sizeof(float));
  try {
    return from_weights(std::move(labels), std::move(w), scale, std::move(fingerprint),
                        std::move(templates), scoring, bias);
  } catch (const Error& e) {
    throw Error(e.code(), "head file " + path + ": " + e.what());
  }
}

namespace {

// Dot product with eight independent partial sums, which the compiler turns into vector lanes (one
// running sum is a serial chain of dependent adds: ~8x slower for D = 512).
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int i = 0; i < 8; ++i) acc[i] += a[k + i] * b[k + i];
  float tail = 0.f;
  for (; k < n; ++k) tail += a[k] * b[k];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// A head made by from_weights/build/load, and `rows` rows of finite features at x.
void check_features(const FloatTensor& weights, const float* x, int64_t rows, const char* where) {
  if (weights.dim() != 2)
    throw Error(ErrorCode::kInvalidArgument,
                std::string(where) + ": the head is empty (default-constructed)");
  if (x == nullptr && rows > 0)
    throw Error(ErrorCode::kInvalidArgument, std::string(where) + ": null features");
  const auto d = static_cast<size_t>(weights.size(1));
  check_finite(x, static_cast<size_t>(rows) * d, d, where);
}

void check_top_k(int top_k) {
  if (top_k < 1)
    throw Error(ErrorCode::kInvalidArgument,
                "zero-shot head: top_k must be >= 1, got " + std::to_string(top_k));
}

// logits[i][j] = scale * <x_i / |x_i|, w_j> for rows x_0..x_{n-1} (row stride d). Each class row is
// read once for a block of images while it sits in L1, instead of once per image.
void logits_rows(const FloatTensor& weights, float scale, const float* x, int64_t n, float* out) {
  const int64_t c = weights.size(0), d = weights.size(1);
  constexpr int64_t kBlock = 16;  // 16 x 512 floats of features stay in L1/L2
  std::vector<float> inv(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += double(x[i * d + k]) * x[i * d + k];
    inv[size_t(i)] = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.f;
  }
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t i1 = std::min(n, i0 + kBlock);
    for (int64_t j = 0; j < c; ++j) {
      const float* w = weights.row(j);
      for (int64_t i = i0; i < i1; ++i)
        out[i * c + j] = scale * dot(x + i * d, w, d) * inv[size_t(i)];
    }
  }
}

void logits_row(const FloatTensor& weights, float scale, const float* x, float* out) {
  logits_rows(weights, scale, x, 1, out);
}

void sigmoid(const float* logits, float bias, float* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
    out[j] = static_cast<float>(1.0 / (1.0 + std::exp(-(double(logits[j]) + bias))));
}

void softmax(const float* logits, float* out, int64_t n) {
  const float max_logit = *std::max_element(logits, logits + n);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (out[j] = std::exp(logits[j] - max_logit));
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(out[j] / sum);
}

}  // namespace

void ZeroShotHead::probs(const float* x, float* out) const {
  check_features(weights_, x, 1, "zero-shot head: probs");
  if (out == nullptr)
    throw Error(ErrorCode::kInvalidArgument, "zero-shot head: probs: null output");
  logits_row(weights_, logit_scale_exp_, x, out);
  if (scoring_ == Scoring::kSigmoid)
    sigmoid(out, logit_bias_, out, num_classes());
  else
    softmax(out, out, num_classes());
}

FloatTensor ZeroShotHead::logits(const FloatTensor& features) const {
  check_features(weights_, features.ptr(), 0, "zero-shot head: logits");
  check_tensor(features, "zero-shot head: image features");
  if (features.dim() != 2 || features.size(1) != embed_dim())
    throw Error(ErrorCode::kInvalidArgument, "zero-shot head: image features must be [N, " +
                                                 std::to_string(embed_dim()) + "], got " +
                                                 shape_string(features.shape));
  FloatTensor out({features.size(0), num_classes()});
  if (features.size(0) > 0) {
    check_features(weights_, features.ptr(), features.size(0), "zero-shot head: image features");
    logits_rows(weights_, logit_scale_exp_, features.ptr(), features.size(0), out.ptr());
  }
  return out;
}

namespace {

Prediction predict(const std::vector<std::string>& labels, const float* logit, int64_t n, int top_k,
                   Scoring scoring, float bias) {
  Prediction p;
  p.probs.resize(static_cast<size_t>(n));
  if (scoring == Scoring::kSigmoid)
    sigmoid(logit, bias, p.probs.data(), n);
  else
    softmax(logit, p.probs.data(), n);
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(static_cast<size_t>(top_k), order.size());
  std::partial_sort(
      order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
      [&](int a, int b) { return logit[a] > logit[b] || (logit[a] == logit[b] && a < b); });
  for (size_t i = 0; i < k; ++i)
    p.top.push_back({order[i], labels[order[i]], p.probs[order[i]], logit[order[i]]});
  return p;
}

}  // namespace

Prediction ZeroShotHead::classify_one(const float* features, int top_k) const {
  check_top_k(top_k);
  check_features(weights_, features, 1, "zero-shot head: classify_one");
  std::vector<float> logit(static_cast<size_t>(num_classes()));
  logits_row(weights_, logit_scale_exp_, features, logit.data());
  return predict(labels_, logit.data(), num_classes(), top_k, scoring_, logit_bias_);
}

std::vector<Prediction> ZeroShotHead::classify(const FloatTensor& features, int top_k) const {
  check_top_k(top_k);
  const FloatTensor l = logits(features);  // checks the shape
  std::vector<Prediction> out;
  out.reserve(static_cast<size_t>(features.size(0)));
  for (int64_t i = 0; i < features.size(0); ++i)
    out.push_back(predict(labels_, l.row(i), num_classes(), top_k, scoring_, logit_bias_));
  return out;
}

}  // namespace zsclip
