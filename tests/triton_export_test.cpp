// zsclip export-triton: the model repository it writes. Triton cannot run here, so the files are
// checked the way Triton and its PyTorch backend read them: config.pbtxt parsed as protobuf text
// format and checked field by field against the ModelConfig rules for platform pytorch_libtorch
// (docs/user_guide/model_configuration.md, the backend's naming conventions), and each 1/model.pt
// loaded with LibTorch, put in eval mode and run on a batch, its output compared with `zsclip
// embed`.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>

#include "model_util.h"
#include "zsclip/config.h"
#include "zsclip/preprocess.h"
#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

using namespace ::zsclip::testing;
using json = nlohmann::json;
namespace fs = std::filesystem;

// ---- a small reader of protobuf text format (what config.pbtxt is) into JSON: every field is a
// list of its values (repeated or not), messages are objects, enums stay identifiers.
class Pbtxt {
 public:
  static json parse(const std::string& text) {
    Pbtxt p(text);
    json m = p.message(false);
    if (p.peek() != "") throw std::runtime_error("pbtxt: trailing '" + p.peek() + "'");
    return m;
  }

 private:
  explicit Pbtxt(const std::string& t) {
    size_t i = 0;
    while (i < t.size()) {
      const char c = t[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
      } else if (c == '#') {
        while (i < t.size() && t[i] != '\n') ++i;
      } else if (c == '"') {
        size_t j = i + 1;
        while (j < t.size() && t[j] != '"') j += t[j] == '\\' ? 2 : 1;
        if (j >= t.size()) throw std::runtime_error("pbtxt: unterminated string");
        tokens_.push_back(t.substr(i, j - i + 1));
        i = j + 1;
      } else if (std::string("{}[]:,").find(c) != std::string::npos) {
        tokens_.push_back(std::string(1, c));
        ++i;
      } else {
        size_t j = i;
        while (j < t.size() && (std::isalnum(static_cast<unsigned char>(t[j])) || t[j] == '_' ||
                                t[j] == '-' || t[j] == '.'))
          ++j;
        if (j == i) throw std::runtime_error(std::string("pbtxt: unexpected '") + c + "'");
        tokens_.push_back(t.substr(i, j - i));
        i = j;
      }
    }
  }
  std::string peek() const { return pos_ < tokens_.size() ? tokens_[pos_] : ""; }
  std::string next() {
    if (pos_ >= tokens_.size()) throw std::runtime_error("pbtxt: unexpected end");
    return tokens_[pos_++];
  }
  void expect(const std::string& t) {
    if (next() != t) throw std::runtime_error("pbtxt: expected '" + t + "'");
  }
  json scalar(const std::string& tok) {
    if (tok.front() == '"') return tok.substr(1, tok.size() - 2);
    if (std::isdigit(static_cast<unsigned char>(tok.front())) || tok.front() == '-')
      return std::stoll(tok);
    return json{{"enum", tok}};
  }
  json value() {
    if (peek() == "{") {
      next();
      json m = message(true);
      expect("}");
      return m;
    }
    return scalar(next());
  }
  json message(bool nested) {
    json m = json::object();
    while (peek() != "" && !(nested && peek() == "}")) {
      const std::string name = next();
      if (!std::isalpha(static_cast<unsigned char>(name.front())))
        throw std::runtime_error("pbtxt: field name '" + name + "'");
      if (peek() == ":") next();
      if (!m.contains(name)) m[name] = json::array();
      if (peek() == "[") {
        next();
        while (peek() != "]") {
          m[name].push_back(value());
          if (peek() == ",") next();
        }
        next();
      } else {
        m[name].push_back(value());
      }
    }
    return m;
  }
  std::vector<std::string> tokens_;
  size_t pos_ = 0;
};

// The single value of a non-repeated field.
const json& one(const json& m, const std::string& field) {
  static const json missing;
  if (!m.contains(field) || m[field].size() != 1) {
    ADD_FAILURE() << "field '" << field << "' must appear exactly once in " << m.dump();
    return missing;
  }
  return m[field][0];
}

