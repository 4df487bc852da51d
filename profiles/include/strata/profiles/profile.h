// The device profile: what `strata profile` writes, `strata plan` reads and agents send on the
// wire. These structs are the single source of truth of the schema: each lists its fields once,
// in `fields()`, and both encodings are generated from that list (JSON for people and files,
// FlexBuffers bytes for the wire). docs/PROFILE_SCHEMA.md explains the choice and the contract.
//
// Every quantity is a Figure: value, unit, provenance, the reason when it was not measured, the
// source it came from, and the statistics behind a measurement. A figure that could not be
// obtained is `unavailable` with value nullopt and a reason, never zero and never a guess.
//
// Thread-safety: plain values; the codec functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/base/status.h"

namespace strata::profiles {

inline constexpr const char* kProfileSchema = "strata.profile/1";

enum class Provenance { kMeasured, kDerived, kEstimated, kSpec, kUnavailable };
enum class Reason { kNotPresent, kPermissionDenied, kVirtualized, kUnsupported };
// What a power figure includes, narrowest first: one supply rail or component (RAPL core,
// Jetson VDD_CPU_GPU_CV), the CPU package (RAPL package-N), the module or SoC platform
// (Jetson VDD_IN, RAPL psys), the whole system from its battery, the wall socket (an external
// meter), or nothing known.
enum class Boundary { kRail, kPackage, kModule, kSystem, kWall, kNone };

struct Stats {
  double median = 0;
  double p10 = 0;
  double p90 = 0;
  int64_t n = 0;

  bool operator==(const Stats&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("median", s.median);
    f("p10", s.p10);
    f("p90", s.p90);
    f("n", s.n);
  }
};

struct Figure {
  std::optional<double> value;
  std::string unit;
  Provenance provenance = Provenance::kUnavailable;
  std::optional<Reason> reason;
  std::string source;
  std::optional<Stats> stats;

  bool available() const { return value.has_value(); }

  bool operator==(const Figure&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("value", s.value);
    f("unit", s.unit);
    f("provenance", s.provenance);
    f("reason", s.reason);
    f("source", s.source);
    f("stats", s.stats);
  }
};

// median, p10 and p90 (linear interpolation between order statistics) and n of `samples`,
// which must not be empty (checked).
Stats summarize(std::vector<double> samples);

// A measured figure from repeated samples: value is the median, stats hold median/p10/p90/n.
// `samples` must not be empty (checked).
Figure measured_figure(const std::vector<double>& samples, std::string unit, std::string source);
// A measured peak rate (GB/s, GFLOP/s) from repeated samples: value is their p90, stats as
// above. On a shared machine another process can only slow a repetition down (it takes the
// CPU or the memory bus), never speed it up, so the upper tail of many short repetitions is
// the device's own rate while the median follows the load of the moment; p90 rather than the
// maximum so that one odd repetition cannot set the figure. `samples` must not be empty.
Figure measured_rate_figure(const std::vector<double>& samples, std::string unit,
                            std::string source);
// A figure read once from the OS (a file, an API): measured, n = 1.
Figure read_figure(double value, std::string unit, std::string source);
// A figure computed from other figures (provenance derived), or taken from a public document
// (spec), or inferred from one (estimated). No stats.
Figure derived_figure(double value, std::string unit, std::string source);
Figure spec_figure(double value, std::string unit, std::string source);
Figure estimated_figure(double value, std::string unit, std::string source);
// A figure that could not be obtained: value nullopt, the reason, and where we looked.
Figure unavailable_figure(std::string unit, Reason reason, std::string source);

// The same quantity measured with one thread and with every thread the process may use.
struct ThreadFigures {
  Figure threads_1;
  Figure threads_all;

  bool operator==(const ThreadFigures&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("threads_1", s.threads_1);
    f("threads_all", s.threads_all);
  }
};

struct CpuIdentity {
  std::string vendor;
  std::string brand;
  std::string codename;
  std::optional<int64_t> family;
  std::optional<int64_t> model;
  std::optional<int64_t> stepping;
  std::string source;  // "libcpuid 0.6" or "/proc/cpuinfo"

