// ThreadPool: every index runs exactly once per run(), run after run, for 1..8 threads, and
// the pool shuts down cleanly whether its workers are spinning or asleep.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "strata/model/kernels.h"

namespace strata::model {
namespace {

TEST(ThreadPool, EveryIndexRunsExactlyOncePerRun) {
  for (int n = 1; n <= 8; ++n) {
    ThreadPool pool(n);
    ASSERT_EQ(pool.size(), n);
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    constexpr int kRuns = 2000;
    for (int run = 0; run < kRuns; ++run) {
      pool.run([&](int i) {
        ASSERT_GE(i, 0);
        ASSERT_LT(i, n);
        hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      });
      // run() returns only after every index finished: the counts are exact right now.
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), run + 1) << "n=" << n << " index " << i;
      }
    }
  }
}

TEST(ThreadPool, CallerIsWorkerZero) {
  ThreadPool pool(4);
  std::thread::id seen;
  pool.run([&](int i) {
    if (i == 0) seen = std::this_thread::get_id();
  });
  EXPECT_EQ(seen, std::this_thread::get_id());
}

TEST(ThreadPool, WritesOfEveryWorkerAreVisibleAfterRun) {
  ThreadPool pool(6);
  std::vector<int64_t> out(6 * 1024);
  for (int run = 0; run < 200; ++run) {
    pool.run([&](int i) {
      for (int j = 0; j < 1024; ++j) out[static_cast<size_t>(i * 1024 + j)] = run * 7 + i + j;
    });
    for (int i = 0; i < 6; ++i) {
      for (int j = 0; j < 1024; j += 97) {
        ASSERT_EQ(out[static_cast<size_t>(i * 1024 + j)], run * 7 + i + j);
      }
    }
  }
}

TEST(ThreadPool, WakesWorkersThatFellAsleep) {
  // Past the spin budget the workers sleep on the condition variable; run() must wake them.
  ThreadPool pool(3);
  std::atomic<int> total{0};
  for (int run = 0; run < 3; ++run) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    pool.run([&](int) { total.fetch_add(1); });
    EXPECT_EQ(total.load(), 3 * (run + 1));
  }
}

TEST(ThreadPool, DestroysWhileWorkersSpinOrSleep) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(4);
    std::atomic<int> total{0};
    pool.run([&](int) { total.fetch_add(1); });
    EXPECT_EQ(total.load(), 4);
  }  // destroyed right after a run: workers are spinning
  ThreadPool idle(4);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // workers asleep
}

}  // namespace
}  // namespace strata::model
