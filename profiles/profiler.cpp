#include "strata/profiles/profiler.h"

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>

#include "strata/base/io.h"
#include "strata/profiles/compute.h"
#include "strata/profiles/power.h"
#include "strata/profiles/roofline.h"

namespace strata::profiles {
namespace {

constexpr double kQuickFaultS = 1.5;  // --quick's deadline for faulting in the cold region
constexpr int64_t kQuickMinArrayBytes = int64_t{256} << 20;
constexpr double kPowerHz = 20;  // >= 10 Hz: RAPL updates every ~1 ms, INA3221 every ~10 ms

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "device";
  return buf;
}

void fill_unavailable_storage(Storage& s, Reason r, const std::string& why) {
  for (const int64_t chunk : storage_chunk_sizes()) {
    s.seq_read_mb_per_s[std::to_string(chunk)] = unavailable_figure("MB/s", r, why);
    s.rand_read_mb_per_s[std::to_string(chunk)] = unavailable_figure("MB/s", r, why);
  }
}

Reason reason_of(const Status& s) {
  switch (s.code()) {
    case StatusCode::kPermissionDenied: return Reason::kPermissionDenied;
    case StatusCode::kNotFound: return Reason::kNotPresent;
    default: return Reason::kUnsupported;
  }
}

}  // namespace

int usable_cpus() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0) {
    return CPU_COUNT(&mask);
  }
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