  bool operator==(const CpuIdentity&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("vendor", s.vendor);
    f("brand", s.brand);
    f("codename", s.codename);
    f("family", s.family);
    f("model", s.model);
    f("stepping", s.stepping);
    f("source", s.source);
  }
};

// One kind of core of a hybrid CPU (performance / efficiency), or the only kind ("general").
struct CoreType {
  std::string purpose;
  std::string name;  // brand or ARM part ("Cortex-A76"), may be empty
  int64_t n_logical_cpus = 0;

  bool operator==(const CoreType&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("purpose", s.purpose);
    f("name", s.name);
    f("n_logical_cpus", s.n_logical_cpus);
  }
};

struct Device {
  std::string arch;    // uname machine: x86_64, aarch64
  std::string kernel;  // uname release
  CpuIdentity cpu;
  Figure cores;
  Figure logical_cpus;
  std::map<std::string, Figure> caches;  // "l1d_bytes", "l2_bytes", "l3_bytes"
  std::vector<std::string> isa;          // avx2 avx512f avx512_vnni avx_vnni amx neon dotprod ...
  std::string isa_source;
  std::vector<CoreType> core_types;
  std::string core_types_source;
  std::optional<std::string> board_model;
  std::string board_model_source;
  bool virtualized = false;
  std::optional<std::string> hypervisor;
  std::string virtualization_source;

  bool operator==(const Device&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("arch", s.arch);
    f("kernel", s.kernel);
    f("cpu", s.cpu);
    f("cores", s.cores);
    f("logical_cpus", s.logical_cpus);
    f("caches", s.caches);
    f("isa", s.isa);
    f("isa_source", s.isa_source);
    f("core_types", s.core_types);
    f("core_types_source", s.core_types_source);
    f("board_model", s.board_model);
    f("board_model_source", s.board_model_source);
    f("virtualized", s.virtualized);
    f("hypervisor", s.hypervisor);
    f("virtualization_source", s.virtualization_source);
  }
};

// One matrix product measured: the shape and threads behind a figure of the compute section.
struct ComputeRun {
  std::string op;     // "gemv" (n_tokens 1) or "gemm"
  std::string dtype;  // f32 f16 bf16 q8_0 q4_0
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t n_tokens = 0;
  int64_t threads = 0;
  Figure gflops;

  bool operator==(const ComputeRun&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("op", s.op);
    f("dtype", s.dtype);
    f("rows", s.rows);
    f("cols", s.cols);
    f("n_tokens", s.n_tokens);
    f("threads", s.threads);
    f("gflops", s.gflops);
  }
};

struct Compute {
  std::map<std::string, ThreadFigures> gemv_gflops;  // by dtype
  std::map<std::string, ThreadFigures> gemm_gflops;  // by dtype
  // The engine's attention (model::attend, f32 KV cache) for one decode token over 256
  // cached positions, 32 query heads on 8 KV heads of 64 dims, 4 * head_dim FLOPs per head
  // and position as the cost model counts them.
  ThreadFigures attention_gflops;
  int64_t threads_all = 0;
  std::string kernel_isa;        // the engine's kernel ISA that ran ("avx2", "neon", ...)
  std::vector<ComputeRun> runs;  // every shape measured (the planner figures use the first)

  bool operator==(const Compute&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("gemv_gflops", s.gemv_gflops);
    f("gemm_gflops", s.gemm_gflops);
    f("attention_gflops", s.attention_gflops);
    f("threads_all", s.threads_all);
    f("kernel_isa", s.kernel_isa);
    f("runs", s.runs);
  }
};

struct Memory {
  Figure total_bytes;
  Figure available_bytes;
  ThreadFigures read_gb_per_s;
  ThreadFigures copy_gb_per_s;
  ThreadFigures triad_gb_per_s;
  int64_t array_bytes = 0;                         // size of each bandwidth array
  std::optional<std::string> cgroup_limit_source;  // the cgroup file that capped the figures

