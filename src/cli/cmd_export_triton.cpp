// zsclip export-triton: a Triton Inference Server model repository (PyTorch/LibTorch backend) that
// serves this model's encoders, the projection folded in, so that Triton's outputs equal
// `zsclip embed` / `zsclip serve`'s IMAGE_EMBEDDING and TEXT_EMBEDDING.
//
//   REPO/image_encoder/config.pbtxt, REPO/image_encoder/1/model.pt   PIXELS [N,3,n,n] ->
//   IMAGE_EMBEDDING [N,D] REPO/text_encoder/config.pbtxt,  REPO/text_encoder/1/model.pt    TOKENS
//   [N,L] int64 -> TEXT_EMBEDDING [N,D] REPO/config.json + the vocabulary   the client half:
//   `zsclip tokenize --model REPO`, `zsclip
//                                       preprocess --model REPO` or the C++ API (Triton reads only
//                                       subdirectories of a repository, so these are not models)
//   REPO/zsclip_triton.json             what a client needs besides: logit scale, scoring, names
//
// Each model.pt is a TorchScript module whose forward(PIXELS) / forward(TOKENS) calls the exported
// encoder and multiplies by the projection (plus its bias, when the model has one). The input names
// are forward()'s argument names, which the PyTorch backend matches to config.pbtxt's input names;
// the single output is taken by position. Before returning, the saved modules are loaded again and
// checked against zsclip's own Model on sample inputs.
#include <torch/script.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "cli/cli.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/tokenizer.h"
#include "zsclip/version.h"

namespace zsclip::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

template <typename Fn>
auto torch_call(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    if (what.size() > 600) what = what.substr(0, 600) + "...";
    throw Error(ErrorCode::kInvalidModel, context + ": " + what);
  } catch (const std::exception& e) {  // TorchScript compilation errors, I/O
    std::string what = e.what();
    if (what.size() > 600) what = what.substr(0, 600) + "...";
    throw Error(ErrorCode::kInvalidModel, context + ": " + what);
  }
}

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// A tensor attribute of projection.pt; undefined when absent (optional) or empty (no bias).
torch::Tensor projection_attr(torch::jit::Module& proj, const std::string& path,
                              const std::string& name, bool optional) {
  if (!proj.hasattr(name)) {
    if (optional) return {};
    throw Error(ErrorCode::kInvalidModel, path + ": has no attribute '" + name + "'");
  }
  c10::IValue v = proj.attr(name);
  if (!v.isTensor())
    throw Error(ErrorCode::kInvalidModel, path + ": attribute '" + name + "' is not a tensor");
  torch::Tensor t = v.toTensor().detach().to(torch::kFloat).contiguous();
  if (optional && t.numel() == 0) return {};
  return t;
}

// Wraps `encoder` as forward(INPUT) -> encoder(INPUT) @ projection (+ bias).
torch::jit::Module fold(torch::jit::Module encoder, const torch::Tensor& projection,
                        const torch::Tensor& bias, const std::string& class_name,
                        const std::string& input, const std::string& path) {
  return torch_call(path + ": folding the projection into the encoder", [&] {
    encoder.eval();
    torch::jit::Module m{c10::QualifiedName("__torch__.zsclip." + class_name)};
    if (!m.hasattr("training")) m.register_attribute("training", c10::BoolType::get(), false);
    m.register_module("encoder", encoder);
    m.register_buffer("projection", projection);
    std::string body = "torch.matmul(self.encoder.forward(" + input + ").float(), self.projection)";
    if (bias.defined()) {
      m.register_buffer("projection_bias", bias);
      body += " + self.projection_bias";
    }
    m.define("def forward(self, " + input + ": Tensor) -> Tensor:\n    return " + body + "\n");
    m.eval();
    return m;
  });
}