Result<Profile> run_profile(const ProfileOptions& opt, const Progress& progress) {
  const double sustain_s = opt.sustain_s >= 0 ? opt.sustain_s : (opt.quick ? 2.0 : 30.0);
  if (opt.predict_ctx < 0 || opt.predict_ctx > (int64_t{1} << 24)) {
    return invalid_argument("--ctx " + std::to_string(opt.predict_ctx) +
                            " must be 0..16M positions");
  }
  if (sustain_s > 3600)
    return invalid_argument("--sustain-s " + std::to_string(sustain_s) + " is longer than an hour");
  if (!opt.model_path.empty() && !std::filesystem::exists(opt.model_path)) {
    return invalid_argument(opt.model_path + ": model file not found");
  }
  std::string storage_path = opt.storage_path;
  if (storage_path.empty()) {
    storage_path = ".";
    if (!opt.model_path.empty()) {
      storage_path = std::filesystem::path(opt.model_path).parent_path().string();
      if (storage_path.empty()) storage_path = ".";
    }
  }
  struct stat st {};
  if (::stat(storage_path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return invalid_argument(storage_path + ": --storage-path is not an existing folder");
  }
  if (!opt.sysfs_root.empty() && opt.sysfs_root != "/" &&
      !std::filesystem::is_directory(opt.sysfs_root)) {
    return invalid_argument(opt.sysfs_root + ": --sysfs-root is not an existing folder");
  }
  auto step = [&](const std::string& what) {
    if (progress) progress(what);
  };

  SysTree sys(opt.sysfs_root);
  Profile p;
  p.name = opt.name.empty() ? host_name() : opt.name;
  p.created = utc_now();
  p.generator = opt.generator;
  const int threads_all = usable_cpus();
  if (!sys.live()) {
    p.notes.push_back(
        "identity, memory capacity, thermal and power were read from the recorded "
        "tree " +
        sys.root() +
        "; compute, bandwidth and storage were measured on "
        "the machine that ran the profiler");
  }

  step("identity");
  p.device = probe_device(sys);
  step("memory capacity");
  probe_memory_capacity(sys, p.memory);

  step("thermal state");
  read_thermal_state(sys, p.thermal);
  p.thermal.throttle = read_throttle_counters(sys);

  // Compute, bandwidth and storage always run on this machine, so their sizes follow this
  // machine's caches and memory even when a recorded tree describes another one.
  Device host_device = p.device;
  Memory host_memory = p.memory;
  if (!sys.live()) {
    SysTree live("/");
    host_device = probe_device(live);
    probe_memory_capacity(live, host_memory);
  }
  // One cold region for the GEMV pools and the bandwidth arrays, faulted in before any timing.
  // --quick gives the fault-in a deadline: a VM that backs fresh memory at 0.4 GB/s would
  // spend over 10 s on three arrays of 4x a 480 MiB L3.
  const int64_t want_bytes = bandwidth_array_bytes(host_device, host_memory, opt.quick);
  step("memory: faulting in " + format_bytes(3.0 * static_cast<double>(want_bytes)) +
       " for the GEMV pools and bandwidth arrays");
  STRATA_ASSIGN_OR_RETURN(
      ColdRegion cold,
      fault_in_cold_region(3 * want_bytes, threads_all, opt.quick ? kQuickFaultS : 0,
                           3 * std::min(want_bytes, kQuickMinArrayBytes)));
  const int64_t cold_bytes = std::min(want_bytes, cold.touched_bytes / 3);
  if (cold_bytes < want_bytes) {
    p.notes.push_back("--quick: the bandwidth arrays and GEMV pools are " +
                      format_bytes(static_cast<double>(cold_bytes)) + " each, not " +
                      format_bytes(static_cast<double>(want_bytes)) + ": this host faulted in " +
                      format_bytes(static_cast<double>(cold.touched_bytes)) +
                      " of fresh memory in " + std::to_string(cold.fault_s).substr(0, 4) +
                      " s; the full profile waits for all of it");
  }

  PowerMeter meter(sys, system_clock());
  std::optional<PowerWindow> idle;
  if (meter.any_readable()) {
    step("power: idle");
    idle = meter.measure(opt.quick ? 1.0 : 2.0, kPowerHz);
  }

  // The bandwidth probe first: the region holds its fill values until the GEMV pools and
  // KV caches overwrite them.
  BandwidthOptions bo;
  bo.threads_all = threads_all;
  bo.array_bytes = cold_bytes;
  bo.arrays = cold.buffer.data();
  bo.reps = opt.quick ? 11 : 41;
  probe_memory_bandwidth(bo, p.memory, progress);

  {
    ComputeOptions co;
    co.threads_all = threads_all;
    co.gemv_pool_bytes = cold_bytes;
    co.gemv_pool = cold.buffer.data();
    if (opt.quick) {
      // Half a 2048-wide layer keeps ten GEMM runs inside the quick budget on two cores.
      co.gemm_shapes = {{1024, 2048}};
      co.reps = 15;
      co.gemm_reps = 5;
      co.rep_seconds = 0.005;
    } else {
      co.gemv_shapes = {{2048, 2048}, {8192, 2048}};
      co.reps = 41;
      co.gemm_reps = 11;
      co.rep_seconds = 0.006;
    }
    probe_compute(co, p.compute, progress);
    probe_attention(co, p.compute, progress);
    if (!opt.model_path.empty()) {
      // The model's own matrix shapes (those probe_compute did not already time), so that
      // the decode prediction times each matrix at the rate of its shape.
      STRATA_ASSIGN_OR_RETURN(const std::vector<MatrixCost> matrices,
                              model_matrix_shapes(opt.model_path));
      std::vector<GemvShape> shapes;
      for (const MatrixCost& m : matrices) {
        const bool timed = std::any_of(p.compute.runs.begin(), p.compute.runs.end(), [&](auto& r) {
          return r.op == "gemv" && r.dtype == m.type && r.rows == m.rows && r.cols == m.cols &&
                 r.threads == threads_all;
        });
        const auto type = model::parse_dtype(m.type);
        if (!timed && type) shapes.push_back({*type, m.rows, m.cols});
      }
      probe_gemv_shapes(shapes, co, p.compute, progress);
    }
  }

  StorageOptions so;
  so.path = storage_path;
  so.chunks = storage_chunk_sizes();
  so.file_bytes = opt.quick ? (32 << 20) : (256 << 20);
  so.seconds_per_size = opt.quick ? 0.03 : 0.25;
  Result<Storage> storage = probe_storage(so, progress);
  if (storage.ok()) {
    p.storage = std::move(storage).value();
  } else {
    p.storage.path = storage_path;
    fill_unavailable_storage(p.storage, reason_of(storage.status()), storage.status().message());
    p.notes.push_back("storage probe failed: " + storage.status().message());
  }

  double load_gflop = 0;
  std::optional<PowerWindow> load;
  {
    MatmulLoad work(model::DType::kQ4_0, 2048, 2048, 32, threads_all);
    if (meter.any_readable()) meter.start(kPowerHz);
    const std::vector<SustainSample> samples = run_sustained(
        sustain_s, opt.quick ? 0.25 : 0.5,
        [&] {
          const double g = work.run_once();
          load_gflop += g;
          return g;
        },
        sys, system_clock(), progress);
    if (meter.any_readable()) load = meter.stop();
    analyze_sustained(samples, work.describe(), p.device.virtualized, p.thermal);
  }
  update_throttle_counters(sys, p.thermal.throttle);
  fill_power(meter, idle, load, load_gflop, p.device.virtualized, p.power);

  if (!opt.model_path.empty()) {
    step("prediction for " + opt.model_path);
    STRATA_ASSIGN_OR_RETURN(Prediction pred, predict_for_model(p, opt.model_path, opt.predict_ctx));
    p.derived = std::move(pred);
  }
  return p;
}

}  // namespace strata::profiles