// Triton's DataType enum (model_config.proto).
const std::set<std::string>& triton_types() {
  static const std::set<std::string> t = {"TYPE_BOOL",   "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32",
                                          "TYPE_UINT64", "TYPE_INT8",  "TYPE_INT16",  "TYPE_INT32",
                                          "TYPE_INT64",  "TYPE_FP16",  "TYPE_FP32",   "TYPE_FP64",
                                          "TYPE_STRING", "TYPE_BF16"};
  return t;
}

struct Exported {
  std::string input, input_type, output;
  std::vector<int64_t> input_dims;
  int64_t embed_dim;
};

// config.pbtxt of REPO/NAME against what Triton requires of a pytorch_libtorch model, and model.pt
// against the PyTorch backend's naming rules. `module` receives the loaded module (in eval mode).
void check_model_dir(const std::string& repo, const std::string& name, const Exported& want,
                     int max_batch, int64_t delay_us, torch::jit::Module* module) {
  const fs::path dir = fs::path(repo) / name;
  EXPECT_TRUE(fs::is_regular_file(dir / "config.pbtxt"));
  EXPECT_TRUE(fs::is_regular_file(dir / "1" / "model.pt"))
      << "version 1, the backend's default file name";
  json c = Pbtxt::parse(read_file((dir / "config.pbtxt").string()));
  for (const auto& [k, _] : c.items())
    EXPECT_TRUE((std::set<std::string>{"name", "platform", "max_batch_size", "input", "output",
                                       "dynamic_batching"}
                     .count(k)))
        << "unexpected field " << k;
  EXPECT_EQ(one(c, "name"), name) << "name must match the model's directory";
  EXPECT_EQ(one(c, "platform"), "pytorch_libtorch");
  EXPECT_FALSE(c.contains("backend"));  // platform alone selects the PyTorch backend
  EXPECT_EQ(one(c, "max_batch_size"), max_batch);
  EXPECT_GE(one(c, "max_batch_size").get<int64_t>(), 1) << "batching needs max_batch_size >= 1";
  const json& db = one(c, "dynamic_batching");
  EXPECT_EQ(one(db, "max_queue_delay_microseconds"), delay_us);
  for (const char* io : {"input", "output"}) {
    ASSERT_TRUE(c.contains(io));
    ASSERT_EQ(c[io].size(), 1u) << io;
    const json& t = c[io][0];
    for (const auto& [k, _] : t.items())
      EXPECT_TRUE((std::set<std::string>{"name", "data_type", "dims"}.count(k)))
          << io << ": unexpected field " << k;
    EXPECT_TRUE(triton_types().count(one(t, "data_type")["enum"].get<std::string>())) << t.dump();
    ASSERT_TRUE(t.contains("dims"));
    EXPECT_GE(t["dims"].size(), 1u) << "the empty shape is not allowed";
    for (const auto& d : t["dims"])
      EXPECT_GE(d.get<int64_t>(), 1) << "fixed, positive dims (batch dim excluded)";
  }
  const json& in = c["input"][0];
  const json& out = c["output"][0];
  EXPECT_EQ(one(in, "name"), want.input);
  EXPECT_EQ(one(in, "data_type")["enum"], want.input_type);
  EXPECT_EQ(in["dims"].get<std::vector<int64_t>>(), want.input_dims);
  EXPECT_EQ(one(out, "name"), want.output);
  EXPECT_EQ(one(out, "data_type")["enum"], "TYPE_FP32");
  EXPECT_EQ(out["dims"].get<std::vector<int64_t>>(), std::vector<int64_t>{want.embed_dim});

  torch::jit::Module m = torch::jit::load((dir / "1" / "model.pt").string(), torch::kCPU);
  m.eval();  // the backend calls eval(): every submodule must have 'training'
  const auto& schema = m.get_method("forward").function().getSchema();
  std::vector<std::string> args;
  for (const auto& a : schema.arguments()) args.push_back(a.name());
  // Inputs: named after forward()'s arguments (the backend's first naming convention).
  EXPECT_EQ(args, (std::vector<std::string>{"self", want.input}));
  // The output: one tensor; its name has no "__<index>", so the backend takes outputs in config
  // order.
  EXPECT_EQ(schema.returns().size(), 1u);
  EXPECT_EQ(schema.returns()[0].type()->kind(), c10::TypeKind::TensorType);
  EXPECT_EQ(std::string(one(out, "name")).find("__"), std::string::npos);
  *module = m;
}

