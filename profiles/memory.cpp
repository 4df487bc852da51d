// Memory: capacity as this process may use it (the smaller of /proc/meminfo and any cgroup
// limit on the way to the root), and read / copy / triad bandwidth with our own loops over
// arrays at least 4x the last-level cache, so that no rep is served from cache.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

#include "strata/base/aligned_buffer.h"
#include "strata/base/io.h"
#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

// cgroup limits at or above this mean "max" (v1 writes 2^63 rounded down to a page).
constexpr int64_t kUnlimited = int64_t{1} << 60;

std::optional<int64_t> meminfo_kib(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size() + 1, key + ":") == 0) {
      return std::atoll(line.c_str() + key.size() + 1);
    }
  }
  return std::nullopt;
}

struct CgroupLimit {
  int64_t limit_bytes = 0;
  int64_t usage_bytes = 0;
  std::string limit_path;
};

// Walks from the process's cgroup up to the root and keeps the tightest memory limit.
std::optional<CgroupLimit> cgroup_limit(SysTree& sys) {
  const auto self = sys.read("/proc/self/cgroup");
  if (!self.ok()) return std::nullopt;
  std::optional<CgroupLimit> best;
  std::istringstream in(*self);
  std::string line;
  while (std::getline(in, line)) {
    // "hierarchy-id:controllers:path"; v2 has id 0 and no controllers.
    const size_t a = line.find(':');
    const size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    std::string base;
    std::string limit_file;
    std::string usage_file;
    if (controllers.empty() && line.compare(0, 2, "0:") == 0) {
      base = "/sys/fs/cgroup";
      limit_file = "memory.max";
      usage_file = "memory.current";
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      base = "/sys/fs/cgroup/memory";
      limit_file = "memory.limit_in_bytes";
      usage_file = "memory.usage_in_bytes";
    } else {
      continue;
    }
    // Inside a container the recorded path may not exist under our mount: then the mount
    // root is the process's own cgroup.
    if (!sys.exists(base + path)) path = "/";
    while (true) {
      const std::string dir = base + (path == "/" ? "" : path);
      const auto text = sys.read(dir + "/" + limit_file);
      if (text.ok() && *text != "max") {
        const auto limit = sys.read_int(dir + "/" + limit_file);
        if (limit.ok() && *limit < kUnlimited && (!best || *limit < best->limit_bytes)) {
          const auto usage = sys.read_int(dir + "/" + usage_file);
          best = CgroupLimit{*limit, usage.ok() ? *usage : 0, dir + "/" + limit_file};
        }
      }
      if (path == "/" || path.empty()) break;
      const size_t slash = path.find_last_of('/');
      path = slash == 0 ? "/" : path.substr(0, slash);
    }
  }
  return best;
}

// A fixed team of threads that run one function together; the caller is member 0. With more
// than one member, member i is pinned to the i-th CPU of the affinity mask (the caller's own
// mask is restored when the team ends), so that no member migrates mid-measurement and two
// never share a CPU while there are enough: as STREAM is run with OMP_PROC_BIND.
class Team {
 public:
  explicit Team(int n) : n_(n), start_(n), done_(n) {
    CPU_ZERO(&caller_mask_);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof caller_mask_, &caller_mask_) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &caller_mask_)) cpus.push_back(c);
      }
    }
    pinned_ = n > 1 && !cpus.empty();
    const auto pin = [&](pthread_t thread, int member) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[static_cast<size_t>(member) % cpus.size()], &one);
      pthread_setaffinity_np(thread, sizeof one, &one);
    };
    if (pinned_) pin(pthread_self(), 0);
    for (int i = 1; i < n; ++i) {
      threads_.emplace_back([this, i] { loop(i); });
      if (pinned_) pin(threads_.back().native_handle(), i);
    }
  }
  ~Team() {
    stop_ = true;
    start_.arrive_and_wait();
    for (auto& t : threads_) t.join();
    if (pinned_) sched_setaffinity(0, sizeof caller_mask_, &caller_mask_);
  }
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  // Runs fn(member) on every member and returns the seconds from the first member's start to
  // the last member's end, each member reading the clock itself: timed by the caller alone, a
  // caller preempted between the start barrier and its clock read would start its clock late
  // while the others already work, and the repetition would read faster than the memory is.
  double run(const std::function<void(int)>& fn) {
    job_ = &fn;
    start_.arrive_and_wait();
    timed(0);
    done_.arrive_and_wait();
    return *std::max_element(end_s_.begin(), end_s_.end()) -
           *std::min_element(start_s_.begin(), start_s_.end());
  }

 private:
  void loop(int i) {
    while (true) {
      start_.arrive_and_wait();
      if (stop_) return;
      timed(i);
      done_.arrive_and_wait();
    }
  }

  void timed(int i) {
    start_s_[static_cast<size_t>(i)] = now_s();
    (*job_)(i);
    end_s_[static_cast<size_t>(i)] = now_s();
  }

  int n_;
  std::vector<double> start_s_ = std::vector<double>(static_cast<size_t>(n_));
  std::vector<double> end_s_ = std::vector<double>(static_cast<size_t>(n_));
  cpu_set_t caller_mask_;
  bool pinned_ = false;
  std::barrier<> start_;
  std::barrier<> done_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<bool> stop_{false};
};

