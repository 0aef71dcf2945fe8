#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <vector>

#include "base/tensor_check.h"
#include "model/model_impl.h"
#include "zsclip/error.h"
#include "zsclip/io.h"
#include "zsclip/tokenizer.h"

namespace zsclip {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxModelFileBytes = uint64_t{64} << 30;  // ViT-bigG's towers are ~10 GB

torch::Device parse_device(const std::string& s) {
  if (s == "cpu") return torch::Device(torch::kCPU);
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    if (!cuda_available())
      throw Error(
          ErrorCode::kUnsupported,
          "device \"" + s + "\" requested, but " +
              (torch::cuda::is_available() ? std::string("this zsclip build has no CUDA support")
                                           : std::string("no CUDA device is available")));
    int index = 0;
    if (s.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(s.substr(5), &used);
        if (used != s.size() - 5 || index < 0) throw std::invalid_argument(s);
      } catch (const std::exception&) {
        throw Error(ErrorCode::kInvalidArgument, "device \"" + s + "\": expected cuda:N");
      }
      if (index >= static_cast<int>(torch::cuda::device_count()))
        throw Error(ErrorCode::kInvalidArgument, "device \"" + s + "\": only " +
                                                     std::to_string(torch::cuda::device_count()) +
                                                     " CUDA device(s)");
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw Error(ErrorCode::kInvalidArgument, "device \"" + s + "\": expected cpu, cuda or cuda:N");
}

std::string shape_str(const at::IntArrayRef& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string require_file(const ModelConfig& c, const std::string& name, const char* field) {
  std::string path = c.path_of(name);
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(ErrorCode::kNotFound, path + ": missing (named by " + c.path_of("config.json") +
                                          " field '" + field + "')");
  try {  // a regular file this process may read
    io::open_regular_file(path, "model file", {kMaxModelFileBytes, ErrorCode::kInvalidModel},
                          nullptr);
  } catch (const Error& e) {
    throw Error(e.code(), std::string(e.what()) + " (field '" + field + "')");
  }
  return path;
}

// A config.json that leaves its files unchecked (no "file_checks", or none for a file that is
// loaded) or has no "fingerprint" loads, with one warning on standard error per process and model
// folder. (file_checks find accidents, not attackers: whoever can swap a TorchScript file can
// rewrite config.json too; see README.md, "Security".)
void warn_unverified(const ModelConfig& c, const ModelOptions& o) {
  std::vector<std::string> unchecked;
  if (o.verify_files) {
    std::vector<std::string> loaded = {c.image_encoder_file, c.projection_file};
    if (o.load_text_encoder)
      for (const std::string& f :
           {c.text_encoder_file, c.tokenizer.vocab_file, c.tokenizer.merges_file})
        loaded.push_back(f);
    for (const std::string& f : loaded)
      if (!f.empty() && !c.file_checks.count(f)) unchecked.push_back(f);
  }
  if (unchecked.empty() && !c.fingerprint.empty()) return;
  static std::mutex mu;
  static std::set<std::string> warned;
  std::error_code ec;
  std::string key = fs::weakly_canonical(fs::absolute(c.directory, ec), ec).string();
  if (ec || key.empty()) key = c.directory;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!warned.insert(key).second) return;
  }
  std::string msg = "zsclip: warning: " + c.path_of("config.json");
  if (!unchecked.empty()) {
    msg += c.file_checks.empty() ? " has no \"file_checks\"" : " has no \"file_checks\" entry for";
    msg += (c.file_checks.empty() ? ": loading " : " ");
    for (size_t i = 0; i < unchecked.size(); ++i) msg += (i ? ", " : "") + unchecked[i];
    msg += " unverified (an edited or truncated file is not detected)";
  }
  if (c.fingerprint.empty())
    msg += std::string(unchecked.empty() ? "" : ";") +
           " has no \"fingerprint\": saved heads and indexes cannot be matched to these weights "
           "(they are refused)";
  std::cerr << msg
            << ". Re-export it with models/export_clip.py. A model folder is code (TorchScript): "
               "load only folders from sources you trust (README.md, \"Security\")\n";
}

