// Private: the persistent worker pool a zsclip::Runtime owns.
//
// A fixed set of worker threads and one FIFO queue of jobs. A job is either a parallel-for over n
// parts, whose caller takes part (it claims parts of its own job until none is left, then waits for
// the parts workers claimed), or an asynchronous task that a worker starts and whose wait() runs it
// on the waiting thread when no worker has begun it yet. A thread that waits also runs queued
// parallel-for parts meanwhile (never another task), so a worker that waits on a nested job helps
// instead of sleeping. Every job can be finished by its caller alone: nesting and any number of
// concurrent callers cannot deadlock, and the pool never starts a thread after construction.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace zsclip::detail {

class ThreadPool {
 public:
  struct Job;
  using TaskHandle = std::shared_ptr<Job>;

  explicit ThreadPool(int workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int workers() const { return static_cast<int>(threads_.size()); }

  // fn(i) for every i in [0, n), on the caller and idle workers. Returns when every part has ended;
  // then rethrows the exception of the lowest failing part, if any.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);
  // Queues fn for a worker. wait() must be called on the handle before anything fn uses goes away.
  TaskHandle submit(std::function<void()> fn);
  // Runs the task here unless a worker has started it, waits for it, rethrows its exception.
  void wait(const TaskHandle& task);

 private:
  void worker_loop();
  // With mu_ held: the next unclaimed part of `job`, or -1; drops a fully claimed job from the
  // queue.
  int64_t claim(const std::shared_ptr<Job>& job);
  // Runs part i of job with mu_ released; records its end (and exception) with mu_ held again.
  void run_part(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job, int64_t i);
  // With mu_ held: until `job` has ended, runs queued parallel-for parts or sleeps.
  void wait_for(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job);

  std::mutex mu_;
  std::condition_variable work_cv_;  // workers: a job was queued, or stop
  std::condition_variable done_cv_;  // waiters: a job ended, or a helpable job was queued
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zsclip::detail