struct Slice {
  size_t begin;
  size_t end;
};

Slice slice_of(size_t n, int parts, int index) {
  const size_t per = (n + static_cast<size_t>(parts) - 1) / static_cast<size_t>(parts);
  const size_t b = std::min(n, per * static_cast<size_t>(index));
  return {b, std::min(n, b + per)};
}

// Kept out of line so that the compiler cannot fold repeated reps into one.
[[gnu::noinline]] double read_kernel(const double* a, size_t begin, size_t end) {
  // Eight independent sums so the loop is limited by loads, not by the add latency chain.
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = begin;
  for (; i + 8 <= end; i += 8) {
    for (int k = 0; k < 8; ++k) s[k] += a[i + static_cast<size_t>(k)];
  }
  for (; i < end; ++i) s[0] += a[i];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

[[gnu::noinline]] void copy_kernel(double* c, const double* a, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) c[i] = a[i];
}

[[gnu::noinline]] void triad_kernel(double* a, const double* b, const double* c, double s,
                                    size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) a[i] = b[i] + s * c[i];
}

}  // namespace

void probe_memory_capacity(SysTree& sys, Memory& out) {
  const auto meminfo = sys.read("/proc/meminfo");
  if (!meminfo.ok()) {
    const Reason r = meminfo.status().code() == StatusCode::kPermissionDenied
                         ? Reason::kPermissionDenied
                         : Reason::kNotPresent;
    out.total_bytes = unavailable_figure("bytes", r, "/proc/meminfo");
    out.available_bytes = unavailable_figure("bytes", r, "/proc/meminfo");
    return;
  }
  const auto total_kib = meminfo_kib(*meminfo, "MemTotal");
  const auto avail_kib = meminfo_kib(*meminfo, "MemAvailable");
  std::optional<double> total;
  std::optional<double> avail;
  std::string total_src = "/proc/meminfo MemTotal";
  std::string avail_src = "/proc/meminfo MemAvailable";
  if (total_kib) total = static_cast<double>(*total_kib) * 1024.0;
  if (avail_kib) avail = static_cast<double>(*avail_kib) * 1024.0;
  const auto cg = cgroup_limit(sys);
  if (cg) {
    const double limit = static_cast<double>(cg->limit_bytes);
    const double room = std::max(0.0, limit - static_cast<double>(cg->usage_bytes));
    if (!total || limit < *total) {
      total = limit;
      total_src = cg->limit_path + " (cgroup limit below MemTotal)";
      out.cgroup_limit_source = cg->limit_path;
    }
    if (!avail || room < *avail) {
      avail = room;
      avail_src = cg->limit_path + " minus usage (cgroup room below MemAvailable)";
      out.cgroup_limit_source = cg->limit_path;
    }
  }
  out.total_bytes = total ? read_figure(*total, "bytes", total_src)
                          : unavailable_figure("bytes", Reason::kNotPresent, total_src);
  out.available_bytes = avail ? read_figure(*avail, "bytes", avail_src)
                              : unavailable_figure("bytes", Reason::kNotPresent, avail_src);
}

