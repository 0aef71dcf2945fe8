// zsclip::export_triton (zsclip/triton_export.h): the Triton model repository of an export.
#include "zsclip/triton_export.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "model/model_impl.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/model.h"
#include "zsclip/tokenizer.h"
#include "zsclip/version.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

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
  return translate_torch(
      ErrorCode::kInvalidModel, path + ": folding the projection into the encoder", [&] {
        encoder.eval();
        torch::jit::Module m{c10::QualifiedName("__torch__.zsclip." + class_name)};
        if (!m.hasattr("training")) m.register_attribute("training", c10::BoolType::get(), false);
        m.register_module("encoder", encoder);
        m.register_buffer("projection", projection);
        std::string body =
            "torch.matmul(self.encoder.forward(" + input + ").float(), self.projection)";
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

double export_models(const ModelConfig& cfg, const Model& model, const fs::path& repo,
                     int max_batch, int delay_ms, bool has_text) {
  std::error_code ec;
  const std::string proj_path = cfg.path_of(cfg.projection_file);
  torch::jit::Module proj = translate_torch(ErrorCode::kInvalidModel, proj_path, [&] {
    return torch::jit::load(proj_path, torch::kCPU);
  });
  const int64_t d = cfg.embed_dim, n = cfg.preprocess.image_size, l = cfg.text.context_length;
  const std::string note_image =
      "PIXELS: images preprocessed by zsclip (config.json in the repository's top level: `zsclip "
      "preprocess --model REPO`, or zsclip::Preprocessor) -> IMAGE_EMBEDDING: projected, not "
      "normalised (= zsclip embed).";
  const std::string note_text =
      "TOKENS: zsclip's tokenizer ids, padded with the tokenizer's pad_id to the context length "
      "(`zsclip tokenize --model REPO`, or zsclip::Tokenizer::tokenize) -> TEXT_EMBEDDING: "
      "projected, not normalised (= zsclip embed).";

  // One encoder: its TorchScript with the projection (`attr`, `attr`_bias of projection.pt)
  // folded in, saved as REPO/NAME/1/model.pt, and its config.pbtxt. Returns the model.pt path.
  auto export_tower = [&](const std::string& name, const std::string& file, const std::string& attr,
                          int64_t width, const std::string& width_name,
                          const std::string& class_name, const std::string& input,
                          const char* input_type, const std::vector<int64_t>& dims,
                          const std::string& output, const std::string& note) {
    const std::string path = cfg.path_of(file);
    torch::Tensor w = projection_attr(proj, proj_path, attr, false);
    torch::Tensor b = projection_attr(proj, proj_path, attr + "_bias", true);
    if (w.sizes() != at::IntArrayRef({width, d}))
      throw Error(ErrorCode::kInvalidModel, proj_path + ": " + attr + " has shape " +
                                                shape_str(w.sizes()) + ", expected [" + width_name +
                                                ", embed_dim]");
    torch::jit::Module m =
        fold(translate_torch(ErrorCode::kInvalidModel, path,
                             [&] { return torch::jit::load(path, torch::kCPU); }),
             w, b, class_name, input, path);
    const fs::path pt = repo / name / "1" / "model.pt";
    translate_torch(ErrorCode::kInvalidModel, pt.string(), [&] {
      m.save(pt.string());
      return 0;
    });
    write_file(repo / name / "config.pbtxt", pbtxt(name, max_batch, int64_t{delay_ms} * 1000, input,
                                                   input_type, dims, output, d, note));
    return pt;
  };
  const fs::path image_pt = export_tower(
      "image_encoder", cfg.image_encoder_file, "image_projection", cfg.vision.width, "vision.width",
      "TritonImageEncoder", "PIXELS", "TYPE_FP32", {3, n, n}, "IMAGE_EMBEDDING", note_image);
  // The text encoder: token ids in; pooling is inside the exported encoder.
  fs::path text_pt;
  if (has_text)
    text_pt = export_tower("text_encoder", cfg.text_encoder_file, "text_projection", cfg.text.width,
                           "text.width", "TritonTextEncoder", "TOKENS", "TYPE_INT64", {l},
                           "TEXT_EMBEDDING", note_text);

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
    torch::jit::Module loaded = translate_torch(ErrorCode::kInvalidModel, image_pt.string(), [&] {
      return torch::jit::load(image_pt.string(), torch::kCPU);
    });
    loaded.eval();
    torch::Tensor got = translate_torch(ErrorCode::kInvalidModel, image_pt.string(), [&] {
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
    torch::jit::Module loaded = translate_torch(ErrorCode::kInvalidModel, text_pt.string(), [&] {
      return torch::jit::load(text_pt.string(), torch::kCPU);
    });
    loaded.eval();
    torch::Tensor got = translate_torch(ErrorCode::kInvalidModel, text_pt.string(), [&] {
      c10::InferenceMode guard;
      return loaded.forward({torch::from_blob(ids.ptr(), {2, l}, torch::kLong)}).toTensor().clone();
    });
    worst = std::max(worst, rel_diff(got, torch::from_blob(want.ptr(), {2, d}, torch::kFloat)));
  }
  if (!(worst <= 1e-5))
    throw Error(ErrorCode::kInternal,
                "export-triton: the exported modules differ from zsclip's model by " +
                    std::to_string(worst) + " (relative), more than 1e-5");
  return worst;
}

}  // namespace

TritonExportReport export_triton(const std::string& model_dir, const std::string& repo_dir,
                                 const TritonExportOptions& options) {
  const fs::path repo = repo_dir;
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
    if (!options.force)
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

  TritonExportReport report;
  report.text_encoder = has_text;
  try {
    report.max_difference =
        export_models(cfg, model, repo, options.max_batch, options.max_delay_ms, has_text);
  } catch (...) {
    // Leave no half-written models behind (a Triton pointed at them would refuse to start).
    fs::remove_all(repo / "image_encoder", ec);
    fs::remove_all(repo / "text_encoder", ec);
    throw;
  }
  return report;
}

}  // namespace zsclip
