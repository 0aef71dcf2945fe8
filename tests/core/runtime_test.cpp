// zsclip::Runtime and its worker pool: every part runs once, errors come back, nested and
// concurrent calls finish, the thread count is fixed, and cores are counted one way.
#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fake_encoder.h"
#include "runtime/thread_pool.h"
#include "test_util.h"
#include "zsclip/config.h"
#include "zsclip/error.h"
#include "zsclip/runtime.h"

namespace zsclip {
namespace {

using ::zsclip::testing::process_threads;
using ::zsclip::testing::process_threads_after_join;
using ::zsclip::testing::process_threads_settled;

RuntimeOptions with_threads(int n) {
  RuntimeOptions o;
  o.threads = n;
  return o;
}

TEST(Runtime, CoresAreTheAffinityMask) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(available_cores(), CPU_COUNT(&set));
  EXPECT_EQ(Runtime().threads(), available_cores());
  EXPECT_EQ(Runtime::default_runtime()->threads(), available_cores());
  EXPECT_EQ(Runtime::default_runtime(), Runtime::default_runtime());
  EXPECT_EQ(Runtime::or_default(nullptr), Runtime::default_runtime());
}

TEST(Runtime, OptionsAreChecked) {
  Runtime r(with_threads(3));
  EXPECT_EQ(r.threads(), 3);
  EXPECT_EQ(r.intra_op_threads(), 1);
  for (auto bad : {RuntimeOptions{-1, 0, 0, "auto"}, RuntimeOptions{0, -2, 0, "auto"},
                   RuntimeOptions{0, 0, -3, "auto"}, RuntimeOptions{0, 0, 0, "mkl"}}) {
    try {
      Runtime x(bad);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("RuntimeOptions."), std::string::npos) << e.what();
    }
  }
}

TEST(Runtime, ParallelForRunsEveryPartOnce) {
  for (int threads : {1, 2, 4}) {
    Runtime r(with_threads(threads));
    for (int64_t n : {0, 1, 2, 3, 7, 64}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      r.parallel_for(n, [&](int64_t i) { ++hits[static_cast<size_t>(i)]; });
      for (int64_t i = 0; i < n; ++i)
        EXPECT_EQ(hits[size_t(i)].load(), 1) << threads << " threads, part " << i;
    }
  }
}

TEST(Runtime, OnePartAndOneThreadRunOnTheCaller) {
  Runtime one(with_threads(1)), two(with_threads(2));
  const auto me = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> seen;
  one.parallel_for(16, [&](int64_t) {
    std::lock_guard<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
  });
  EXPECT_EQ(seen, std::set<std::thread::id>{me});
  seen.clear();
  two.parallel_for(1, [&](int64_t) { seen.insert(std::this_thread::get_id()); });
  EXPECT_EQ(seen, std::set<std::thread::id>{me});
}

TEST(Runtime, ErrorsComeBackAfterEveryPartEnded) {
  Runtime r(with_threads(3));
  std::atomic<int> ran{0};
  try {
    r.parallel_for(10, [&](int64_t i) {
      ++ran;
      if (i == 7 || i == 4) throw Error(ErrorCode::kInvalidImage, "part " + std::to_string(i));
    });
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "part 4");  // the lowest failing part
  }
  EXPECT_EQ(ran.load(), 10);
  // The pool is still usable.
  std::atomic<int> after{0};
  r.parallel_for(5, [&](int64_t) { ++after; });
  EXPECT_EQ(after.load(), 5);
}

TEST(Runtime, ThreadsAreStartedOnceAndNeverPerCall) {
  // ThreadSanitizer starts a helper thread of its own at the process's first thread creation:
  // have it started before counting (run alone, this test's runtime would otherwise be the first).
  std::thread([] {}).join();
  // ...and let that thread leave /proc/self/task (see process_threads_after_join).
  const int before = process_threads_settled();
  {
    Runtime r(with_threads(4));
    EXPECT_EQ(process_threads(), before + 3);  // threads - 1 workers; the caller is the 4th
    std::atomic<int> max_seen{0};
    for (int call = 0; call < 50; ++call)
      r.parallel_for(8, [&](int64_t) {
        const int now = process_threads();
        int seen = max_seen.load();
        while (now > seen && !max_seen.compare_exchange_weak(seen, now)) {
        }
      });
    EXPECT_EQ(max_seen.load(), before + 3);
  }
  EXPECT_EQ(process_threads_after_join(before), before);  // joined with the runtime
}

TEST(Runtime, ModelFileChecksRunOnTheRuntimeAndStartNoThread) {
  // Two files of 16 MiB whose recorded hashes differ: both are hashed, then refused.
  ModelConfig c;
  c.directory = ::zsclip::testing::temp_dir("verify_threads");
  for (const char* name : {"a.bin", "b.bin"}) {
    std::ofstream(c.path_of(name), std::ios::binary) << std::string(16 << 20, 'x');
    c.file_checks[name] = {16 << 20, 0};
  }
  EXPECT_THROW(c.verify_files(), Error);  // the first call may make the default runtime
  const int before = process_threads();
  const int most = ::zsclip::testing::max_threads_during([&] {
    for (int i = 0; i < 10; ++i) EXPECT_THROW(c.verify_files(), Error);
  });
  EXPECT_EQ(most, before);
}

TEST(Runtime, NestedAndConcurrentCallsFinish) {
  // Eight callers, each three levels deep, on two threads: any part waiting for a part that no
  // thread is free to run would hang here.
  Runtime r(with_threads(2));
  std::atomic<int64_t> leaves{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep)
        r.parallel_for(3, [&](int64_t) {
          r.parallel_for(4, [&](int64_t) { r.parallel_for(2, [&](int64_t) { ++leaves; }); });
        });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(leaves.load(), 8 * 20 * 3 * 4 * 2);
}