  bool operator==(const Memory&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("total_bytes", s.total_bytes);
    f("available_bytes", s.available_bytes);
    f("read_gb_per_s", s.read_gb_per_s);
    f("copy_gb_per_s", s.copy_gb_per_s);
    f("triad_gb_per_s", s.triad_gb_per_s);
    f("array_bytes", s.array_bytes);
    f("cgroup_limit_source", s.cgroup_limit_source);
  }
};

struct Storage {
  std::string path;
  std::string filesystem;    // "ext4", "tmpfs", ... (statfs magic)
  bool direct_io = false;    // false: O_DIRECT was refused and reads went through the page cache
  std::string cache_policy;  // how the page cache was kept out of the figures
  int64_t file_bytes = 0;
  std::map<std::string, Figure> seq_read_mb_per_s;  // by chunk bytes, "4096" .. "4194304"
  std::map<std::string, Figure> rand_read_mb_per_s;

  bool operator==(const Storage&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("path", s.path);
    f("filesystem", s.filesystem);
    f("direct_io", s.direct_io);
    f("cache_policy", s.cache_policy);
    f("file_bytes", s.file_bytes);
    f("seq_read_mb_per_s", s.seq_read_mb_per_s);
    f("rand_read_mb_per_s", s.rand_read_mb_per_s);
  }
};

struct TempSensor {
  std::string chip;   // libsensors chip or hwmon name
  std::string label;  // "Package id 0", "temp1"
  Figure temp_c;

  bool operator==(const TempSensor&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("chip", s.chip);
    f("label", s.label);
    f("temp_c", s.temp_c);
  }
};

struct TripPoint {
  std::string type;  // passive, active, hot, critical
  Figure temp_c;

  bool operator==(const TripPoint&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("type", s.type);
    f("temp_c", s.temp_c);
  }
};

struct ThermalZone {
  std::string zone;  // thermal_zone0
  std::string type;  // cpu-thermal, x86_pkg_temp
  Figure temp_c;
  std::vector<TripPoint> trips;

  bool operator==(const ThermalZone&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("zone", s.zone);
    f("type", s.type);
    f("temp_c", s.temp_c);
    f("trips", s.trips);
  }
};

struct CpuFreq {
  int64_t cpu = 0;
  Figure cur_mhz;
  Figure max_mhz;

  bool operator==(const CpuFreq&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("cpu", s.cpu);
    f("cur_mhz", s.cur_mhz);
    f("max_mhz", s.max_mhz);
  }
};

// A throttle counter or flag word read before and after the sustained-load probe.
struct ThrottleCounter {
  std::string name;    // "get_throttled", "cpu0.core_throttle_count"
  std::string source;  // path or command
  int64_t before = 0;
  int64_t after = 0;
  std::vector<std::string> flags;  // decoded bits of `after` (Raspberry Pi get_throttled)

  bool operator==(const ThrottleCounter&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("name", s.name);
    f("source", s.source);
    f("before", s.before);
    f("after", s.after);
    f("flags", s.flags);
  }
};

struct Thermal {
  std::vector<TempSensor> sensors;
  std::vector<ThermalZone> zones;
  std::vector<CpuFreq> cpufreq;
  std::vector<ThrottleCounter> throttle;
  Figure sustain_s;  // how long the sustained-load probe ran
  std::string sustain_workload;
  Figure burst_gflops;
  Figure sustained_gflops;
  Figure freq_drop_pct;
  Figure time_to_throttle_s;  // unavailable (not_present) when no throttling was seen

  bool operator==(const Thermal&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("sensors", s.sensors);
    f("zones", s.zones);
    f("cpufreq", s.cpufreq);
    f("throttle", s.throttle);
    f("sustain_s", s.sustain_s);
    f("sustain_workload", s.sustain_workload);
    f("burst_gflops", s.burst_gflops);
    f("sustained_gflops", s.sustained_gflops);
    f("freq_drop_pct", s.freq_drop_pct);
    f("time_to_throttle_s", s.time_to_throttle_s);
  }
};

struct PowerSource {
  std::string name;  // "package-0", "VDD_IN", "BAT0"
  std::string kind;  // rapl, hwmon_energy, hwmon_power, hwmon_rail, battery
  Boundary boundary = Boundary::kNone;
  std::string source;
  Figure idle_watts;
  Figure load_watts;

