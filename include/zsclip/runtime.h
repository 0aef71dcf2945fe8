// zsclip/runtime.h — the threads zsclip computes on, and the process-wide LibTorch settings.
//
//   // Nothing to do for the simple case: models, classifiers and preprocessors that are given no
//   // Runtime share Runtime::default_runtime() (all the cores this process may use).
//   auto clf = zsclip::ZeroShotClassifier::create("models/shapes", labels, templates);
//
//   // Two cores for this model and everything built on it:
//   zsclip::RuntimeOptions ro;
//   ro.threads = 2;
//   auto rt = zsclip::Runtime::create(ro);
//   zsclip::ModelOptions mo;
//   mo.runtime = rt;  // the classifier made from this model uses it too
//   auto clf2 = zsclip::ZeroShotClassifier::create("models/shapes", labels, templates, mo);
//
// A Runtime owns a pool of threads() - 1 worker threads, started when it is made and joined when
// the last owner lets it go; nothing in zsclip starts a thread per call. Work is split into parts
// (an encoder call's streams, a batch's images): the calling thread runs parts itself and the idle
// workers run the others. At most threads() threads run parts at once, whatever the number of
// callers: a caller whose parts find no free slot waits while the slots' holders (workers, other
// callers) run them, so N callers of one object share threads() cores instead of each starting
// threads for every core. A parallel_for with one part runs on the caller's thread without a
// slot. A model's single image goes through run_exclusive instead: it holds every slot (waiting
// for the running parts to end) and spreads over all threads() cores in the caller's OpenMP team.
//
// What is global, what is per object:
//   per Runtime   the thread count and the worker pool.
//   per process   LibTorch's intra-op thread count, OpenBLAS's thread count, LibTorch's inter-op
//                 pool (always 1) and LibTorch's quantized engine: LibTorch and OpenBLAS keep them
//                 in globals. The first Model::load in the process applies the settings of its
//                 model's Runtime; a later Model::load whose Runtime asks for different values
//                 throws zsclip::Error(kInvalidArgument) naming them. Runtimes that leave these
//                 options at their defaults never conflict. Nothing else in zsclip sets them (do
//                 not call at::set_num_threads yourself while zsclip runs).
//   per process   Runtime::default_runtime(): made on first use, never destroyed.
//
// Thread safety: a Runtime is immutable after construction; parallel_for may be called from any
// number of threads at once, and from inside a part (nested calls run; they never deadlock).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace zsclip {

// The cores this process may run on: its CPU affinity mask (sched_getaffinity, which honours
// taskset and cgroup cpusets), else std::thread::hardware_concurrency(); at least 1. Every
// "0 = the cores" default in zsclip means this number.
int available_cores();

// Options of a Runtime.
//   threads           (0)      threads this runtime computes on, the caller's included; 0 =
//                              available_cores(). The pool has threads - 1 workers.
//   intra_op_threads  (0)      process-wide: LibTorch's intra-op threads inside one part; 0 = 1
//                              (parts run in parallel instead; measured fastest,
//                              benchmarks/README.md)
//   blas_threads      (0)      process-wide: OpenBLAS's threads inside one GEMM; 0 = 1, or leave
//                              OpenBLAS as $OPENBLAS_NUM_THREADS set it when that is set
//   quantized_engine  ("auto") process-wide, int8 models: "fbgemm", "onednn" or "qnnpack"; "auto"
//                              picks the first of these this LibTorch has
// More intra-op or BLAS threads pay only with ModelOptions::streams = 1 (one part per call); with
// several parts or callers they compete with the pool for the same cores.
struct RuntimeOptions {
  int threads = 0;
  int intra_op_threads = 0;
  int blas_threads = 0;
  std::string quantized_engine = "auto";
};

class Runtime;
namespace detail {
class ThreadPool;
ThreadPool& thread_pool(const Runtime& runtime);  // private: zsclip's own sources use it
}  // namespace detail

class Runtime {
 public:
  // Throws zsclip::Error(kInvalidArgument) for negative counts or an unknown engine name.
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  static std::shared_ptr<Runtime> create(RuntimeOptions options = {});
  // The runtime of every object given none: default options, made on first use.
  static const std::shared_ptr<Runtime>& default_runtime();
  // `runtime`, or default_runtime() when it is null.
  static std::shared_ptr<Runtime> or_default(std::shared_ptr<Runtime> runtime);

  const RuntimeOptions& options() const { return options_; }
  int threads() const { return threads_; }
  // The process-wide values this runtime asks for, resolved (0 from blas_threads: leave OpenBLAS
  // as $OPENBLAS_NUM_THREADS set it).
  int intra_op_threads() const { return intra_op_threads_; }
  int blas_threads() const { return blas_threads_; }

  // Runs fn(i) for every i in [0, parts): on the calling thread and on idle workers, at most
  // threads() parts at once across all callers (one part: on the caller, directly). Returns when
  // every part has ended, then rethrows the exception of the lowest failing part, if any.
  void parallel_for(int64_t parts, const std::function<void(int64_t)>& fn) const;
  // Runs fn(k) on the calling thread while it holds k of the threads() slots: all of them, once
  // every running part has ended (parts not yet started wait for it), so fn may spread its work
  // over k cores itself (zsclip uses it for a single image: one OpenMP team over every core). A
  // call from inside a part gets k = 1 at once. wait = false: only when the runtime is idle (no
  // part running or queued), else fn(1) at once on the caller, so a pipeline's other work is not
  // held up. Rethrows fn's exception.
  void run_exclusive(const std::function<void(int)>& fn, bool wait = true) const;

 private:
  friend detail::ThreadPool& detail::thread_pool(const Runtime& runtime);
  RuntimeOptions options_;
  int threads_ = 1;
  int intra_op_threads_ = 1;
  int blas_threads_ = 1;
  std::unique_ptr<detail::ThreadPool> pool_;
};

}  // namespace zsclip
