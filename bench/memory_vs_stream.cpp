// bench_memory_vs_stream: the profiler's memory bandwidth probe and a plain STREAM triad
// (bench_stream_triad, a separate program that shares no code with strata), side by side.
//
// On a shared VM the memory bandwidth a process gets swings by a third within minutes, so a
// profile taken a minute before a STREAM run compares two different machines. Here the two
// alternate round by round (the order flips every round) with the same array size and thread
// count, each round's ratio is printed, and the verdict is the median ratio.
//
// The profiler's figure is what `strata profile` records (probe_memory_bandwidth: the p90 of
// short repetitions over one region each); STREAM's is its best iteration (STREAM's own
// convention), with its p90 beside it.
//
// Usage: bench_memory_vs_stream [--rounds N] [--array-mib M] [--reps R] [--threads T]
//                               [--stream PATH]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "strata/profiles/probes.h"

namespace pr = strata::profiles;

namespace {

double median(const std::vector<double>& v) { return pr::summarize(v).median; }

struct StreamRun {
  double best = 0;
  double p90 = 0;
};

bool run_stream(const std::string& path, int mib, int threads, StreamRun& out) {
  const std::string cmd =
      path + " " + std::to_string(mib) + " " + std::to_string(threads) + " 20 pin";
  FILE* f = popen(cmd.c_str(), "r");
  if (f == nullptr) return false;
  char line[256];
  bool got_best = false;
  bool got_p90 = false;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    got_best |= std::sscanf(line, "best %lf", &out.best) == 1;
    got_p90 |= std::sscanf(line, "p90 %lf", &out.p90) == 1;
  }
  return pclose(f) == 0 && got_best && got_p90;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  int mib = 512;
  int reps = 41;  // the full profile's count
  int threads = pr::usable_cpus();
  std::string stream =
      (std::filesystem::path(argv[0]).parent_path() / "bench_stream_triad").string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--rounds" && has) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--array-mib" && has) {
      mib = std::atoi(argv[++i]);
    } else if (a == "--reps" && has) {
      reps = std::atoi(argv[++i]);
    } else if (a == "--threads" && has) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--stream" && has) {
      stream = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--rounds N] [--array-mib M] [--reps R] [--threads T] "
                   "[--stream PATH/bench_stream_triad]\n",
                   argv[0]);
      return 2;
    }
  }
  if (rounds < 1 || mib < 8 || reps < 1 || threads < 1) {
    std::fprintf(stderr, "rounds, reps and threads must be >= 1 and --array-mib >= 8\n");
    return 2;
  }
  if (access(stream.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "%s: not found or not executable (build bench_stream_triad)\n",
                 stream.c_str());
    return 1;
  }

  std::printf(
      "profiler triad (p90 of %d reps) vs STREAM triad (best / p90 of 20), %d MiB arrays,"
      " %d threads, %d alternated rounds\n",
      reps, mib, threads, rounds);
  std::printf("round  profiler GB/s  STREAM best  STREAM p90  profiler/best  profiler/p90\n");
  std::vector<double> prof_v, best_v, p90_v, r_best, r_p90;
  for (int r = 0; r < rounds; ++r) {
    double prof = 0;
    StreamRun st;
    for (int k = 0; k < 2; ++k) {
      if ((k == 0) == (r % 2 == 0)) {
        pr::BandwidthOptions bo;
        bo.array_bytes = int64_t{mib} << 20;
        bo.reps = reps;
        bo.threads_all = threads;
        pr::Memory m;
        pr::probe_memory_bandwidth(bo, m, {});
        const pr::Figure& f =
            threads == 1 ? m.triad_gb_per_s.threads_1 : m.triad_gb_per_s.threads_all;
        prof = f.value.value_or(0);
      } else if (!run_stream(stream, mib, threads, st)) {
        std::fprintf(stderr, "%s failed\n", stream.c_str());
        return 1;
      }
    }
    prof_v.push_back(prof);
    best_v.push_back(st.best);
    p90_v.push_back(st.p90);
    r_best.push_back(prof / st.best);
    r_p90.push_back(prof / st.p90);
    std::printf("%5d  %13.2f  %11.2f  %10.2f  %13.3f  %12.3f\n", r + 1, prof, st.best, st.p90,
                prof / st.best, prof / st.p90);
    std::fflush(stdout);
  }
  std::printf("median %13.2f  %11.2f  %10.2f  %13.3f  %12.3f\n", median(prof_v), median(best_v),
              median(p90_v), median(r_best), median(r_p90));
  return 0;
}
