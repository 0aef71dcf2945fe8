// Every option of the zsclip command line, each declared once with the subcommands that take it.
// A default is the options struct's own (ModelOptions, ClassifierOptions, IndexBuildOptions,
// ServerOptions...): --help prints it and Args::get returns it when the option is not given.
#include <cstdio>
#include <iostream>

#include "cli/cli.h"
#include "zsclip/index.h"
#include "zsclip/model.h"
#include "zsclip/pipeline.h"
#include "zsclip/runtime.h"
#include "zsclip/triton_export.h"
#ifdef ZSCLIP_WITH_SERVER
#include "server/server.h"
#endif

namespace zsclip::cli {
namespace {

std::string str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The subcommands that load a model.
#define ZSCLIP_MODEL_COMMANDS "embed head classify info index.build search bench serve"

std::vector<OptionSpec> make_table() {
  const ModelOptions mo;
  const RuntimeOptions ro;
  const ClassifierOptions co;
  const IndexBuildOptions io;
  const AnnOptions ao;
  const TritonExportOptions to;
  std::vector<OptionSpec> t = {
      {"--model", "DIR",
       "exported model directory (default: $ZSCLIP_MODEL or the shipped models/shapes)",
       ZSCLIP_MODEL_COMMANDS " tokenize preprocess export-triton"},
      {"--threads", "N", "cores inference may use (0: the cores this process may use)",
       ZSCLIP_MODEL_COMMANDS, str(ro.threads)},
      {"--device", "DEV", "cpu, cuda or cuda:N", ZSCLIP_MODEL_COMMANDS, mo.device},
      {"--no-verify", "", "skip checking the model files against the sizes/hashes in config.json",
       "embed head classify info index search bench"},
      {"--precision", "P",
       "float32, bfloat16 or int8: the linear layers in bf16 (CPUs with AVX512_BF16) or dynamic "
       "int8 (AVX2 or VNNI, picked by the CPU) on a float32 export; float32 elsewhere, with a note "
       "on standard error",
       "embed head classify info index search bench serve", "float32"},
      {"--int8-text", "", "with --precision int8: the text tower in int8 too (default: float32)",
       "embed head classify info index search bench serve"},
      {"--linear-kernels", "K",
       "auto (oneDNN where built in), onednn or aten (LibTorch's, OpenBLAS)",
       "embed head classify info index search bench serve", mo.linear_kernels},
      {"--no-spread-single", "",
       "one image or text runs on one thread (default: on every core when the runtime is idle; "
       "faster on a machine busy with other processes)",
       "embed head classify info index search bench serve"},
      {"--truncate", "",
       "cut prompts and texts longer than the model's context as clip.tokenize(truncate=True) "
       "does (default: an error that names the prompt and its token count)",
       "embed head classify search serve"},
      {"--image", "FILE", "an image to embed", "embed", "", true},
      {"--image", "FILE", "an image query (more like this one)", "search"},
      {"--text", "TEXT", "a text to embed", "embed", "", true},
      {"--text", "TEXT", "a text query", "search"},
      {"--batch-size", "N",
       "images (embed: and texts) per encoder call (index build: and per commit)",
       "embed classify index.build bench", str(co.batch_size)},
      {"--labels", "LIST", "comma-separated class labels", "head classify"},
      {"--labels-file", "FILE", "class labels, one a line", "head classify"},
      {"--head", "HEAD", "a head saved by `zsclip head` (the text encoder is not loaded)",
       "classify"},
      {"--templates", "NAME|FILE",
       "prompt templates, a built-in set or a file (search: embed the text like a zero-shot class "
       "with them; without, as given)",
       "head classify search", "simple"},
      {"--top-k", "K", "labels shown per image", "classify", str(co.top_k)},
      {"--top-k", "K", "rows shown", "search", "10"},
      {"--json", "", "JSON output", "classify search bench"},
      {"--jsonl", "", "JSON lines: a labels header, then one object per image, flushed per batch",
       "classify"},
      {"--index", "INDEX",
       "classify: the images of an index from their stored features; search: an index folder "
       "made by `zsclip index build`",
       "classify search"},
      {"--images-from", "FILE",
       "image paths, one a line ('-': standard input; classify: after any IMAGE given)",
       "classify index.build"},
      {"--exact", "", "scan every row even when the index has an approximate part", "search"},
      {"--out", "PATH",
       "head: the head file; index: the index folder; preprocess: the output file (raw "
       "float32); export-triton: the model repository (created if missing)",
       "head index.build index.merge preprocess export-triton"},
      {"--force", "",
       "index merge: replace an existing --out (even one of the inputs); export-triton: replace "
       "REPO/image_encoder and REPO/text_encoder if they exist",
       "index.merge export-triton"},
      {"--recursive", "", "walk folders recursively", "index.build"},
      {"--shard", "K/N", "only the paths of shard K of N (0 <= K < N)", "index.build"},
      {"--dtype", "TYPE", "float16 (2 bytes a value) or float32", "index.build",
       index_dtype_name(io.dtype)},
      {"--ann", "KIND", "hnsw or ivf: also build an approximate index (needs FAISS)",
       "index.build index.ann", ao.kind},
      {"--hnsw-m", "M", "HNSW links per node", "index.build index.ann", str(ao.hnsw_m)},
      {"--ef-search", "N", "HNSW candidate list size at search", "index.build index.ann",
       str(ao.hnsw_ef_search)},
      {"--ivf-lists", "N", "IVF cells (0: sqrt(rows))", "index.build index.ann", str(ao.ivf_lists)},
      {"--ivf-probe", "N", "IVF cells searched (0: lists/16, at least 8)", "index.build index.ann",
       str(ao.ivf_probe)},
      {"--iterations", "N", "batches timed", "bench", "3"},
      {"--images", "FILE", "an image to use", "bench", "", true},
      {"--text-classes", "N", "classes for the text figure, x80 templates (0 = skip)", "bench",
       "2"},
      {"--head-classes", "N", "classes of the head", "bench", "1000"},
      {"--streams", "N",
       "parallel parts per encoder call on CPU (0: --threads; 1 = one part, spread by "
       "--blas-threads)",
       "bench", str(mo.streams)},
      {"--intra-op-threads", "N", "LibTorch intra-op threads (0: see RuntimeOptions)", "bench",
       str(ro.intra_op_threads)},
      {"--blas-threads", "N", "OpenBLAS threads (0: see RuntimeOptions)", "bench",
       str(ro.blas_threads)},
      {"--qengine", "NAME", "int8 engine: auto, fbgemm, onednn, qnnpack", "bench",
       ro.quantized_engine},
      {"--no-optimize", "", "skip freezing (ModelOptions::optimize = false)", "bench"},
      {"--profile", "FILE",
       "also run the timed image batches under LibTorch's op profiler and write a Chrome trace "
       "(tools/profile_summary.py FILE sums it by op)",
       "bench"},
      {"--optimize-for-inference", "", "use torch::jit::optimize_for_inference (experimental)",
       "bench"},
      {"--features-out", "FILE",
       "write the encoder's features of the batch (float32 raw) for comparisons", "bench"},
      {"--vocab", "FILE", "BPE merges file (gzip as OpenAI ships it, or plain text)", "tokenize"},
      {"--context-length", "N", "context length (default 77, or the model's)", "tokenize"},
      {"--no-truncate", "", "fail on texts longer than the context instead of truncating",
       "tokenize"},
      {"--bpe-only", "",
       "print the BPE (or SentencePiece) ids alone: no start/end tokens, no truncation",
       "tokenize"},
      {"--image-size", "N", "OpenAI's pipeline at size N", "preprocess"},
      {"--exif", "",
       "apply the EXIF orientation (Pillow's Image.open ignores it; so does the default)",
       "preprocess"},
      {"--max-batch", "N", "config.pbtxt max_batch_size", "export-triton", str(to.max_batch)},
      {"--max-delay-ms", "T", "dynamic_batching max_queue_delay in ms", "export-triton",
       str(to.max_delay_ms)},
  };
#ifdef ZSCLIP_WITH_SERVER
  const server::ServerOptions so;
  t.insert(
      t.end(),
      {
          {"--host", "ADDR", "address to listen on (0.0.0.0 for every interface)", "serve",
           so.host},
          {"--port", "N", "TCP port (0: any free port)", "serve", str(so.port)},
          {"--max-batch", "N", "most images or texts per encoder call, and per request", "serve",
           str(so.max_batch)},
          {"--max-delay-ms", "T", "longest a request waits for others to batch with", "serve",
           str(so.max_delay_ms)},
          {"--max-queue", "Q", "requests waiting per encoder before 503", "serve",
           str(so.max_queue)},
          {"--max-request-bytes", "B", "largest request body, e.g. 64M", "serve",
           str(so.max_request_bytes >> 20) + "M"},
          {"--http-threads", "N",
           "HTTP worker threads: requests whose head has arrived handled at once", "serve",
           str(so.http_threads)},
          {"--max-connections", "N",
           "client connections open at once; more are answered 503 and closed", "serve",
           str(so.max_connections)},
          {"--header-seconds", "S",
           "a request head must arrive within S seconds, else 408 and close", "serve",
           str(so.header_seconds)},
          {"--body-seconds", "S",
           "a request body must arrive within S seconds of being read, else 408", "serve",
           str(so.body_seconds)},
          {"--drain-seconds", "S",
           "on SIGTERM, connections still open after S seconds are shut down", "serve",
           str(so.drain_seconds)},
          {"--max-inflight", "N",
           "inference requests read, parsed, decoded and run at once; others wait", "serve",
           str(so.max_inflight)},
          {"--max-decodes", "N", "images decoded at once", "serve", str(so.max_decodes)},
          {"--head-cache", "N", "zero-shot heads (label sets) kept, least recently used evicted",
           "serve", str(so.head_cache)},
          {"--max-labels", "N", "most LABELS in one zero_shot request (TEMPLATES: at most 100)",
           "serve", str(so.max_labels)},
      });
#endif
  return t;
}

}  // namespace

const std::vector<OptionSpec>& option_table() {
  static const std::vector<OptionSpec> table = make_table();
  return table;
}

void apply_precision_options(const Args& args, ModelOptions& o) {
  const std::string p = args.get("--precision");
  if (p == "float32" || p == "fp32")
    o.dtype = o.device == "cpu" ? "float32" : "auto";
  else if (p == "bfloat16" || p == "bf16")
    o.dtype = "bfloat16";
  else if (p == "int8")
    o.dtype = "int8";
  else
    throw UsageError("--precision " + p + ": expected float32, bfloat16 or int8");
  o.linear_kernels = args.get("--linear-kernels");
  o.int8_text = args.has("--int8-text");
  o.spread_single = !args.has("--no-spread-single");
  if (o.linear_kernels != "auto" && o.linear_kernels != "onednn" && o.linear_kernels != "aten")
    throw UsageError("--linear-kernels " + o.linear_kernels + ": expected auto, onednn or aten");
}

void report_precision(const Model& model) {
  if (!model.precision_note().empty()) std::cerr << "zsclip: " << model.precision_note() << "\n";
}

ModelOptions model_options(const Args& args, bool text_encoder) {
  ModelOptions o;
  o.device = args.get("--device");
  if (const int threads = args.get_int("--threads", 0, 1024)) {
    RuntimeOptions ro;
    ro.threads = threads;
    o.runtime = Runtime::create(ro);
  }
  o.load_text_encoder = text_encoder;
  o.verify_files = !args.has("--no-verify");
  apply_precision_options(args, o);
  return o;
}

}  // namespace zsclip::cli