std::vector<std::string> example_images() {
  std::vector<std::string> out;
  for (const char* f : {"red_circle", "blue_star", "green_triangle", "yellow_square"})
    out.push_back(source_path(std::string("examples/images/") + f + ".png"));
  return out;
}

// `zsclip embed --model DIR` rows for images and texts, flattened.
std::pair<std::vector<double>, std::vector<double>> cli_embed(
    const std::string& model, const std::vector<std::string>& images,
    const std::vector<std::string>& texts) {
  std::string args = "embed --truncate --model " + sh(model);
  for (const auto& p : images) args += " --image " + sh(p);
  for (const auto& t : texts) args += " --text " + sh(t);
  CliResult r = run_cli(args);
  EXPECT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  std::vector<double> im, tx;
  for (const auto& x : j["images"])
    for (double v : x["features"]) im.push_back(v);
  for (const auto& x : j["texts"])
    for (double v : x["features"]) tx.push_back(v);
  return {im, tx};
}

::testing::AssertionResult same(const torch::Tensor& got, const std::vector<double>& want,
                                double tol) {
  torch::Tensor g = got.contiguous().to(torch::kDouble);
  if (static_cast<size_t>(g.numel()) != want.size())
    return ::testing::AssertionFailure() << "size " << g.numel() << " vs " << want.size();
  double m = 1, e = 0;
  const double* p = g.data_ptr<double>();
  for (size_t i = 0; i < want.size(); ++i) {
    m = std::max(m, std::abs(want[i]));
    e = std::max(e, std::abs(p[i] - want[i]));
  }
  if (e > tol * m)
    return ::testing::AssertionFailure() << "max abs difference " << e << " (scale " << m << ")";
  return ::testing::AssertionSuccess();
}

// Exports `model`, then runs both model.pt files on inputs made with the repository's own client
// half (config.json + vocabulary: zsclip's preprocessing and tokenizer) and compares with embed.
void export_and_compare(const std::string& model, const std::string& name, double tol) {
  const std::string repo = temp_dir("triton_" + name) + "/repo";
  CliResult r = run_cli("export-triton --model " + sh(model) + " --out " + sh(repo) +
                        " --max-batch 8 --max-delay-ms 2");
  ASSERT_EQ(r.status, 0) << r.err;
  const ModelConfig cfg = ModelConfig::load(repo);  // the copy at the repository's top level
  const int64_t n = cfg.preprocess.image_size, l = cfg.text.context_length, d = cfg.embed_dim;
  torch::jit::Module image, text;
  ASSERT_NO_FATAL_FAILURE(check_model_dir(repo, "image_encoder",
                                          {"PIXELS", "TYPE_FP32", "IMAGE_EMBEDDING", {3, n, n}, d},
                                          8, 2000, &image));
  ASSERT_NO_FATAL_FAILURE(check_model_dir(
      repo, "text_encoder", {"TOKENS", "TYPE_INT64", "TEXT_EMBEDDING", {l}, d}, 8, 2000, &text));

  const auto images = example_images();
  const std::vector<std::string> texts = {
      "a photo of a red circle.", "blue star", "",
      "a much longer text that may well run past the context length of the small model"};
  const auto [want_images, want_texts] = cli_embed(model, images, texts);

  Preprocessor pre(cfg.preprocess);
  std::vector<float> px;
  for (const auto& p : images) {
    FloatTensor t = pre.from_file(p);
    px.insert(px.end(), t.data.begin(), t.data.end());
  }
  torch::Tensor pixels =
      torch::from_blob(px.data(), {static_cast<int64_t>(images.size()), 3, n, n}, torch::kFloat);
  torch::Tensor got = [&] {
    c10::InferenceMode guard;
    return image.forward({pixels}).toTensor().clone();
  }();
  EXPECT_EQ(got.sizes().vec(), (std::vector<int64_t>{static_cast<int64_t>(images.size()), d}));
  EXPECT_TRUE(same(got, want_images, tol)) << name << " image_encoder";

  IdTensor ids = Tokenizer::from_config(cfg).tokenize(texts, l);
  torch::Tensor tokens =
      torch::from_blob(ids.ptr(), {static_cast<int64_t>(texts.size()), l}, torch::kLong);
  torch::Tensor got_t = [&] {
    c10::InferenceMode guard;
    return text.forward({tokens}).toTensor().clone();
  }();
  EXPECT_EQ(got_t.sizes().vec(), (std::vector<int64_t>{static_cast<int64_t>(texts.size()), d}));
  EXPECT_TRUE(same(got_t, want_texts, tol)) << name << " text_encoder";

  // The client half equals the model's: same token ids, same pixels.
  CliResult a = run_cli("tokenize --model " + sh(repo) + " " + sh(texts[0]));
  CliResult b = run_cli("tokenize --model " + sh(model) + " " + sh(texts[0]));
  EXPECT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  const json info = json::parse(read_file(repo + "/zsclip_triton.json"));
  const json model_info = json::parse(run_cli("info --model " + sh(model)).out);
  EXPECT_EQ(info["logit_scale_exp"], model_info["logit_scale_exp"]);
  EXPECT_EQ(info["scoring"], model_info["scoring"]);
  EXPECT_EQ(info["fingerprint"], model_info["fingerprint"]);
}

