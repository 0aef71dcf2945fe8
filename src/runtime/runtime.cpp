#include "zsclip/runtime.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "runtime/thread_pool.h"
#include "zsclip/error.h"

namespace zsclip {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

namespace {

int checked_count(int value, const char* field) {
  if (value < 0)
    throw Error(ErrorCode::kInvalidArgument, std::string("RuntimeOptions.") + field + " " +
                                                 std::to_string(value) + ": must be >= 0");
  return value;
}

}  // namespace

Runtime::Runtime(RuntimeOptions options) : options_(std::move(options)) {
  threads_ = checked_count(options_.threads, "threads");
  if (threads_ == 0) threads_ = available_cores();
  intra_op_threads_ = checked_count(options_.intra_op_threads, "intra_op_threads");
  if (intra_op_threads_ == 0) intra_op_threads_ = 1;
  blas_threads_ = checked_count(options_.blas_threads, "blas_threads");
  if (blas_threads_ == 0) {
    const char* env = std::getenv("OPENBLAS_NUM_THREADS");
    blas_threads_ = (env && *env) ? 0 : 1;
  }
  const std::string& q = options_.quantized_engine;
  if (q != "auto" && q != "fbgemm" && q != "onednn" && q != "qnnpack")
    throw Error(ErrorCode::kInvalidArgument, "RuntimeOptions.quantized_engine \"" + q +
                                                 "\": expected auto, fbgemm, onednn or qnnpack");
  pool_ = std::make_unique<detail::ThreadPool>(threads_);  // threads_ slots, threads_ - 1 workers
}

Runtime::~Runtime() = default;

std::shared_ptr<Runtime> Runtime::create(RuntimeOptions options) {
  return std::make_shared<Runtime>(std::move(options));
}

const std::shared_ptr<Runtime>& Runtime::default_runtime() {
  // Never destroyed: objects with static storage may still use it while the process exits, and
  // idle workers need no joining.
  static const auto* runtime = new std::shared_ptr<Runtime>(std::make_shared<Runtime>());
  return *runtime;
}

std::shared_ptr<Runtime> Runtime::or_default(std::shared_ptr<Runtime> runtime) {
  return runtime ? std::move(runtime) : default_runtime();
}

void Runtime::parallel_for(int64_t parts, const std::function<void(int64_t)>& fn) const {
  pool_->parallel_for(parts, fn);
}

void Runtime::run_exclusive(const std::function<void(int)>& fn, bool wait) const {
  pool_->run_exclusive(fn, wait);
}

namespace detail {
ThreadPool& thread_pool(const Runtime& runtime) { return *runtime.pool_; }
}  // namespace detail

}  // namespace zsclip