  bool operator==(const PowerSource&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("name", s.name);
    f("kind", s.kind);
    f("boundary", s.boundary);
    f("source", s.source);
    f("idle_watts", s.idle_watts);
    f("load_watts", s.load_watts);
  }
};

struct Power {
  Boundary boundary = Boundary::kNone;
  Figure idle_watts;
  Figure load_watts;
  Figure joules_per_gflop;
  double sample_hz = 0;
  std::vector<PowerSource> sources;

  bool operator==(const Power&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("boundary", s.boundary);
    f("idle_watts", s.idle_watts);
    f("load_watts", s.load_watts);
    f("joules_per_gflop", s.joules_per_gflop);
    f("sample_hz", s.sample_hz);
    f("sources", s.sources);
  }
};

// The roofline prediction for one model (`--model FILE.gguf`); roofline.h has the formula.
struct Prediction {
  std::string model;
  std::string dtype;  // the model's main weight type, whose compute figures were used
  double weight_bytes_per_token = 0;  // weights read per decoded token, all units
  double flops_per_token = 0;         // matmul FLOPs per token, without attention
  int64_t ctx = 0;                    // cached positions the decode prediction assumes
  Figure decode_tok_per_s;
  Figure prefill_tok_per_s;
  std::string decode_bound;  // "memory" or "compute"
  Figure joules_per_token;

  bool operator==(const Prediction&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("model", s.model);
    f("dtype", s.dtype);
    f("weight_bytes_per_token", s.weight_bytes_per_token);
    f("flops_per_token", s.flops_per_token);
    f("ctx", s.ctx);
    f("decode_tok_per_s", s.decode_tok_per_s);
    f("prefill_tok_per_s", s.prefill_tok_per_s);
    f("decode_bound", s.decode_bound);
    f("joules_per_token", s.joules_per_token);
  }
};

struct Profile {
  std::string schema = kProfileSchema;
  std::string name;
  std::string created;    // ISO 8601 UTC
  std::string generator;  // "strata 0.1.0 profile --quick", or who wrote a reference profile
  std::vector<std::string> notes;
  Device device;
  Compute compute;
  Memory memory;
  Storage storage;
  Thermal thermal;
  Power power;
  std::optional<Prediction> derived;

  bool operator==(const Profile&) const = default;

  template <class Self, class F>
  static void fields(Self& s, F&& f) {
    f("schema", s.schema);
    f("name", s.name);
    f("created", s.created);
    f("generator", s.generator);
    f("notes", s.notes);
    f("device", s.device);
    f("compute", s.compute);
    f("memory", s.memory);
    f("storage", s.storage);
    f("thermal", s.thermal);
    f("power", s.power);
    f("derived", s.derived);
  }
};

// Enum names as they appear in both encodings ("measured", "permission_denied", "package").
const char* provenance_name(Provenance p);
const char* reason_name(Reason r);
const char* boundary_name(Boundary b);
std::optional<Provenance> parse_provenance(std::string_view s);
std::optional<Reason> parse_reason(std::string_view s);
std::optional<Boundary> parse_boundary(std::string_view s);

// JSON text of `profile` (indent spaces per level; -1 for one line). Never fails.
std::string profile_to_json(const Profile& profile, int indent = 2);
// Parses and validates JSON text. kCorrupt naming the JSON path of the first bad value
// ("memory.total_bytes.provenance: 'guessed' is not one of ..."), kUnsupported for another
// schema version. Missing keys keep their defaults; unknown keys are ignored.
Result<Profile> profile_from_json(std::string_view json_text);
// Reads and parses a profile file; errors are prefixed with the path.
Result<Profile> load_profile(const std::string& path);

// Wire encoding: a FlexBuffers map with the same keys and values as the JSON. Never fails.
std::vector<uint8_t> profile_to_wire(const Profile& profile);
// Verifies the bytes (FlexBuffers verifier: no read out of bounds on any input) and decodes
// them with the same rules as profile_from_json. kCorrupt on malformed bytes.
Result<Profile> profile_from_wire(const uint8_t* bytes, size_t size);

}  // namespace strata::profiles
