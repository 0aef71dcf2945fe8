// zsclip::export_triton: a Triton Inference Server model repository (PyTorch/LibTorch backend) that
// serves a model's encoders, the projection folded in, so that Triton's outputs equal `zsclip
// embed` / `zsclip serve`'s IMAGE_EMBEDDING and TEXT_EMBEDDING (`zsclip export-triton`).
//
// REPO/image_encoder/config.pbtxt, REPO/image_encoder/1/model.pt:
//     PIXELS [N,3,n,n] -> IMAGE_EMBEDDING [N,D]
// REPO/text_encoder/config.pbtxt, REPO/text_encoder/1/model.pt (models with a text encoder):
//     TOKENS [N,L] int64, padded with the tokenizer's pad_id -> TEXT_EMBEDDING [N,D]
// REPO/config.json and the vocabulary: the client half (`zsclip tokenize --model REPO`, `zsclip
//     preprocess --model REPO` or the C++ API); Triton reads only the subdirectories of a
//     repository, so these are not models.
// REPO/zsclip_triton.json: what a client needs besides (logit scale, scoring, names).
//
// Each model.pt is a TorchScript module whose forward(PIXELS) / forward(TOKENS) calls the exported
// encoder and multiplies by the projection (plus its bias, when the model has one). The input
// names are forward()'s argument names, which the PyTorch backend matches to config.pbtxt's input
// names; the single output is taken by position.
#pragma once

#include <string>

namespace zsclip {

struct TritonExportOptions {
  int max_batch = 32;    // config.pbtxt max_batch_size
  int max_delay_ms = 5;  // dynamic_batching max_queue_delay
  bool force = false;    // replace REPO/image_encoder and REPO/text_encoder if they exist
};

struct TritonExportReport {
  bool text_encoder = false;  // REPO/text_encoder was written
  double max_difference = 0;  // of the saved modules from zsclip's Model (relative)
};

// Writes the repository `repo` (created if missing) for the float32 export in `model_dir`. Before
// returning, the saved modules are loaded again and checked against zsclip's own Model on sample
// inputs (Error(kInternal) beyond 1e-5 relative). Throws zsclip::Error: kUnsupported for a
// quantized or non-float32 export, kInvalidArgument when REPO/image_encoder or REPO/text_encoder
// exists without `force`, kInvalidModel, kIo; on an error no half-written model is left behind.
TritonExportReport export_triton(const std::string& model_dir, const std::string& repo,
                                 const TritonExportOptions& options = {});

}  // namespace zsclip