void probe_memory_bandwidth(const BandwidthOptions& opt, Memory& out,
                            const std::function<void(const std::string&)>& progress) {
  STRATA_CHECK(opt.threads_all >= 1 && opt.reps >= 1 && opt.array_bytes >= 1 << 20 &&
               opt.regions >= 1);
  const auto n_regions = static_cast<size_t>(opt.regions);
  const size_t region = static_cast<size_t>(opt.array_bytes) / sizeof(double) / n_regions;
  const size_t n = region * n_regions;
  out.array_bytes = static_cast<int64_t>(n * sizeof(double));
  AlignedBuffer own;
  uint8_t* base = opt.arrays;
  if (base == nullptr) {
    // Default pages, as the profiler's cold region (fault_in_cold_region) and STREAM's arrays.
    Result<AlignedBuffer> buf =
        AlignedBuffer::allocate(3 * static_cast<int64_t>(n * sizeof(double)), /*huge_pages=*/false);
    if (!buf.ok()) {
      const std::string why = "memory bandwidth arrays: " + buf.status().message();
      for (ThreadFigures* f : {&out.read_gb_per_s, &out.copy_gb_per_s, &out.triad_gb_per_s}) {
        f->threads_1 = unavailable_figure("GB/s", Reason::kUnsupported, why);
        f->threads_all = unavailable_figure("GB/s", Reason::kUnsupported, why);
      }
      return;
    }
    own = std::move(buf).value();
    base = own.data();
  }
  // The three arrays lie back to back (opt.arrays holds 3 x array_bytes).
  auto* const a_ptr = reinterpret_cast<double*>(base);
  auto* const b_ptr = a_ptr + n;
  auto* const c_ptr = b_ptr + n;
  const std::string arrays = format_bytes(static_cast<double>(out.array_bytes)) +
                             " arrays, each rep sweeping one of " + std::to_string(n_regions) +
                             " regions of " +
                             format_bytes(static_cast<double>(region * sizeof(double)));

  for (const int threads : {1, opt.threads_all}) {
    Team team(threads);
    // Member t's share of region r; every repetition splits a region the same way.
    const auto part = [&](size_t r, int t) {
      const Slice s = slice_of(region, threads, t);
      return Slice{r * region + s.begin, r * region + s.end};
    };
    // First touch by the member that will use each slice (NUMA-local pages), where the probe
    // allocated the arrays; a lent region was faulted in and filled with kColdFill already.
    if (opt.arrays == nullptr)
      team.run([&](int t) {
        for (size_t r = 0; r < n_regions; ++r) {
          const Slice s = part(r, t);
          for (size_t i = s.begin; i < s.end; ++i) {
            a_ptr[i] = 1.0;
            b_ptr[i] = 2.0;
            c_ptr[i] = 0.5;
          }
        }
      });
    std::atomic<double> sink{0};
    struct Kernel {
      const char* name;
      double bytes_per_elem;
      ThreadFigures* figures;
      std::function<void(const Slice&)> body;
    };
    const Kernel kernels[] = {
        {"read", 8, &out.read_gb_per_s,
         [&](const Slice& s) { sink = sink + read_kernel(a_ptr, s.begin, s.end); }},
        {"copy", 16, &out.copy_gb_per_s,
         [&](const Slice& s) { copy_kernel(c_ptr, a_ptr, s.begin, s.end); }},
        {"triad", 24, &out.triad_gb_per_s,
         [&](const Slice& s) { triad_kernel(a_ptr, b_ptr, c_ptr, 0.5, s.begin, s.end); }},
    };
    if (progress) {
      progress(std::string("memory read / copy / triad bandwidth, ") + std::to_string(threads) +
               (threads == 1 ? " thread" : " threads"));
    }
    // Short repetitions over one region each: more of them fit between other processes'
    // time slices, and the p90 needs many. Kernel k in round r sweeps region r + k * stride,
    // so a region is touched again only after several others (far more bytes than any cache
    // holds), and one kernel never reads what the previous one just wrote. The kernels take
    // turns rep by rep, so that a burst of load from another process lands on all three alike.
    const size_t stride = std::max<size_t>(1, n_regions / std::size(kernels));
    std::vector<double> samples[std::size(kernels)];
    for (int r = -1; r < opt.reps; ++r) {  // round -1 warms up: TLB and page tables
      for (size_t ki = 0; ki < std::size(kernels); ++ki) {
        const Kernel& k = kernels[ki];
        const size_t reg = (static_cast<size_t>(r + 1) + ki * stride) % n_regions;
        const double seconds = team.run([&](int t) { k.body(part(reg, t)); });
        if (r >= 0) {
          samples[ki].push_back(k.bytes_per_elem * static_cast<double>(region) / seconds / 1e9);
        }
      }
    }
    for (size_t ki = 0; ki < std::size(kernels); ++ki) {
      const Kernel& k = kernels[ki];
      const std::string src = std::string("strata ") + k.name + " loop, " + arrays + ", " +
                              std::to_string(threads) + " thread" + (threads == 1 ? "" : "s") +
                              " (pinned), counting " +
                              std::to_string(static_cast<int>(k.bytes_per_elem)) +
                              " B per element as STREAM does; p90 of " + std::to_string(opt.reps) +
                              " reps taken in turn with the other loops";
      Figure f = measured_rate_figure(samples[ki], "GB/s", src);
      (threads == 1 ? k.figures->threads_1 : k.figures->threads_all) = f;
    }
    if (threads == opt.threads_all && threads == 1) {
      out.read_gb_per_s.threads_all = out.read_gb_per_s.threads_1;
      out.copy_gb_per_s.threads_all = out.copy_gb_per_s.threads_1;
      out.triad_gb_per_s.threads_all = out.triad_gb_per_s.threads_1;
      break;
    }
  }
}

