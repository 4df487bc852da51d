// The profiler's probes, one per part of the profile. Each fills its section of a Profile;
// what it cannot obtain it marks unavailable with the reason. They are public so that tests
// can run each against a recorded sysfs tree; `run_profile` (profiler.h) runs them all.
//
// Thread-safety: a probe runs on the calling thread (and on threads it starts and joins);
// probes must not run concurrently with each other on the same SysTree unless noted.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "strata/base/aligned_buffer.h"
#include "strata/base/status.h"
#include "strata/profiles/profile.h"
#include "strata/profiles/sysfs.h"

namespace strata::profiles {

// Receives a one-line description of the probe that starts now ("memory triad, 2 threads").
using Progress = std::function<void(const std::string&)>;

// ---- identity (identity.cpp) ----

// CPU identity, topology, caches, ISA flags, core types, board model and virtualization.
// libcpuid is used on the live root; /proc/cpuinfo and /sys/devices/system/cpu otherwise, and
// `source` fields say which. Never fails.
Device probe_device(SysTree& sys);

// The CPUs this process may run on (its affinity mask; the online count where that is
// unreadable): the "all threads" of every probe.
int usable_cpus();

// ---- memory (memory.cpp) ----

// total_bytes and available_bytes: /proc/meminfo capped by the tightest cgroup v2 memory.max
// or v1 memory.limit_in_bytes between the process's cgroup and the root. Never fails.
void probe_memory_capacity(SysTree& sys, Memory& out);

struct BandwidthOptions {
  int64_t array_bytes = 256 << 20;  // each of the three arrays
  int regions = 8;                  // each repetition sweeps one region of array_bytes / regions
  int reps = 7;                     // timed repetitions of each loop after one warm-up round
  int threads_all = 1;
  // Null: the probe allocates its arrays. Else 3 x array_bytes at this address, the caller's,
  // already faulted in (the profiler's cold region).
  uint8_t* arrays = nullptr;
};

// read / copy / triad GB/s (10^9 B/s; read counts 8 B, copy 16 B, triad 24 B per element,
// as STREAM does), with 1 thread and with opt.threads_all threads (pinned one per CPU). The
// three loops take turns rep by rep; each figure's value is the p90 of its reps
// (measured_rate_figure). Allocates 3 x array_bytes.
void probe_memory_bandwidth(const BandwidthOptions& opt, Memory& out, const Progress& progress);

// Memory the cold probes share: the GEMV weight pool and then the three bandwidth arrays
// use the same pages, so that a host which backs fresh guest memory slowly (a VM's balloon
// hands freed pages back; touching them again ran at 0.4-0.8 GB/s on the project's VM, against
// 8 GB/s for pages already backed) pays for them once.
struct ColdRegion {
  AlignedBuffer buffer;
  int64_t touched_bytes = 0;  // the faulted-in prefix of buffer
  double fault_s = 0;         // seconds the fault-in took
};

// Allocates `bytes` (rounded up to 4096; default 4 KiB pages) and faults them in with `threads`
// threads, 2 MiB at a time in address order, filling them with the double kColdFill (so that
// the bandwidth arrays hold normal numbers and need no pass of their own), until all are
// touched or `max_seconds` have passed (<= 0: no limit); never stops below `min_bytes`.
// kResourceExhausted when the memory is refused.
inline constexpr double kColdFill = 1.0;
Result<ColdRegion> fault_in_cold_region(int64_t bytes, int threads, double max_seconds,
                                        int64_t min_bytes);

// The array size for probe_memory_bandwidth (and the compute probe's GEMV weight pool): 16x
// the largest cache in `device` and at least 512 MiB (`quick`: 4x and 256 MiB), no more than
// an eighth of the available memory.
int64_t bandwidth_array_bytes(const Device& device, const Memory& capacity, bool quick);

// ---- storage (storage.cpp) ----

struct StorageOptions {
  std::string path = ".";
  int64_t file_bytes = 256 << 20;
  std::vector<int64_t> chunks;     // bytes, multiples of 4096, ascending
  double seconds_per_size = 0.25;  // per chunk size and pattern
  int batches = 5;                 // samples behind each figure's statistics
  bool allow_direct = true;        // false exercises the buffered fallback (tests)
};

// 4 KiB, 8 KiB, ..., 4 MiB.
std::vector<int64_t> storage_chunk_sizes();

// Sequential and random read MB/s (10^6 B/s) by chunk size from a temporary file of
// opt.file_bytes in opt.path, with O_DIRECT; where the filesystem refuses O_DIRECT, buffered
// reads after posix_fadvise(DONTNEED), and `direct_io` false with the refusal in
// `cache_policy`. The file has no name at any time it could be left behind. Errors: kNotFound
// / kInvalidArgument for a bad path, kPermissionDenied / kIo / kResourceExhausted naming it.
Result<Storage> probe_storage(const StorageOptions& opt, const Progress& progress);

// ---- thermal (thermal.cpp) ----

// Temperatures (libsensors on the live root; hwmon temp*_input in a recorded tree), thermal
// zones with trip points, and cpufreq current / max of each CPU. Never fails.
void read_thermal_state(SysTree& sys, Thermal& out);

// Mean scaling_cur_freq over all CPUs in MHz, or nullopt when cpufreq is absent.
std::optional<double> mean_cur_mhz(SysTree& sys);

// Raspberry Pi get_throttled (sysfs, else vcgencmd on the live root) with its bits decoded,
// and Intel thermal_throttle counters; `before` and `after` both hold the value now.
std::vector<ThrottleCounter> read_throttle_counters(SysTree& sys);
// Re-reads the counters into `after` (and the decoded flags).
void update_throttle_counters(SysTree& sys, std::vector<ThrottleCounter>& counters);

// One window of the sustained-load probe: its end time since the start, its GFLOP/s, the
// GFLOP per CPU-second this process received in it (a busy machine lowers GFLOP/s but not
// this; a throttled CPU lowers both), and the mean CPU clock at its end.
struct SustainSample {
  double t_s = 0;
  double gflops = 0;
  std::optional<double> gflop_per_cpu_s;
  std::optional<double> mhz;
};

// Calls `work` (which returns the GFLOP it did) back to back for `seconds`, one sample per
// `window_s`; CPU time is the process's (CLOCK_PROCESS_CPUTIME_ID), wall time `clock`'s.
std::vector<SustainSample> run_sustained(double seconds, double window_s,
                                         const std::function<double()>& work, SysTree& sys,
                                         Clock& clock, const Progress& progress);

// Burst (median of the first tenth of windows, at least 2) vs sustained (median of the last
// quarter) GFLOP/s, clock drop, and time to throttle. Throttling is judged on GFLOP per
// CPU-second where the samples have it (else GFLOP/s), so that other processes taking the CPU
// do not read as throttling: the tail below 90% of the head, or the clock down by more than
// 5%, and then the first of three windows in a row below 90% of the head marks the time. No
// throttling gives time_to_throttle_s unavailable with reason not_present. Pure.
void analyze_sustained(const std::vector<SustainSample>& samples, const std::string& workload,
                       bool virtualized, Thermal& out);

}  // namespace strata::profiles