TEST(Runtime, ConcurrentCallersShareTheWorkers) {
  // However many callers, the parts run on the callers' threads and the pool's, never on new ones.
  Runtime r(with_threads(3));
  std::mutex mu;
  std::set<std::thread::id> runners, callers_ids;
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t)
    callers.emplace_back([&] {
      {
        std::lock_guard<std::mutex> lock(mu);
        callers_ids.insert(std::this_thread::get_id());
      }
      for (int rep = 0; rep < 30; ++rep)
        r.parallel_for(5, [&](int64_t) {
          std::lock_guard<std::mutex> lock(mu);
          runners.insert(std::this_thread::get_id());
        });
    });
  for (auto& c : callers) c.join();
  size_t workers = 0;
  for (const auto& id : runners) workers += callers_ids.count(id) == 0;
  EXPECT_LE(workers, 2u);  // threads - 1
}

TEST(Runtime, AtMostThreadsPartsRunAtOnce) {
  // Six callers of a two-thread runtime: never more than two parts in flight (the callers beyond
  // the slots wait), and every part still runs.
  for (int threads : {1, 2, 3}) {
    Runtime r(with_threads(threads));
    std::atomic<int> active{0}, max_active{0}, done{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 6; ++t)
      callers.emplace_back([&] {
        for (int rep = 0; rep < 10; ++rep)
          r.parallel_for(4, [&](int64_t) {
            const int now = ++active;
            int seen = max_active.load();
            while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
            }
            std::this_thread::sleep_for(std::chrono::microseconds(200));  // let the callers overlap
            --active;
            ++done;
          });
      });
    for (auto& c : callers) c.join();
    EXPECT_EQ(done.load(), 6 * 10 * 4);
    EXPECT_LE(max_active.load(), threads) << threads << " threads";
  }
}

TEST(Runtime, RunExclusiveHoldsEverySlot) {
  // Callers of parallel_for and of run_exclusive at once on a three-thread runtime: an exclusive
  // call gets k = 3 and no part runs beside it; one made from inside a part gets k = 1 at once
  // (waiting there for the other slots could deadlock); everything finishes.
  Runtime r(with_threads(3));
  std::atomic<int> parts_active{0}, exclusive_active{0}, overlaps{0}, done{0}, nested_k{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep)
        r.parallel_for(3, [&](int64_t i) {
          ++parts_active;
          if (exclusive_active.load() > 0) ++overlaps;
          if (i == 0 && rep == 0) r.run_exclusive([&](int k) { nested_k = k; });
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          --parts_active;
          ++done;
        });
    });
  for (int t = 0; t < 2; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep)
        r.run_exclusive([&](int k) {
          EXPECT_EQ(k, 3);
          ++exclusive_active;
          if (parts_active.load() > 0) ++overlaps;
          std::this_thread::sleep_for(std::chrono::microseconds(100));
          --exclusive_active;
          ++done;
        });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(done.load(), 3 * 20 * 3 + 2 * 20);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(nested_k.load(), 1);
  // An exception comes back to the caller, and the slots are free again after it.
  EXPECT_THROW(r.run_exclusive([](int) { throw std::runtime_error("boom"); }), std::runtime_error);
  int k_after = 0;
  r.run_exclusive([&](int k) { k_after = k; });
  EXPECT_EQ(k_after, 3);
  Runtime one(with_threads(1));
  one.run_exclusive([&](int k) { k_after = k; });
  EXPECT_EQ(k_after, 1);
}

TEST(Runtime, RunExclusiveWithoutWaitingTakesTheSlotsOnlyWhenIdle) {
  Runtime r(with_threads(2));
  int k_idle = 0;
  r.run_exclusive([&](int k) { k_idle = k; }, /*wait=*/false);
  EXPECT_EQ(k_idle, 2);
  // A part is running on the pool (a task a worker started): no waiting, k = 1, at once.
  std::promise<void> started, release;
  std::shared_future<void> go = release.get_future().share();
  std::thread holder([&] {
    r.parallel_for(2, [&](int64_t i) {
      if (i == 0) {
        started.set_value();
        go.wait();
      }
    });
  });
  started.get_future().wait();
  int k_busy = 0;
  r.run_exclusive([&](int k) { k_busy = k; }, /*wait=*/false);
  EXPECT_EQ(k_busy, 1);
  release.set_value();
  holder.join();
}

TEST(Runtime, TaskWaitRunsItOnTheCallerWhenNoWorkerIsFree) {
  Runtime r(with_threads(2));  // one worker
  detail::ThreadPool& pool = detail::thread_pool(r);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  auto blocker = pool.submit([&] {
    started.set_value();
    released.wait();  // holds the only worker
  });
  started.get_future().wait();
  std::thread::id ran_on;
  auto task = pool.submit([&] { ran_on = std::this_thread::get_id(); });
  pool.wait(task);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  release.set_value();
  pool.wait(blocker);
  // A failing task rethrows from wait, once the task has ended.
  auto failing = pool.submit([] { throw std::runtime_error("task failed"); });
  EXPECT_THROW(pool.wait(failing), std::runtime_error);
  // With no workers a task runs when waited for.
  Runtime solo(with_threads(1));
  bool ran = false;
  auto t = detail::thread_pool(solo).submit([&] { ran = true; });
  EXPECT_FALSE(ran);
  detail::thread_pool(solo).wait(t);
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace zsclip