Result<ColdRegion> fault_in_cold_region(int64_t bytes, int threads, double max_seconds,
                                        int64_t min_bytes) {
  STRATA_CHECK(threads >= 1 && bytes >= min_bytes && min_bytes >= 0);
  ColdRegion region;
  // Default (4 KiB) pages, as the engine's weights have in the model file's mapping and as
  // STREAM's arrays have: in huge pages the q4_0 GEMV probe ran 11% faster on one thread (7% on
  // two) than on 4 KiB pages, and `strata generate` decoded at the 4 KiB rate.
  STRATA_ASSIGN_OR_RETURN(region.buffer, AlignedBuffer::allocate(bytes, /*huge_pages=*/false));
  constexpr int64_t kStep = int64_t{2} << 20;  // filled 2 MiB at a time (the buffer's size is a
                                               // multiple of 4096)
  const int64_t n_steps = (region.buffer.size() + kStep - 1) / kStep;
  const int64_t min_steps = (min_bytes + kStep - 1) / kStep;
  std::atomic<int64_t> next{0};
  const double t0 = now_s();
  // Steps are taken in address order and each taken one is finished, so when every thread has
  // stopped the steps below `next` are all touched.
  const auto touch = [&] {
    for (int64_t k = next.fetch_add(1); k < n_steps; k = next.fetch_add(1)) {
      const int64_t end = std::min(region.buffer.size(), (k + 1) * kStep);
      auto* const first = reinterpret_cast<double*>(region.buffer.data() + k * kStep);
      std::fill(first, first + (end - k * kStep) / 8, kColdFill);
      if (max_seconds > 0 && k + 1 >= min_steps && now_s() - t0 > max_seconds) return;
    }
  };
  {
    std::vector<std::jthread> team;
    for (int t = 1; t < threads; ++t) team.emplace_back(touch);
    touch();
  }
  region.touched_bytes = std::min(region.buffer.size(), std::min(next.load(), n_steps) * kStep);
  region.fault_s = now_s() - t0;
  return region;
}

int64_t bandwidth_array_bytes(const Device& device, const Memory& capacity, bool quick) {
  double llc = 0;
  for (const auto& [key, fig] : device.caches) {
    if (fig.available()) llc = std::max(llc, *fig.value);
  }
  // 16x the last-level cache, and at least 512 MiB: a model's weights are hundreds of MB, and
  // a cache can hold more than its size suggests. On the project's 2-core EPYC VM (32 MiB L3
  // reported) one thread read a 128 MiB array at 16.8 GB/s (p90), 512 MiB at 14.3 and 1 GiB
  // at 13.3: part of a 4x-L3 array still came from a cache (a VM's vCPUs may sit on several
  // L3s of the host, and replacement is not strict LRU). --quick settles for 4x and 256 MiB.
  const double times_llc = quick ? 4 : 16;
  const int64_t floor_bytes = quick ? int64_t{256} << 20 : int64_t{512} << 20;
  int64_t bytes =
      std::max<int64_t>(llc > 0 ? static_cast<int64_t>(times_llc * llc) : 0, floor_bytes);
  // Three arrays must leave most of the available memory alone.
  if (capacity.available_bytes.available()) {
    const auto cap = static_cast<int64_t>(*capacity.available_bytes.value / 8);
    bytes = std::min(bytes, std::max<int64_t>(cap, int64_t{8} << 20));
  }
  return bytes;
}

}  // namespace strata::profiles
