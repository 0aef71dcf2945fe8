#include "runtime/thread_pool.h"

#include <algorithm>
#include <system_error>

#include "zsclip/error.h"

namespace zsclip::detail {

struct ThreadPool::Job {
  const std::function<void(int64_t)>* part = nullptr;  // parallel-for: the caller's function
  std::function<void()> task;                          // task: owned
  int64_t n = 0;
  // Guarded by ThreadPool::mu_:
  int64_t next = 0;        // the first unclaimed part
  int64_t unfinished = 0;  // parts not yet ended (claimed or not)
  int64_t error_index = -1;
  std::exception_ptr error;
  bool helpable() const { return part != nullptr; }
};

namespace {

// The pools whose slot this thread holds: one of their parts is running on this thread's stack.
thread_local std::vector<const ThreadPool*> tl_slots;

bool holds_slot(const ThreadPool* pool) {
  return std::find(tl_slots.begin(), tl_slots.end(), pool) != tl_slots.end();
}
void drop_slot(const ThreadPool* pool) {
  tl_slots.erase(std::find(tl_slots.begin(), tl_slots.end(), pool));
}

}  // namespace

ThreadPool::ThreadPool(int slots) : free_slots_(std::max(1, slots)), slots_(std::max(1, slots)) {
  const int workers = free_slots_ - 1;
  threads_.reserve(static_cast<size_t>(workers));
  try {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
  } catch (const std::system_error& e) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
    throw Error(ErrorCode::kInternal,
                std::string("runtime: cannot start worker threads: ") + e.what());
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock,
                  [this] { return (stop_ && queue_.empty()) || (!queue_.empty() && may_run()); });
    if (queue_.empty()) return;  // stopping, and nothing left to run
    std::shared_ptr<Job> job = queue_.front();
    run_part(lock, job, claim(job));
  }
}

int64_t ThreadPool::claim(const std::shared_ptr<Job>& job) {
  if (job->next >= job->n) return -1;
  const int64_t i = job->next++;
  if (job->next == job->n) {
    auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it != queue_.end()) queue_.erase(it);
  }
  return i;
}

bool ThreadPool::may_run() const {
  return holds_slot(this) || (exclusive_waiting_ == 0 && free_slots_ > taking_back_);
}

void ThreadPool::slot_freed() {
  work_cv_.notify_one();
  done_cv_.notify_all();
}

void ThreadPool::run_part(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job,
                          int64_t i) {
  const bool take = !holds_slot(this);
  if (take) {
    --free_slots_;
    tl_slots.push_back(this);
  }
  std::exception_ptr error;
  lock.unlock();
  try {
    if (job->part)
      (*job->part)(i);
    else
      job->task();
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  if (take) {
    drop_slot(this);
    ++free_slots_;
    slot_freed();
  }
  if (error && (job->error_index < 0 || i < job->error_index)) {
    job->error_index = i;
    job->error = error;
  }
  if (--job->unfinished == 0) done_cv_.notify_all();
}

void ThreadPool::wait_for(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job) {
  bool lent = false;
  while (job->unfinished > 0) {
    auto it = queue_.end();
    if (may_run())
      it = std::find_if(queue_.begin(), queue_.end(), [](const auto& j) { return j->helpable(); });
    if (it != queue_.end()) {
      std::shared_ptr<Job> other = *it;
      run_part(lock, other, claim(other));
      continue;
    }
    if (holds_slot(this)) {  // sleeping: lend the slot to a thread that has work
      drop_slot(this);
      ++free_slots_;
      lent = true;
      slot_freed();
    }
    done_cv_.wait(lock);
  }
  if (lent) {  // the part this thread is inside of continues: take a slot back first
    ++taking_back_;
    done_cv_.wait(lock, [this] { return free_slots_ > 0; });
    --taking_back_;
    --free_slots_;
    tl_slots.push_back(this);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n ==
      1) {  // nothing to share: the caller's thread, no slot, no lock (a single image's latency)
    fn(0);
    return;
  }
  auto job = std::make_shared<Job>();
  job->part = &fn;
  job->n = job->unfinished = n;
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(job);
  const int64_t wake = std::min<int64_t>(n - 1, static_cast<int64_t>(threads_.size()));
  for (int64_t k = 0; k < wake; ++k) work_cv_.notify_one();
  done_cv_.notify_all();  // threads waiting on other jobs may help
  while (job->next < job->n) {
    if (may_run())
      run_part(lock, job, claim(job));
    else
      done_cv_.wait(lock);  // no free slot: the workers may claim the parts meanwhile
  }
  wait_for(lock, job);
  if (job->error) std::rethrow_exception(job->error);
}

void ThreadPool::run_exclusive(const std::function<void(int)>& fn, bool wait) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool idle =
      free_slots_ == slots_ && taking_back_ == 0 && exclusive_waiting_ == 0 && queue_.empty();
  if (slots_ == 1 || holds_slot(this) || (!wait && !idle)) {
    lock.unlock();
    fn(1);
    return;
  }
  ++exclusive_waiting_;
  done_cv_.wait(lock, [this] { return free_slots_ == slots_ && taking_back_ == 0; });
  --exclusive_waiting_;
  free_slots_ = 0;
  tl_slots.push_back(this);
  lock.unlock();
  std::exception_ptr error;
  try {
    fn(slots_);
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  drop_slot(this);
  free_slots_ = slots_;
  work_cv_.notify_all();
  done_cv_.notify_all();
  lock.unlock();
  if (error) std::rethrow_exception(error);
}

ThreadPool::TaskHandle ThreadPool::submit(std::function<void()> fn) {
  auto job = std::make_shared<Job>();
  job->task = std::move(fn);
  job->n = job->unfinished = 1;
  std::lock_guard<std::mutex> lock(mu_);
  queue_.push_back(job);
  work_cv_.notify_one();
  return job;
}

void ThreadPool::wait(const TaskHandle& task) {
  std::unique_lock<std::mutex> lock(mu_);
  while (task->next == 0) {  // not started: run it here as soon as a slot allows
    if (may_run())
      run_part(lock, task, claim(task));
    else
      done_cv_.wait(lock);
  }
  wait_for(lock, task);
  if (task->error) std::rethrow_exception(task->error);
}

}  // namespace zsclip::detail