void check_options(const ModelOptions& o) {
  if (o.streams < 0)
    throw Error(ErrorCode::kInvalidArgument,
                "ModelOptions.streams must be >= 0 (0: the runtime's threads), got " +
                    std::to_string(o.streams));
  if (!(o.spread_min_mflop >= 0))
    throw Error(ErrorCode::kInvalidArgument, "ModelOptions.spread_min_mflop must be >= 0, got " +
                                                 std::to_string(o.spread_min_mflop));
  if (o.linear_kernels != "auto" && o.linear_kernels != "onednn" && o.linear_kernels != "aten")
    throw Error(ErrorCode::kInvalidArgument, "ModelOptions.linear_kernels \"" + o.linear_kernels +
                                                 "\": expected auto, onednn or aten");
  if (o.linear_kernels == "onednn" && !detail::onednn_linear_built())
    throw Error(ErrorCode::kUnsupported,
                "ModelOptions.linear_kernels \"onednn\": this zsclip was built without oneDNN's "
                "headers (Debian package libdnnl-dev; tools/setup.sh installs it)");
}

torch::jit::Module load_module(const std::string& path, const char* field) {
  return translate_torch(ErrorCode::kInvalidModel,
                         path + ": not a loadable TorchScript archive (field '" + field + "')",
                         [&] { return torch::jit::load(path, torch::kCPU); });
}

