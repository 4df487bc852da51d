// A plain STREAM-style triad (a[i] = b[i] + s * c[i]), independent of strata's code, to check
// the profiler's memory bandwidth figures against. Counts 24 bytes per element as STREAM does.
//
// Built as bench_stream_triad (bench/CMakeLists.txt), or on its own:
//   g++ -std=c++20 -O2 -pthread bench/stream_triad.cpp -o stream_triad
//   ./stream_triad [MiB per array = 128] [threads = all] [iterations = 20] [pin]
//
// Prints the best (STREAM's convention), the p90 and the median rate over the iterations.
// With `pin` (and more than one thread) thread t runs only on the t-th CPU of the affinity
// mask, as OMP_PROC_BIND does for STREAM and as strata's profiler pins its bandwidth threads.
// As STREAM does, one clock (thread 0's) spans the whole parallel sweep, read before the
// threads are released and after the last one is done, so a preempted thread can only make
// an iteration look slower, never faster. bench/profile_stability.py compares it with
// `strata profile`.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

// Out of line with its own parameters, as STREAM's loop over file-scope arrays compiles: in a
// lambda capturing by reference the compiler must assume a store to a[i] may change `scalar`
// or the pointers, and emits a scalar loop that reloads them.
[[gnu::noinline]] static void triad(double* a, const double* b, const double* c, double scalar,
                                    size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; ++i) a[i] = b[i] + scalar * c[i];
}

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 128;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : hw;
  const int iterations = argc > 3 ? std::atoi(argv[3]) : 20;
  if (mib < 1 || threads < 1 || iterations < 1) {
    std::fprintf(stderr, "usage: %s [MiB per array >= 1] [threads >= 1] [iterations >= 1] [pin]\n",
                 argv[0]);
    return 2;
  }
  const bool pin = argc > 4 && std::string(argv[4]) == "pin" && threads > 1;
  std::vector<int> cpus;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &mask)) cpus.push_back(c);
    }
  }
  const size_t n = mib * 1024 * 1024 / sizeof(double);
  double* a = new double[n];
  double* b = new double[n];
  double* c = new double[n];
  const double scalar = 3.0;

  std::vector<double> seconds(static_cast<size_t>(iterations));
  std::barrier sync(static_cast<std::ptrdiff_t>(threads));
  auto worker = [&](unsigned t) {
    if (pin && !cpus.empty()) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[t % cpus.size()], &one);
      pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    }
    const size_t lo = n * t / threads;
    const size_t hi = n * (t + 1) / threads;
    for (size_t i = lo; i < hi; ++i) {
      a[i] = 1.0;
      b[i] = 2.0;
      c[i] = 0.0;
    }
    for (int it = -1; it < iterations; ++it) {  // iteration -1 warms up
      const auto t0 = std::chrono::steady_clock::now();
      sync.arrive_and_wait();
      triad(a, b, c, scalar, lo, hi);
      sync.arrive_and_wait();
      if (t == 0 && it >= 0) {
        seconds[static_cast<size_t>(it)] =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();

  std::sort(seconds.begin(), seconds.end());
  const double bytes = 24.0 * static_cast<double>(n);
  std::printf("triad  %zu MiB arrays  %u threads%s  %d iterations\n", mib, threads,
              pin ? " (pinned)" : "", iterations);
  // p90 of the rates is the rate of the iteration at the 10th percentile of the times.
  const size_t p90 = static_cast<size_t>(0.1 * static_cast<double>(seconds.size() - 1) + 0.5);
  std::printf("best   %.2f GB/s\np90    %.2f GB/s\nmedian %.2f GB/s\n",
              bytes / seconds.front() / 1e9, bytes / seconds[p90] / 1e9,
              bytes / seconds[seconds.size() / 2] / 1e9);
  std::printf("check  a[n/2] = %.1f\n", a[n / 2]);
  delete[] a;
  delete[] b;
  delete[] c;
  return 0;
}