std::string pbtxt(const std::string& name, int max_batch, int64_t delay_us,
                  const std::string& input, const char* input_type,
                  const std::vector<int64_t>& input_dims, const std::string& output,
                  int64_t embed_dim, const std::string& note) {
  auto dims = [](const std::vector<int64_t>& d) {
    std::string s = "[ ";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + " ]";
  };
  std::ostringstream o;
  o << "# Written by zsclip " << version() << " export-triton. " << note << "\n"
    << "name: \"" << name << "\"\n"
    << "platform: \"pytorch_libtorch\"\n"
    << "max_batch_size: " << max_batch << "\n"
    << "input [\n  {\n    name: \"" << input << "\"\n    data_type: " << input_type
    << "\n    dims: " << dims(input_dims) << "\n  }\n]\n"
    << "output [\n  {\n    name: \"" << output
    << "\"\n    data_type: TYPE_FP32\n    dims: " << dims({embed_dim}) << "\n  }\n]\n"
    << "dynamic_batching {\n  max_queue_delay_microseconds: " << delay_us << "\n}\n";
  return o.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) throw Error(ErrorCode::kIo, p.string() + ": cannot be written");
}

// max |a - b| / max(1, max |b|) over two [N, D] tensors.
double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a - b).abs().max().item<double>() / scale;
}

void export_models(const ModelConfig& cfg, const Model& model, const fs::path& repo, int max_batch,
                   int delay_ms, bool has_text);

int run_export_triton(const Args& args) {
  if (!args.has("--out")) throw UsageError("--out REPO is required");
  if (!args.positional().empty())
    throw UsageError("unexpected argument \"" + args.positional()[0] + "\"");
  const std::string model_dir = args.get("--model", default_model_dir());
  const fs::path repo = args.get("--out");
  const int max_batch = args.get_int("--max-batch", 32, 1, 1 << 20);
  const int delay_ms = args.get_int("--max-delay-ms", 5, 0, 60000);
  const bool force = args.has("--force");

  const ModelConfig cfg = ModelConfig::load(model_dir);
  if (cfg.quantization != "none")
    throw Error(ErrorCode::kUnsupported,
                cfg.path_of("config.json") + ": quantization \"" + cfg.quantization +
                    "\": export-triton takes float32 exports (re-export without --quantize)");
  if (cfg.dtype != "float32")
    throw Error(ErrorCode::kUnsupported,
                cfg.path_of("config.json") + ": dtype \"" + cfg.dtype +
                    "\": export-triton takes float32 exports (re-export with --dtype float32)");
  const bool has_text = !cfg.text_encoder_file.empty();
  // zsclip's own model, for the check at the end (and the fuller validation of the directory).
  ModelOptions mo;
  mo.load_text_encoder = has_text;
  const Model model = Model::load(model_dir, mo);

  std::error_code ec;
  for (const char* sub : {"image_encoder", "text_encoder"}) {
    if (!fs::exists(repo / sub, ec)) continue;
    if (!force)
      throw Error(
          ErrorCode::kInvalidArgument,
          (repo / sub).string() + " already exists (give --force to replace the exported models)");
    fs::remove_all(repo / sub, ec);
    if (ec)
      throw Error(ErrorCode::kIo, (repo / sub).string() + ": cannot be removed: " + ec.message());
  }
  for (const char* sub : {"image_encoder/1", "text_encoder/1"}) {
    if (!has_text && std::string(sub).rfind("text", 0) == 0) continue;
    fs::create_directories(repo / sub, ec);
    if (ec)
      throw Error(ErrorCode::kIo, (repo / sub).string() + ": cannot be created: " + ec.message());
  }

  try {
    export_models(cfg, model, repo, max_batch, delay_ms, has_text);
  } catch (...) {
    // Leave no half-written models behind (a Triton pointed at them would refuse to start).
    fs::remove_all(repo / "image_encoder", ec);
    fs::remove_all(repo / "text_encoder", ec);
    throw;
  }
  return 0;
}

