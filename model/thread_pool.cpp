// ThreadPool: persistent workers woken by a generation counter.
//
// The engine dispatches ~120 regions per generated token, each 50-500 us long, so the cost of
// waking a worker matters: a futex wake of a sleeping vCPU costs tens of microseconds in a VM.
// Workers therefore spin (pause, then yield) on the generation counter for a short budget
// after each region and only then sleep on the condition variable, so a process that stops
// dispatching burns no CPU after kSpinBudget. They skip the spin when the machine has more
// runnable threads than cores (SpinPolicy), where spinning costs more than it saves.
//
// The header keeps plain members (it is the engine's contract); every access that can race
// goes through std::atomic_ref, the rest is ordered by the mutex.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "strata/base/status.h"
#include "strata/model/kernels.h"

namespace strata::model {
namespace {

// Long enough to cover the gaps between an engine's matmuls (norms, attention, sampling on the
// calling thread), short enough that an idle pool goes quiet at once for a person watching top.
constexpr auto kSpinBudget = std::chrono::microseconds(2000);
// Pause instructions between two reads of the clock (and yields of the CPU).
constexpr int kSpinsPerClockRead = 64;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spinning only pays when every thread of the pool has a core: with more threads than cores
// (or cores busy with other processes) a spinning thread holds the CPU a thread with work
// needs. So spin only when the pool fits the machine and the thread is not being preempted
// (SpinPolicy), and yield between rounds of pauses, which costs ~0.2 us when nothing else
// wants the core.
bool pool_fits_machine(int n_threads) {
  static const unsigned n_cores = std::thread::hardware_concurrency();
  return n_cores == 0 || static_cast<unsigned>(n_threads) <= n_cores;
}

// Whether one thread should spin before it sleeps. Spinning saves a futex wake per region on
// an idle machine, but when runnable threads outnumber cores it hurts: spinning threads use
// up the process's fair share of CPU, so the threads with work get scheduled later. Measured
// on the 2-core dev VM at load ~8 (all matmuls of a 1.1B Q4_0 decode step, 2 threads,
// medians): 50-57 ms never spinning, 74-171 ms always spinning, 70-95 ms deciding from the
// threads' own preemption counts, 50-51 ms with this policy. The signal is the machine's
// runnable thread count from /proc/loadavg, read every kProbeEvery waits (~5 us each); where
// it cannot be read, threads spin.
class SpinPolicy {
 public:
  bool should_spin() {
    if (waits_++ % kProbeEvery == 0) probe();
    return spin_;
  }

 private:
  static constexpr int64_t kProbeEvery = 128;

  void probe() {
    static const long n_cores = static_cast<long>(std::thread::hardware_concurrency());
    const int fd = ::open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[128];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    // "0.50 0.40 0.30 3/412 12345": the fourth field is runnable/total scheduling entities.
    const char* slash = std::strchr(buf, '/');
    if (slash == nullptr) return;
    const char* start = slash;
    while (start > buf && start[-1] != ' ') --start;
    const long runnable = std::strtol(start, nullptr, 10);
    spin_ = n_cores <= 0 || runnable <= n_cores;
  }

  int64_t waits_ = 0;
  bool spin_ = true;
};

// Spins until pred() holds or the budget runs out; returns pred()'s last value.
template <typename Pred>
bool spin_until(Pred pred, bool spin) {
  if (!spin) return pred();
  const auto deadline = std::chrono::steady_clock::now() + kSpinBudget;
  for (;;) {
    for (int i = 0; i < kSpinsPerClockRead; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::yield();
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads) {
  STRATA_CHECK_MSG(n_threads >= 1,
                   "ThreadPool needs at least one thread, got " + std::to_string(n_threads));
  workers_.reserve(static_cast<size_t>(n_threads - 1));
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::atomic_ref<bool>(stop_).store(true, std::memory_order_relaxed);
    std::atomic_ref<uint64_t>(generation_).fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run(const std::function<void(int thread_index)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  std::atomic_ref<int> pending(pending_);
  // No worker reads job_ or pending_ before it sees the new generation (release below), and
  // every worker of the previous region has finished with them (pending_ reached 0).
  job_ = &fn;
  pending.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // The lock orders the increment with a worker that is between checking the generation
    // and sleeping on cv_work_, so it cannot miss the wake-up.
    std::lock_guard<std::mutex> lock(mu_);
    std::atomic_ref<uint64_t>(generation_).fetch_add(1, std::memory_order_release);
  }
  cv_work_.notify_all();

  fn(0);

  const auto done = [&] { return pending.load(std::memory_order_acquire) == 0; };
  thread_local SpinPolicy policy;  // run() is called from one thread at a time
  if (spin_until(done, pool_fits_machine(n_threads_) && policy.should_spin())) return;
  std::unique_lock<std::mutex> lock(mu_);
  cv_done_.wait(lock, done);
}

void ThreadPool::worker_loop(int index) {
  std::atomic_ref<uint64_t> generation(generation_);
  const bool fits = pool_fits_machine(n_threads_);
  SpinPolicy policy;
  uint64_t seen = 0;
  for (;;) {
    const auto changed = [&] { return generation.load(std::memory_order_acquire) != seen; };
    if (!spin_until(changed, fits && policy.should_spin())) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, changed);
    }
    seen = generation.load(std::memory_order_acquire);
    if (std::atomic_ref<bool>(stop_).load(std::memory_order_relaxed)) return;

    (*job_)(index);

    if (std::atomic_ref<int>(pending_).fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Taking the lock orders this with run() checking pending_ before it sleeps.
      { std::lock_guard<std::mutex> lock(mu_); }
      cv_done_.notify_one();
    }
  }
}

}  // namespace strata::model
