// zsclip export-triton: a Triton Inference Server model repository of this model's encoders
// (zsclip/triton_export.h).
#include <iostream>

#include "cli/cli.h"
#include "zsclip/triton_export.h"

namespace zsclip::cli {
namespace {

int run_export_triton(const Args& args) {
  if (!args.has("--out")) throw UsageError("--out REPO is required");
  if (!args.positional().empty())
    throw UsageError("unexpected argument \"" + args.positional()[0] + "\"");
  TritonExportOptions o;
  o.max_batch = args.get_int("--max-batch", 1, 1 << 20);
  o.max_delay_ms = args.get_int("--max-delay-ms", 0, 60000);
  o.force = args.has("--force");
  const std::string repo = args.get("--out");
  const TritonExportReport r = export_triton(args.get("--model", default_model_dir()), repo, o);
  std::cerr << "zsclip export-triton: " << repo << ": image_encoder"
            << (r.text_encoder ? ", text_encoder" : "")
            << " (max relative difference from zsclip's model " << r.max_difference << ")\n";
  return 0;
}

<<<<<<< HEAD
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

=======
>>>>>>> cliopt
ZSCLIP_COMMAND(Command{
    "export-triton", "[--model DIR] --out REPO [--max-batch N] [--max-delay-ms T] [--force]",
    "write a Triton model repository (PyTorch backend) serving this model's encoders",
    "REPO/image_encoder: PIXELS (FP32 [N,3,n,n], preprocessed as zsclip does) -> IMAGE_EMBEDDING "
    "(FP32 [N,D]); REPO/text_encoder: TOKENS (INT64 [N,L], zsclip's tokenizer ids, padded with its "
    "pad_id) -> TEXT_EMBEDDING. Each is config.pbtxt (platform pytorch_libtorch, dynamic batching) "
    "+ 1/model.pt (the TorchScript encoder with the projection folded in: its output equals "
    "`zsclip embed`). REPO/config.json and the vocabulary let a client tokenize and preprocess "
    "exactly as zsclip does (`zsclip tokenize --model REPO`, `zsclip preprocess --model REPO`, or "
    "the C++ API); REPO/zsclip_triton.json holds the logit scale for zero-shot scores. The "
    "exported modules are checked against zsclip's model before exit. float32 exports only.",
    run_export_triton});

}  // namespace
}  // namespace zsclip::cli