void export_models(const ModelConfig& cfg, const Model& model, const fs::path& repo, int max_batch,
                   int delay_ms, bool has_text) {
  std::error_code ec;
  const std::string proj_path = cfg.path_of(cfg.projection_file);
  torch::jit::Module proj =
      torch_call(proj_path, [&] { return torch::jit::load(proj_path, torch::kCPU); });
  const int64_t d = cfg.embed_dim, n = cfg.preprocess.image_size, l = cfg.text.context_length;
  const std::string note_image =
      "PIXELS: images preprocessed by zsclip (config.json in the repository's top level: `zsclip "
      "preprocess "
      "--model REPO`, or zsclip::Preprocessor) -> IMAGE_EMBEDDING: projected, not normalised (= "
      "zsclip embed).";
  const std::string note_text =
      "TOKENS: zsclip's tokenizer ids, zero-padded to the context length (`zsclip tokenize --model "
      "REPO`, or "
      "zsclip::Tokenizer::tokenize) -> TEXT_EMBEDDING: projected, not normalised (= zsclip embed).";

  // The image encoder.
  const std::string image_path = cfg.path_of(cfg.image_encoder_file);
  torch::Tensor ip = projection_attr(proj, proj_path, "image_projection", false);
  torch::Tensor ib = projection_attr(proj, proj_path, "image_projection_bias", true);
  if (ip.sizes() != at::IntArrayRef({cfg.vision.width, d}))
    throw Error(ErrorCode::kInvalidModel, proj_path + ": image_projection has shape " +
                                              shape_str(ip.sizes()) +
                                              ", expected [vision.width, embed_dim]");
  torch::jit::Module image =
      fold(torch_call(image_path, [&] { return torch::jit::load(image_path, torch::kCPU); }), ip,
           ib, "TritonImageEncoder", "PIXELS", image_path);
  const fs::path image_pt = repo / "image_encoder" / "1" / "model.pt";
  torch_call(image_pt.string(), [&] {
    image.save(image_pt.string());
    return 0;
  });
  write_file(repo / "image_encoder" / "config.pbtxt",
             pbtxt("image_encoder", max_batch, int64_t{delay_ms} * 1000, "PIXELS", "TYPE_FP32",
                   {3, n, n}, "IMAGE_EMBEDDING", d, note_image));

  // The text encoder: token ids in; pooling is inside the exported encoder.
  fs::path text_pt;
  if (has_text) {
    const std::string text_path = cfg.path_of(cfg.text_encoder_file);
    torch::Tensor tp = projection_attr(proj, proj_path, "text_projection", false);
    torch::Tensor tb = projection_attr(proj, proj_path, "text_projection_bias", true);
    if (tp.sizes() != at::IntArrayRef({cfg.text.width, d}))
      throw Error(ErrorCode::kInvalidModel, proj_path + ": text_projection has shape " +
                                                shape_str(tp.sizes()) +
                                                ", expected [text.width, embed_dim]");
    torch::jit::Module text =
        fold(torch_call(text_path, [&] { return torch::jit::load(text_path, torch::kCPU); }), tp,
             tb, "TritonTextEncoder", "TOKENS", text_path);
    text_pt = repo / "text_encoder" / "1" / "model.pt";
    torch_call(text_pt.string(), [&] {
      text.save(text_pt.string());
      return 0;
    });
    write_file(repo / "text_encoder" / "config.pbtxt",
               pbtxt("text_encoder", max_batch, int64_t{delay_ms} * 1000, "TOKENS", "TYPE_INT64",
                     {l}, "TEXT_EMBEDDING", d, note_text));
  }

  // The client half: config.json and the vocabulary (tokenizer and preprocessing, exactly
  // zsclip's).
  fs::copy_file(cfg.path_of("config.json"), repo / "config.json",
                fs::copy_options::overwrite_existing, ec);
  if (ec)
    throw Error(ErrorCode::kIo,
                (repo / "config.json").string() + ": cannot be written: " + ec.message());
  for (const std::string& f : {cfg.tokenizer.vocab_file, cfg.tokenizer.merges_file}) {
    if (f.empty()) continue;
    fs::create_directories((repo / f).parent_path(), ec);
    fs::copy_file(cfg.path_of(f), repo / f, fs::copy_options::overwrite_existing, ec);
    if (ec)
      throw Error(ErrorCode::kIo, (repo / f).string() + ": cannot be written: " + ec.message());
  }
  json info = {{"zsclip_version", version()},
               {"model", cfg.name},
               {"fingerprint", cfg.fingerprint},
               {"embed_dim", d},
               {"image_size", n},
               {"context_length", l},
               {"logit_scale_exp", model.logit_scale_exp()},
               {"scoring", scoring_name(model.scoring())},
               {"logit_bias", model.logit_bias()},
               {"models",
                {{"image_encoder",
                  {{"input", "PIXELS"},
                   {"datatype", "FP32"},
                   {"dims", {3, n, n}},
                   {"output", "IMAGE_EMBEDDING"}}},
                 {"text_encoder",
                  {{"input", "TOKENS"},
                   {"datatype", "INT64"},
                   {"dims", {l}},
                   {"output", "TEXT_EMBEDDING"}}}}}};
  if (!has_text) info["models"].erase("text_encoder");
  write_file(repo / "zsclip_triton.json", info.dump(2) + "\n");

  // Check: the saved modules, loaded as Triton loads them, against zsclip's Model.
  double worst = 0;
  {
    std::mt19937 rng(17);
    std::normal_distribution<float> normal;
    FloatTensor pixels({2, 3, n, n});
    for (float& v : pixels.data) v = normal(rng);
    FloatTensor want = model.encode_images(pixels);
    torch::jit::Module loaded = torch_call(
        image_pt.string(), [&] { return torch::jit::load(image_pt.string(), torch::kCPU); });
    loaded.eval();
    torch::Tensor got = torch_call(image_pt.string(), [&] {
      c10::InferenceMode guard;
      return loaded.forward({torch::from_blob(pixels.ptr(), {2, 3, n, n}, torch::kFloat)})
          .toTensor()
          .clone();
    });
    worst = std::max(worst, rel_diff(got, torch::from_blob(want.ptr(), {2, d}, torch::kFloat)));
  }
  if (has_text) {
    const Tokenizer& tok = model.tokenizer();
    IdTensor ids = tok.tokenize({"a photo of a cat.", "zsclip"}, l);
    FloatTensor want = model.encode_texts(ids);
    torch::jit::Module loaded = torch_call(
        text_pt.string(), [&] { return torch::jit::load(text_pt.string(), torch::kCPU); });
    loaded.eval();
    torch::Tensor got = torch_call(text_pt.string(), [&] {
      c10::InferenceMode guard;
      return loaded.forward({torch::from_blob(ids.ptr(), {2, l}, torch::kLong)}).toTensor().clone();
    });
    worst = std::max(worst, rel_diff(got, torch::from_blob(want.ptr(), {2, d}, torch::kFloat)));
  }
  if (!(worst <= 1e-5))
    throw Error(ErrorCode::kInternal,
                "export-triton: the exported modules differ from zsclip's model by " +
                    std::to_string(worst) + " (relative), more than 1e-5");
  std::cerr << "zsclip export-triton: " << repo.string() << ": image_encoder"
            << (has_text ? ", text_encoder" : "")
            << " (max relative difference from zsclip's model " << worst << ")\n";
}

