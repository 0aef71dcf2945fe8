// The process-wide half of a Runtime: LibTorch's intra-op and inter-op threads, OpenBLAS's threads
// and the quantized engine. LibTorch and OpenBLAS keep these in globals, so they are set once, by
// the first Model::load, and a later Runtime that asks for other values is refused. Part of the
// LibTorch library (zsclip::zsclip); the rest of the Runtime is in zsclip::core.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "model/model_impl.h"
#include "zsclip/error.h"
#include "zsclip/runtime.h"

namespace zsclip::detail {
namespace {

// OpenBLAS (Debian's LibTorch does its GEMMs there) keeps its own thread pool, which LibTorch's
// at::set_num_threads does not size. Found at run time so that other BLAS builds still link.
using BlasSetThreads = void (*)(int);

BlasSetThreads openblas_setter() {
  static BlasSetThreads fn =
      reinterpret_cast<BlasSetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  return fn;
}

const char* engine_name(at::QEngine e) {
  switch (e) {
    case at::QEngine::FBGEMM:
      return "fbgemm";
    case at::QEngine::ONEDNN:
      return "onednn";
    case at::QEngine::QNNPACK:
      return "qnnpack";
    default:
      return "none";
  }
}

// Dynamic int8 weights are repacked at load for the current quantized engine, so it must be one
// this CPU runs fast: FBGEMM, else oneDNN on x86 when built in, else QNNPACK. "" = none built in.
std::string resolve_engine(const std::string& wanted) {
  const auto& engines = at::globalContext().supportedQEngines();
  std::vector<at::QEngine> order;
  if (wanted == "onednn")
    order = {at::QEngine::ONEDNN};
  else if (wanted == "qnnpack")
    order = {at::QEngine::QNNPACK};
  else if (wanted == "fbgemm")
    order = {at::QEngine::FBGEMM};
  else
    order = {at::QEngine::FBGEMM, at::QEngine::ONEDNN, at::QEngine::QNNPACK};
  for (at::QEngine e : order)
    if (std::find(engines.begin(), engines.end(), e) != engines.end()) return engine_name(e);
  if (wanted != "auto")
    throw Error(ErrorCode::kUnsupported, "RuntimeOptions.quantized_engine \"" + wanted +
                                             "\" is not built into this LibTorch");
  return "";
}

at::QEngine engine_of(const std::string& name) {
  if (name == "fbgemm") return at::QEngine::FBGEMM;
  if (name == "onednn") return at::QEngine::ONEDNN;
  return at::QEngine::QNNPACK;
}

struct Settings {
  int intra_op_threads = 1;
  int blas_threads = 1;  // 0: left as $OPENBLAS_NUM_THREADS set it
  std::string engine;    // resolved; "" = none built in
};

std::string differences(const Settings& have, const Settings& want) {
  std::string out;
  auto add = [&](const char* field, const std::string& a, const std::string& b) {
    if (a == b) return;
    out += (out.empty() ? "" : ", ") + std::string(field) + " " + b + " (in effect: " + a + ")";
  };
  add("intra_op_threads", std::to_string(have.intra_op_threads),
      std::to_string(want.intra_op_threads));
  add("blas_threads", std::to_string(have.blas_threads), std::to_string(want.blas_threads));
  add("quantized_engine", have.engine, want.engine);
  return out;
}

}  // namespace

void apply_torch_settings(const Runtime& runtime) {
  static std::mutex mu;
  static bool applied = false;
  static Settings in_effect;
  std::lock_guard<std::mutex> lock(mu);
  Settings want{runtime.intra_op_threads(), runtime.blas_threads(),
                resolve_engine(runtime.options().quantized_engine)};
  if (applied) {
    const std::string diff = differences(in_effect, want);
    if (!diff.empty())
      throw Error(ErrorCode::kInvalidArgument,
                  "Runtime: " + diff +
                      "; LibTorch's and OpenBLAS's thread counts and the quantized engine are "
                      "process-wide and were set by the first model loaded in this process (use "
                      "Runtimes with the same RuntimeOptions for these, see zsclip/runtime.h)");
    return;
  }
  translate_torch(ErrorCode::kInternal, "Runtime: applying LibTorch settings", [&] {
    if (at::get_num_threads() != want.intra_op_threads) at::set_num_threads(want.intra_op_threads);
    // Inter-op parallelism buys nothing for encoder calls and costs threads.
    try {
      at::set_num_interop_threads(1);
    } catch (const c10::Error&) {
      // Already started by someone else: it stays as it is.
    }
    if (want.blas_threads > 0 && openblas_setter()) openblas_setter()(want.blas_threads);
    if (!want.engine.empty() && at::globalContext().qEngine() != engine_of(want.engine))
      at::globalContext().setQEngine(engine_of(want.engine));
    return 0;
  });
  in_effect = want;
  applied = true;
}

}  // namespace zsclip::detail