// Finds a parameter or buffer whose name ends with `suffix` (names differ between export variants).
c10::optional<torch::Tensor> find_tensor(const torch::jit::Module& m, const std::string& suffix) {
  for (const auto& p : m.named_parameters(true))
    if (p.name.size() >= suffix.size() &&
        p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return p.value;
  for (const auto& p : m.named_buffers(true))
    if (p.name.size() >= suffix.size() &&
        p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return p.value;
  return c10::nullopt;
}

void check_dims(const std::string& path, const std::string& what, const torch::Tensor& t,
                std::vector<int64_t> want, const std::string& fields) {
  if (t.sizes().vec() != want)
    throw Error(ErrorCode::kInvalidModel, path + ": " + what + " has shape " +
                                              shape_str(t.sizes()) + ", but config.json (" +
                                              fields + ") implies " + shape_str(want));
}

torch::Tensor projection_tensor(torch::jit::Module& m, const std::string& path, const char* name) {
  if (!m.hasattr(name))
    throw Error(ErrorCode::kInvalidModel, path + ": has no attribute '" + name + "'");
  c10::IValue v = m.attr(name);
  if (!v.isTensor())
    throw Error(ErrorCode::kInvalidModel, path + ": attribute '" + name + "' is not a tensor");
  return v.toTensor().detach();
}

// The module, leaving `m` empty. (torch::jit::Module declares a destructor and so has no move
// constructor: std::move copies the handle, and the caller's copy would keep the loaded weights
// alive through freezing and the linear-layer pass, doubling the peak memory of a load.)
torch::jit::Module take(torch::jit::Module& m) {
  torch::jit::Module out = m;
  m = torch::jit::Module();
  return out;
}

torch::jit::Module prepare(torch::jit::Module m, detail::ModelImpl& impl, bool text_tower,
                           const std::string& path) {
  return translate_torch(ErrorCode::kInvalidModel, path + ": preparing for inference", [&] {
    m.eval();
    if (impl.config.quantization != "int8") m.to(impl.device, impl.dtype);
    if (impl.options.optimize) {
      try {
        m = impl.options.optimize_for_inference ? torch::jit::optimize_for_inference(m)
                                                : torch::jit::freeze(m);
      } catch (const c10::Error&) {
        // Some exports (quantised packed weights) cannot be frozen: they still run unfrozen.
        return m;
      }
      if (impl.device.is_cpu() && impl.dtype == torch::kFloat &&
          !impl.options.optimize_for_inference && impl.options.linear_kernels != "aten")
        impl.routed_linears += detail::route_linear_layers(
            m,
            text_tower && impl.linear_precision == detail::LinearPrecision::kInt8 &&
                    !impl.options.int8_text
                ? detail::LinearPrecision::kFloat32
                : impl.linear_precision,
            impl.int8_kernel, impl.linear_primitive, &impl.linears_kept_on_matmul);
    }
    return m;
  });
}

// The linear layers' work of `rows` sequences of `tokens` tokens through tower t, in MFLOP (an
// estimate: attention's four projections and a 4x MLP, 12 width^2 multiply-adds a token a layer).
double linear_mflop(const TowerConfig& t, int64_t rows, int64_t tokens) {
  return 2.0 * 12.0 * double(t.layers) * double(rows) * double(tokens) * double(t.width) *
         double(t.width) / 1e6;
}

// Runs fn on near-equal row ranges of x, one part per stream, on the runtime's threads (the
// caller's included), and concatenates the results. Rows are independent in both encoders, so the
// result is the same as one call's up to float rounding. The first part's exception is rethrown
// after all have ended. A call with fewer rows than streams (one image) is one part that holds
// every slot of the runtime and spreads over them through its OpenMP team (zsclip::linear and
// LibTorch's kernels), when ModelOptions::spread_single and spread_min_mflop allow it.
// Each part runs as consecutive calls of at most kCallTokens tokens (rows x tokens a row), at least
// one row: a call's activations then stay in the core's caches. SigLIP B/16 (196 tokens an image,
// 2 threads, AVX-512 EPYC) ran at 10.3 images/s with two images a part and 4.1 with eight; CLIP
// B/32's 50-token rows (eight images a part at batch 16) and 64-token prompts stay one call.
constexpr int64_t kCallTokens = 512;

template <typename Fn>
torch::Tensor run_in_calls(const torch::Tensor& x, int64_t tokens, Fn&& fn) {
  const int64_t rows = std::max<int64_t>(1, kCallTokens / std::max<int64_t>(1, tokens));
  if (x.size(0) <= rows) return fn(x);
  std::vector<torch::Tensor> outs;
  for (const torch::Tensor& c : x.split(rows, 0)) outs.push_back(fn(c));
  return torch::cat(outs, 0);
}

template <typename Fn>
torch::Tensor run_split(const detail::ModelImpl& impl, const torch::Tensor& x, int64_t tokens,
                        double mflop, Fn&& fn) {
  const Runtime& runtime = *impl.runtime;
  const int64_t parts = std::min<int64_t>(impl.streams, x.size(0));
  if (parts == 1 && x.size(0) < impl.streams && impl.options.spread_single &&
      runtime.threads() > 1 && mflop >= impl.options.spread_min_mflop) {
    torch::Tensor out;
    // Only when the runtime is idle: inside a pipeline (images decoded on the pool while this one
    // is encoded) waiting for every slot would stall the decoding it overlaps with.
    runtime.run_exclusive(
        [&](int k) {
          detail::ScopedIntraOpThreads team(k);
          out = fn(x);
        },
        /*wait=*/false);
    return out;
  }
  if (parts <= 1) return run_in_calls(x, tokens, fn);
  std::vector<torch::Tensor> chunks = x.tensor_split(parts, 0);
  std::vector<torch::Tensor> outs(chunks.size());
  runtime.parallel_for(
      parts, [&](int64_t i) { outs[size_t(i)] = run_in_calls(chunks[size_t(i)], tokens, fn); });
  return torch::cat(outs, 0);
}

}  // namespace

bool cuda_available() {
#ifdef ZSCLIP_WITH_CUDA
  return torch::cuda::is_available();
#else
  return false;
#endif
}

// `streams` is 1 off the CPU (Model::load), where run_split makes one call.
torch::Tensor detail::ModelImpl::encode_images(const torch::Tensor& pixels) const {
  const TowerConfig& v = config.vision;
  const int64_t grid = v.patch_size > 0 ? v.image_size / v.patch_size : 0;
  return run_split(*this, pixels, grid * grid + 1, linear_mflop(v, pixels.size(0), grid * grid + 1),
                   [this](const torch::Tensor& x) { return encode_images_part(x); });
}

// The number of leading columns of `ids` that decide a causal text tower's pooled outputs, or
// ids.size(1) when every column counts (no causal mask, or pooled at the last position).
int64_t text_columns_needed(const TowerConfig& t, const torch::Tensor& ids) {
  const int64_t n = ids.size(1);
  if (!t.causal_mask || ids.size(0) == 0 || n <= 1) return n;
  switch (t.pool) {
    case TextPool::kFirst:
      return 1;
    case TextPool::kArgmax:  // first occurrence of each row's largest id
      return ids.argmax(1).max().item<int64_t>() + 1;
    case TextPool::kEos: {  // first occurrence of eos_id (position 0 where a row has none)
      const torch::Tensor hit = ids.eq(t.eos_id).to(torch::kInt);
      return hit.argmax(1).max().item<int64_t>() + 1;
    }
    case TextPool::kLast:
      return n;
  }
  return n;
}

torch::Tensor detail::ModelImpl::encode_texts(const torch::Tensor& ids_in) const {
  // Columns after every row's pooled position (its end token) cannot change the pooled outputs
  // under the causal mask, so they are not computed: "a photo of a cat." is 7 tokens of
  // OpenAI's 77. Towers without the mask, or pooled at the last position, get every column.
  torch::Tensor ids = ids_in;
  const int64_t used = text_columns_needed(config.text, ids);
  if (used < ids.size(1)) ids = ids.narrow(1, 0, used).contiguous();
  return run_split(*this, ids, ids.size(1), linear_mflop(config.text, ids.size(0), ids.size(1)),
                   [this](const torch::Tensor& x) { return encode_texts_part(x); });
}

torch::Tensor detail::ModelImpl::encode_images_part(const torch::Tensor& pixels) const {
  c10::InferenceMode guard;
  torch::Tensor x = pixels;
  if (device.is_cuda())
    x = x.pin_memory().to(device, dtype, /*non_blocking=*/true);
  else if (x.scalar_type() != dtype)
    x = x.to(dtype);
  torch::Tensor pooled = image_encoder.forward({x}).toTensor();
  torch::Tensor out = pooled.to(image_projection.scalar_type()).matmul(image_projection);
  if (image_projection_bias.defined()) out = out + image_projection_bias;
  return out.to(torch::kCPU, torch::kFloat).contiguous();
}

torch::Tensor detail::ModelImpl::encode_texts_part(const torch::Tensor& ids) const {
  c10::InferenceMode guard;
  torch::Tensor x = ids.to(device, torch::kLong);
  torch::Tensor pooled = text_encoder.forward({x}).toTensor();
  torch::Tensor out = pooled.to(text_projection.scalar_type()).matmul(text_projection);
  if (text_projection_bias.defined()) out = out + text_projection_bias;
  return out.to(torch::kCPU, torch::kFloat).contiguous();
}

namespace {

// The steps of Model::load, in its order.

// impl.dtype, and on CPU the linear layers' precision and int8 kernel, from ModelOptions::dtype,
// the device and the export's quantization; a request that cannot be met on this CPU is a
// precision_note, not an error.
void choose_precision(detail::ModelImpl& impl) {
  const ModelConfig& c = impl.config;
  const ModelOptions& options = impl.options;
  if (options.dtype == "auto") {
    impl.dtype = (impl.device.is_cuda() && c.dtype == "float16") ? torch::kHalf : torch::kFloat;
  } else if (options.dtype == "float32") {
    impl.dtype = torch::kFloat;
  } else if (options.dtype == "bfloat16" || options.dtype == "int8") {
    const std::string& d = options.dtype;
    if (!impl.device.is_cpu())
      throw Error(ErrorCode::kUnsupported,
                  "dtype " + d +
                      " is a CPU mode (zsclip's linear kernels); on CUDA use float16 or float32");
    if (c.quantization == "int8")
      throw Error(ErrorCode::kInvalidArgument,
                  c.path_of("config.json") + ": dtype " + d +
                      " needs a float32 export; this one is int8 (quantization \"int8\")");
    if (!options.optimize || options.optimize_for_inference || options.linear_kernels == "aten")
      throw Error(ErrorCode::kInvalidArgument,
                  "dtype " + d +
                      " needs the frozen graph and zsclip's linear kernels (optimize on, "
                      "optimize_for_inference off, linear_kernels auto or onednn)");
    impl.dtype = torch::kFloat;  // everything but the linear layers' products stays float32
    const bool bf16 = d == "bfloat16";
    const detail::CpuFeatures cpu = detail::cpu_features();
    const std::string lowered =
        cpu.limited_by.empty() ? "" : " (lowered by " + cpu.limited_by + ")";
    if (!detail::onednn_linear_built())
      impl.precision_note =
          d + " needs oneDNN (zsclip was built without libdnnl-dev): running float32";
    else if (bf16 && !cpu.avx512_bf16)
      impl.precision_note = "bfloat16 needs a CPU with AVX512_BF16, which this one lacks (ISA " +
                            cpu.isa + lowered + "): running float32";
    else if (!bf16 && cpu.int8 == detail::Int8Kernel::kNone)
      impl.precision_note = "int8 needs a CPU with AVX2, which this one lacks (ISA " + cpu.isa +
                            lowered + "): running float32";
    else if (bf16)
      impl.linear_precision = detail::LinearPrecision::kBFloat16;
    else {
      impl.linear_precision = detail::LinearPrecision::kInt8;
      impl.int8_kernel = cpu.int8;
    }
  } else if (options.dtype == "float16") {
    if (!impl.device.is_cuda())
      throw Error(ErrorCode::kUnsupported, "dtype float16 needs a CUDA device (CPU runs float32)");
    impl.dtype = torch::kHalf;
  } else {
    throw Error(
        ErrorCode::kInvalidArgument,
        "dtype \"" + options.dtype + "\": expected auto, float32, float16, bfloat16 or int8");
  }
  if (c.quantization == "int8" && impl.device.is_cuda())
    throw Error(
        ErrorCode::kUnsupported,
        c.path_of("config.json") + ": an int8 (dynamically quantised) model runs on CPU only");
  if (c.quantization == "int8")  // still loads, on LibTorch's slower quantised kernels
    impl.precision_note = c.path_of("config.json") +
                          ": an export-time int8 model (export_clip.py --quantize int8, "
                          "deprecated): re-export without --quantize and load with --precision "
                          "int8 (ModelOptions::dtype \"int8\") for zsclip's faster int8 kernels";
}

// The paths of the files to load; the text encoder's is "" unless it is loaded.
struct TowerPaths {
  std::string image, projection, text;
};

// Every file is checked before the expensive loads, so that a missing one is reported at once.
TowerPaths check_files(const ModelConfig& c, const ModelOptions& options) {
  warn_unverified(c, options);
  if (options.verify_files) c.verify_files(options.load_text_encoder);
  TowerPaths paths;
  paths.image = require_file(c, c.image_encoder_file, "files.image_encoder");
  paths.projection = require_file(c, c.projection_file, "files.projection");
  if (options.load_text_encoder) {
    if (c.text_encoder_file.empty())
      throw Error(ErrorCode::kInvalidModel, c.path_of("config.json") +
                                                ": field 'files.text_encoder' is missing (this "
                                                "model is image-only; load it with "
                                                "load_text_encoder = false and a saved head)");
    paths.text = require_file(c, c.text_encoder_file, "files.text_encoder");
  }
  return paths;
}

// The projections, logit_scale and logit_bias of the projection file, checked against config.json
// and moved to the device.
void load_projection(detail::ModelImpl& impl, const std::string& proj_path) {
  const ModelConfig& c = impl.config;
  torch::jit::Module proj = load_module(proj_path, "files.projection");
  translate_torch(ErrorCode::kInvalidModel, proj_path, [&] {
    impl.image_projection = projection_tensor(proj, proj_path, "image_projection");
    impl.text_projection = projection_tensor(proj, proj_path, "text_projection");
    torch::Tensor ls = projection_tensor(proj, proj_path, "logit_scale");
    if (ls.numel() != 1)
      throw Error(ErrorCode::kInvalidModel, proj_path + ": logit_scale is not a scalar");
    impl.logit_scale = ls.to(torch::kFloat).item<float>();
    // format_version 2 exports always carry these: shape [D] / [] when the model has the bias,
    // [0] when it has none. Older exports have none of them.
    for (const char* name : {"image_projection_bias", "text_projection_bias"}) {
      if (!proj.hasattr(name)) continue;
      torch::Tensor b = projection_tensor(proj, proj_path, name);
      if (b.numel() == 0) continue;
      if (b.dim() != 1 || b.size(0) != c.embed_dim)
        throw Error(ErrorCode::kInvalidModel, proj_path + ": " + name + " has shape " +
                                                  shape_str(b.sizes()) + ", expected [" +
                                                  std::to_string(c.embed_dim) + "] (embed_dim)");
      (name[0] == 'i' ? impl.image_projection_bias : impl.text_projection_bias) = b;
    }
    bool has_bias = false;
    if (proj.hasattr("logit_bias")) {
      torch::Tensor b = projection_tensor(proj, proj_path, "logit_bias");
      if (b.numel() > 1)
        throw Error(ErrorCode::kInvalidModel, proj_path + ": logit_bias is not a scalar");
      if (b.numel() == 1) {
        has_bias = true;
        impl.logit_bias = b.to(torch::kFloat).item<float>();
      }
    }
    const std::string cfg_path = c.path_of("config.json");
    if (has_bias && c.scoring != Scoring::kSigmoid)
      throw Error(ErrorCode::kInvalidModel,
                  proj_path + ": the model has a logit_bias (sigmoid scoring), but " + cfg_path +
                      " field 'scoring' is \"softmax\"");
    if (!has_bias && c.scoring == Scoring::kSigmoid)
      throw Error(ErrorCode::kInvalidModel, cfg_path + ": field 'scoring' is \"sigmoid\", but " +
                                                proj_path + " has no logit_bias");
    if (has_bias && !(std::isfinite(impl.logit_bias) && impl.logit_bias == c.logit_bias))
      throw Error(ErrorCode::kInvalidModel,
                  proj_path + ": logit_bias " + std::to_string(impl.logit_bias) +
                      " disagrees with " + cfg_path + " field 'logit_bias' (" +
                      std::to_string(c.logit_bias) + ")");
    return 0;
  });
  check_dims(proj_path, "image_projection", impl.image_projection, {c.vision.width, c.embed_dim},
             "vision.width, embed_dim");
  check_dims(proj_path, "text_projection", impl.text_projection, {c.text.width, c.embed_dim},
             "text.width, embed_dim");
  if (!std::isfinite(impl.logit_scale))
    throw Error(ErrorCode::kInvalidModel, proj_path + ": logit_scale is not finite");
  impl.image_projection = impl.image_projection.to(impl.device, impl.dtype).contiguous();
  impl.text_projection = impl.text_projection.to(impl.device, impl.dtype).contiguous();
  for (torch::Tensor* b : {&impl.image_projection_bias, &impl.text_projection_bias})
    if (b->defined()) *b = b->to(impl.device, impl.dtype).contiguous();
}

// The image tower, its patch embedding checked against config.json, prepared for inference.
void load_image_tower(detail::ModelImpl& impl, const std::string& image_path) {
  const ModelConfig& c = impl.config;
  torch::jit::Module image = load_module(image_path, "files.image_encoder");
  if (auto w = find_tensor(image, "conv1.weight"))
    check_dims(image_path, "conv1.weight", *w,
               {c.vision.width, 3, c.vision.patch_size, c.vision.patch_size},
               "vision.width, vision.patch_size");
  impl.image_encoder = prepare(take(image), impl, false, image_path);
}

// The text tower, its embeddings checked against config.json, prepared for inference.
void load_text_tower(detail::ModelImpl& impl, const std::string& text_path) {
  const ModelConfig& c = impl.config;
  torch::jit::Module text = load_module(text_path, "files.text_encoder");
  if (auto w = find_tensor(text, "token_embedding.weight"))
    check_dims(text_path, "token_embedding.weight", *w, {c.text.vocab_size, c.text.width},
               "text.vocab_size, text.width");
  if (auto w = find_tensor(text, "positional_embedding"))
    check_dims(text_path, "positional_embedding", *w, {c.text.context_length, c.text.width},
               "text.context_length, text.width");
  impl.text_encoder = prepare(take(text), impl, true, text_path);
  impl.has_text_encoder = true;
}

// One call each: checks the output widths against config.json and runs TorchScript's first-call
// work at load time rather than in the first user request.
void warm_up(const detail::ModelImpl& impl, const TowerPaths& paths) {
  const ModelConfig& c = impl.config;
  const int64_t n = c.vision.image_size;
  torch::Tensor out = translate_torch(
      ErrorCode::kInvalidModel,
      paths.image + ": forward on [1, 3, " + std::to_string(n) + ", " + std::to_string(n) +
          "] failed",
      [&] {
        c10::InferenceMode g;
        return impl.image_encoder
            .forward({torch::zeros({1, 3, n, n},
                                   torch::TensorOptions().dtype(impl.dtype).device(impl.device))})
            .toTensor();
      });
  check_dims(paths.image, "output", out, {1, c.vision.width}, "vision.width");
  if (impl.has_text_encoder) {
    torch::Tensor t = translate_torch(
        ErrorCode::kInvalidModel,
        paths.text + ": forward on [1, " + std::to_string(c.text.context_length) + "] ids failed",
        [&] {
          c10::InferenceMode g;
          torch::Tensor ids =
              torch::zeros({1, c.text.context_length},
                           torch::TensorOptions().dtype(torch::kLong).device(impl.device));
          return impl.text_encoder.forward({ids}).toTensor();
        });
    check_dims(paths.text, "output", t, {1, c.text.width}, "text.width");
  }
}

}  // namespace

Model Model::load(const std::string& model_dir, const ModelOptions& options) {
  check_options(options);
  auto impl = std::make_shared<detail::ModelImpl>();
  const detail::CpuFeatures cpu = detail::cpu_features();  // refuses a bad $ZSCLIP_MAX_CPU_ISA
  impl->cpu_isa = cpu.isa;
  impl->linear_primitive = cpu.linear_primitive;
  impl->rows_kernel_rows = cpu.rows_kernel_rows;
  impl->config = ModelConfig::load(model_dir);
  impl->options = options;
  impl->runtime = Runtime::or_default(options.runtime);
  impl->options.runtime = impl->runtime;
  impl->device = parse_device(options.device);
  choose_precision(*impl);
  detail::apply_torch_settings(*impl->runtime);
  impl->streams = impl->device.is_cpu()
                      ? (options.streams > 0 ? options.streams : impl->runtime->threads())
                      : 1;
  const TowerPaths paths = check_files(impl->config, options);
  load_projection(*impl, paths.projection);
  load_image_tower(*impl, paths.image);
  if (options.load_text_encoder) load_text_tower(*impl, paths.text);
  if (options.warmup) warm_up(*impl, paths);
  return Model(std::move(impl));
}

const ModelConfig& Model::config() const { return impl_->config; }
const ModelOptions& Model::options() const { return impl_->options; }
const std::shared_ptr<Runtime>& Model::runtime() const { return impl_->runtime; }
std::string Model::device() const { return impl_->device.str(); }
std::string Model::dtype() const {
  if (impl_->linear_precision == detail::LinearPrecision::kBFloat16) return "bfloat16";
  if (impl_->linear_precision == detail::LinearPrecision::kInt8) return "int8";
  return impl_->dtype == torch::kHalf ? "float16" : "float32";
}
const std::string& Model::precision_note() const { return impl_->precision_note; }
std::string Model::linear_kernels() const { return impl_->routed_linears > 0 ? "onednn" : "aten"; }
std::string Model::linear_primitive() const {
  if (impl_->routed_linears == 0) return "none";
  if (impl_->linear_precision == detail::LinearPrecision::kInt8 && impl_->options.int8_text)
    return "matmul";
  std::string name = detail::linear_primitive_name(impl_->linear_primitive);
  if (impl_->linears_kept_on_matmul > 0)
    name += " (" + std::to_string(impl_->linears_kept_on_matmul) + " layers on matmul)";
  // The float32 layers on AVX2's convolution (with int8: the text tower's): calls of few rows on
  // zsclip's own kernel (rows_kernel.h).
  if (impl_->linear_primitive == detail::LinearPrimitive::kConv1x1 && impl_->rows_kernel_rows > 0)
    name += ", rows <= " + std::to_string(impl_->rows_kernel_rows) + ": avx2-rows";
  if (impl_->linear_precision == detail::LinearPrecision::kInt8)
    return "matmul (int8), " + name + " (text)";
  return name;
}
std::string Model::int8_kernel() const {
  if (impl_->linear_precision == detail::LinearPrecision::kInt8)
    return detail::int8_kernel_name(impl_->int8_kernel);
  return impl_->config.quantization == "int8" ? "libtorch-dynamic" : "none";
}
const std::string& Model::cpu_isa() const { return impl_->cpu_isa; }
bool Model::has_text_encoder() const { return impl_->has_text_encoder; }
int64_t Model::embed_dim() const { return impl_->config.embed_dim; }
const PreprocessConfig& Model::preprocess_config() const { return impl_->config.preprocess; }
const std::string& Model::fingerprint() const { return impl_->config.fingerprint; }
std::string Model::describe() const {
  const ModelConfig& c = impl_->config;
  return c.directory.empty() ? "model " + c.name : c.directory;
}
std::string Model::name() const { return impl_->config.name; }
int64_t Model::context_length() const { return impl_->config.text.context_length; }
float Model::logit_scale() const { return impl_->logit_scale; }
float Model::logit_scale_exp() const { return std::exp(impl_->logit_scale); }
Scoring Model::scoring() const { return impl_->config.scoring; }
float Model::logit_bias() const { return impl_->logit_bias; }

void Model::do_encode_images(const float* pixels, int64_t n_images, float* out) const {
  const int64_t n = image_size();
  torch::Tensor x =
      torch::from_blob(const_cast<float*>(pixels), {n_images, 3, n, n}, torch::kFloat);
  torch::Tensor y = translate_torch(ErrorCode::kInternal, "encode_images",
                                    [&] { return impl_->encode_images(x); });
  std::memcpy(out, y.data_ptr<float>(), sizeof(float) * static_cast<size_t>(y.numel()));
}

FloatTensor Model::do_encode_texts(const IdTensor& ids) const {
  if (!impl_->has_text_encoder)
    throw Error(
        ErrorCode::kInvalidArgument,
        "encode_texts: the model was loaded without its text encoder (load_text_encoder = false)");
  detail::check_tensor(ids, "encode_texts: ids");
  const int64_t l = context_length(), vocab = impl_->config.text.vocab_size;
  for (int64_t v : ids.data)
    if (v < 0 || v >= vocab)
      throw Error(ErrorCode::kInvalidArgument, "encode_texts: token id " + std::to_string(v) +
                                                   " is outside the vocabulary [0, " +
                                                   std::to_string(vocab) + ")");
  FloatTensor out({ids.size(0), embed_dim()});
  torch::Tensor x =
      torch::from_blob(const_cast<int64_t*>(ids.ptr()), {ids.size(0), l}, torch::kLong);
  torch::Tensor y =
      translate_torch(ErrorCode::kInternal, "encode_texts", [&] { return impl_->encode_texts(x); });
  std::memcpy(out.ptr(), y.data_ptr<float>(), sizeof(float) * static_cast<size_t>(y.numel()));
  return out;
}

const Tokenizer& Model::tokenizer() const {
  // A mutex, not std::call_once: a failed load (missing vocabulary) must leave a later call free
  // to retry and throw again, which libstdc++'s call_once does not guarantee on every target.
  std::lock_guard<std::mutex> lock(impl_->tokenizer_mu);
  if (!impl_->tokenizer) impl_->tokenizer.emplace(Tokenizer::from_config(impl_->config));
  return *impl_->tokenizer;
}

}  // namespace zsclip