ZSCLIP_COMMAND(Command{
    "export-triton",
    "[--model DIR] --out REPO [--max-batch N] [--max-delay-ms T] [--force]",
    "write a Triton model repository (PyTorch backend) serving this model's encoders",
    "REPO/image_encoder: PIXELS (FP32 [N,3,n,n], preprocessed as zsclip does) -> IMAGE_EMBEDDING "
    "(FP32\n"
    "[N,D]); REPO/text_encoder: TOKENS (INT64 [N,L], zsclip's tokenizer ids) -> TEXT_EMBEDDING. "
    "Each\n"
    "is config.pbtxt (platform pytorch_libtorch, dynamic batching) + 1/model.pt (the TorchScript "
    "encoder\n"
    "with the projection folded in: its output equals `zsclip embed`). REPO/config.json and the\n"
    "vocabulary let a client tokenize and preprocess exactly as zsclip does (`zsclip tokenize "
    "--model\n"
    "REPO`, `zsclip preprocess --model REPO`, or the C++ API); REPO/zsclip_triton.json holds the "
    "logit\n"
    "scale for zero-shot scores. The exported modules are checked against zsclip's model before "
    "exit.\n"
    "float32 exports only.",
    {model_option(),
     {"--out", "REPO", "the model repository to write (created if missing)"},
     {"--max-batch", "N", "config.pbtxt max_batch_size (default 32)"},
     {"--max-delay-ms", "T", "dynamic_batching max_queue_delay (default 5 ms)"},
     {"--force", "", "replace REPO/image_encoder and REPO/text_encoder if they exist"}},
    run_export_triton});

}  // namespace
}  // namespace zsclip::cli