TEST(TritonExport, ShippedModelRepositoryIsWellFormedAndMatchesEmbed) {
  export_and_compare(source_path("models/shapes"), "shapes", 1e-6);
}

TEST(TritonExport, OpenAITinyRepositoryMatchesEmbed) {
  ZSCLIP_REQUIRE_TINY_EXPORTS();
  export_and_compare(tiny_export("jit_archive"), "openai_tiny", 1e-6);
}

TEST(TritonExport, ProjectionBiasesAreFoldedIn) {
  // The shipped model with projection biases added (as format-2 open_clip exports carry them):
  // zsclip's Model adds them, so the exported modules must too.
  const std::string dir = temp_dir("triton_bias_model");
  for (const auto& e : fs::directory_iterator(source_path("models/shapes")))
    if (e.is_regular_file()) fs::copy_file(e.path(), fs::path(dir) / e.path().filename());
  {
    torch::jit::Module proj = torch::jit::load(dir + "/projection.pt");
    const int64_t d = ModelConfig::load(dir).embed_dim;
    torch::manual_seed(17);
    proj.register_buffer("image_projection_bias", torch::randn({d}));
    proj.register_buffer("text_projection_bias", torch::randn({d}));
    proj.save(dir + "/projection.pt");
    // An edited export: drop the recorded file checks, as an older export would have none.
    auto cfg = nlohmann::json::parse(read_file(dir + "/config.json"));
    cfg.erase("file_checks");
    std::ofstream(dir + "/config.json") << cfg.dump(2);
  }
  export_and_compare(dir, "bias", 1e-6);
  // The bias really is in the exported modules (embed adds it, and they matched embed).
  for (const char* m : {"image_encoder", "text_encoder"}) {
    torch::jit::Module module = torch::jit::load(std::string(ZSCLIP_BINARY_DIR) +
                                                 "/tmp/triton_bias/repo/" + m + "/1/model.pt");
    EXPECT_TRUE(module.hasattr("projection_bias")) << m;
  }
}

TEST(TritonExport, RefusesWhatItCannotDo) {
  const std::string repo = temp_dir("triton_refuse") + "/repo";
  EXPECT_EQ(run_cli("export-triton").status, 2);
  ASSERT_EQ(run_cli("export-triton --out " + sh(repo)).status, 0);
  CliResult again = run_cli("export-triton --out " + sh(repo));
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  EXPECT_EQ(run_cli("export-triton --force --out " + sh(repo)).status, 0);
  CliResult missing = run_cli("export-triton --model /nonexistent/model --out " + sh(repo + "2"));
  EXPECT_EQ(missing.status, 1);
  EXPECT_FALSE(fs::exists(repo + "2/image_encoder"));
  if (fs::exists(tiny_export("int8") + "/config.json")) {
    CliResult q =
        run_cli("export-triton --model " + sh(tiny_export("int8")) + " --out " + sh(repo + "3"));
    EXPECT_EQ(q.status, 1);
    EXPECT_NE(q.err.find("quantization"), std::string::npos) << q.err;
  }
}

}  // namespace
}  // namespace zsclip
