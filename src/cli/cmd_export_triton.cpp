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
