// Private: the persistent worker pool a zsclip::Runtime owns.
//
// A fixed set of worker threads and one FIFO queue of jobs. A job is either a parallel-for over n
// parts, whose caller takes part (it runs parts of its own job until none is left unclaimed, then
// waits for the parts others claimed), or an asynchronous task that a worker starts and whose
// wait() runs it on the waiting thread when no worker has begun it yet. A thread that waits runs
// queued parallel-for parts meanwhile (never another task), so a worker that waits on a nested job
// helps instead of sleeping.
//
// Slots: the pool has `slots` (= the runtime's threads) tokens, and a thread runs a part or a task
// only while it holds one, so at most `slots` threads compute for the pool at once however many
// callers there are; a caller with work and no free slot sleeps until one frees. A thread that
// sleeps in a wait lends its slot meanwhile and takes one back before it continues. Nested calls
// run on the slot their thread holds. Every job can be finished by its caller alone, and every slot
// is held by a thread that is computing: nesting and concurrent callers cannot deadlock. The pool
// never starts a thread after construction.
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

  // `slots` >= 1 threads compute at once; slots - 1 of them are workers started here.
  explicit ThreadPool(int slots);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int workers() const { return static_cast<int>(threads_.size()); }  // slots - 1

  // fn(i) for every i in [0, n), on the caller and idle workers. Returns when every part has ended;
  // then rethrows the exception of the lowest failing part, if any.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);
  // Runs fn(k) on the calling thread while it holds k slots: all of them (k = slots), waiting until
  // every slot is free (new parts wait meanwhile, so it is not starved), for work that spreads over
  // k cores by other means (an OpenMP team). A caller that already holds a slot (a nested call)
  // gets k = 1 and runs at once: waiting there for the others could deadlock.
  // wait = false: when any slot is taken or work is queued, runs fn(1) at once instead (no slot).
  void run_exclusive(const std::function<void(int)>& fn, bool wait = true);
  // Queues fn for a worker. wait() must be called on the handle before anything fn uses goes away.
  TaskHandle submit(std::function<void()> fn);
  // Runs the task here unless a worker has started it, waits for it, rethrows its exception.
  void wait(const TaskHandle& task);

 private:
  void worker_loop();
  // All with mu_ held.
  // The next unclaimed part of `job`, or -1; drops a fully claimed job from the queue.
  int64_t claim(const std::shared_ptr<Job>& job);
  // Whether this thread may start a part now: it holds a slot, or one is free that no thread
  // taking its lent slot back is waiting for.
  bool may_run() const;
  // Runs part i of job with mu_ released, on this thread's slot or a free one (the caller checked
  // may_run); records its end and exception with mu_ held again.
  void run_part(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job, int64_t i);
  // Until `job` has ended: runs queued parallel-for parts, or sleeps with this thread's slot lent.
  void wait_for(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Job>& job);
  void slot_freed();

  std::mutex mu_;
  std::condition_variable work_cv_;  // workers: a job was queued, a slot freed, or stop
  std::condition_variable
      done_cv_;  // waiters: a job ended, a slot freed, or a helpable job was queued
  std::deque<std::shared_ptr<Job>> queue_;
  int free_slots_ = 0;
  int taking_back_ = 0;  // threads waiting to take their lent slot back (they go first)
  int slots_ = 1;
  int exclusive_waiting_ = 0;  // run_exclusive callers waiting for every slot
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zsclip::detail
