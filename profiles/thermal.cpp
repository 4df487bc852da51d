// Thermal: temperatures (libsensors on the live system, the hwmon files it reads when a
// recorded tree stands in), thermal zones and their trip points, cpufreq, throttle counters,
// and the sustained-load probe that turns them into burst vs sustained throughput.
#include <sensors/sensors.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>

#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

void read_libsensors(Thermal& out) {
  if (sensors_init(nullptr) != 0) return;
  int chip_nr = 0;
  while (const sensors_chip_name* chip = sensors_get_detected_chips(nullptr, &chip_nr)) {
    char chip_name[256];
    if (sensors_snprintf_chip_name(chip_name, sizeof chip_name, chip) < 0) continue;
    int feat_nr = 0;
    while (const sensors_feature* feat = sensors_get_features(chip, &feat_nr)) {
      if (feat->type != SENSORS_FEATURE_TEMP) continue;
      const sensors_subfeature* sub =
          sensors_get_subfeature(chip, feat, SENSORS_SUBFEATURE_TEMP_INPUT);
      if (sub == nullptr) continue;
      TempSensor s;
      s.chip = chip_name;
      char* label = sensors_get_label(chip, feat);
      s.label = label != nullptr ? label : feat->name;
      std::free(label);
      double value = 0;
      const std::string src = std::string("libsensors ") + chip_name + " " + feat->name;
      if (sensors_get_value(chip, sub->number, &value) == 0) {
        s.temp_c = read_figure(value, "degC", src);
      } else {
        s.temp_c = unavailable_figure("degC", Reason::kUnsupported, src + ": read failed");
      }
      out.sensors.push_back(s);
    }
  }
  sensors_cleanup();
}

// The files libsensors would read, for a recorded tree (libsensors always reads the live /sys).
void read_hwmon_temps(SysTree& sys, Thermal& out) {
  const std::string base = "/sys/class/hwmon";
  for (const std::string& hw : sys.list(base)) {
    const std::string dir = base + "/" + hw;
    const auto chip = sys.read(dir + "/name");
    for (const std::string& f : sys.list(dir)) {
      if (!starts_with(f, "temp") || f.size() < 11 || f.compare(f.size() - 6, 6, "_input") != 0) {
        continue;
      }
      const std::string stem = f.substr(0, f.size() - 6);
      TempSensor s;
      s.chip = chip.ok() ? *chip : hw;
      const auto label = sys.read(dir + "/" + stem + "_label");
      s.label = label.ok() ? *label : stem;
      const auto milli = sys.read_int(dir + "/" + f);
      const std::string src = dir + "/" + f + " (hwmon; libsensors reads only the live /sys)";
      s.temp_c = milli.ok() ? read_figure(static_cast<double>(*milli) / 1000.0, "degC", src)
                            : unavailable_figure("degC", Reason::kPermissionDenied, src);
      if (!milli.ok() && milli.status().code() != StatusCode::kPermissionDenied) {
        s.temp_c.reason = Reason::kUnsupported;
      }
      out.sensors.push_back(s);
    }
  }
}

std::vector<std::string> get_throttled_flags(int64_t v) {
  static const std::pair<int, const char*> kBits[] = {
      {0, "under_voltage_now"},       {1, "arm_freq_capped_now"},
      {2, "throttled_now"},           {3, "soft_temp_limit_now"},
      {16, "under_voltage_occurred"}, {17, "arm_freq_capped_occurred"},
      {18, "throttled_occurred"},     {19, "soft_temp_limit_occurred"},
  };
  std::vector<std::string> out;
  for (const auto& [bit, name] : kBits) {
    if ((v >> bit) & 1) out.emplace_back(name);
  }
  return out;
}

// The Raspberry Pi firmware's throttle word: sysfs where the firmware driver exposes it, else
// `vcgencmd get_throttled` on the live system.
std::optional<std::pair<int64_t, std::string>> read_get_throttled(SysTree& sys) {
  const std::string path = "/sys/devices/platform/soc/soc:firmware/get_throttled";
  const auto text = sys.read(path);
  if (text.ok()) {
    char* end = nullptr;
    const long long v = std::strtoll(text->c_str(), &end, 16);  // printed in hex, no 0x
    if (end != text->c_str()) return std::pair<int64_t, std::string>{v, path};
  }
  if (!sys.live()) return std::nullopt;
  FILE* p = ::popen("vcgencmd get_throttled 2>/dev/null", "r");
  if (p == nullptr) return std::nullopt;
  char line[128] = {0};
  const bool got = std::fgets(line, sizeof line, p) != nullptr;
  ::pclose(p);
  const char* eq = got ? std::strchr(line, '=') : nullptr;
  if (eq == nullptr) return std::nullopt;
  return std::pair<int64_t, std::string>{std::strtoll(eq + 1, nullptr, 16),
                                         "vcgencmd get_throttled"};
}

double median_of(std::vector<double> v) { return summarize(std::move(v)).median; }

double process_cpu_s() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

void read_thermal_state(SysTree& sys, Thermal& out) {
  out.sensors.clear();
  out.zones.clear();
  out.cpufreq.clear();
  if (sys.live()) {
    read_libsensors(out);
  } else {
    read_hwmon_temps(sys, out);
  }
  const std::string tz = "/sys/class/thermal";
  for (const std::string& name : sys.list(tz)) {
    if (!starts_with(name, "thermal_zone")) continue;
    const std::string dir = tz + "/" + name;
    ThermalZone z;
    z.zone = name;
    const auto type = sys.read(dir + "/type");
    z.type = type.ok() ? *type : "";
    const auto temp = sys.read_int(dir + "/temp");
    z.temp_c = temp.ok() ? read_figure(static_cast<double>(*temp) / 1000.0, "degC", dir + "/temp")
                         : unavailable_figure("degC", Reason::kUnsupported, dir + "/temp");
    for (int k = 0;; ++k) {
      const std::string trip = dir + "/trip_point_" + std::to_string(k);
      const auto t = sys.read_int(trip + "_temp");
      if (!t.ok()) break;
      const auto ttype = sys.read(trip + "_type");
      z.trips.push_back({ttype.ok() ? *ttype : "",
                         read_figure(static_cast<double>(*t) / 1000.0, "degC", trip + "_temp")});
    }
    out.zones.push_back(z);
  }
  const std::string cpus = "/sys/devices/system/cpu";
  for (const std::string& name : sys.list(cpus)) {
    if (name.size() < 4 || !starts_with(name, "cpu") || !std::isdigit(name[3])) continue;
    const std::string dir = cpus + "/" + name + "/cpufreq";
    const auto cur = sys.read_int(dir + "/scaling_cur_freq");
    const auto max = sys.read_int(dir + "/cpuinfo_max_freq");
    if (!cur.ok() && !max.ok()) continue;
    CpuFreq f;
    f.cpu = std::atoll(name.c_str() + 3);
    f.cur_mhz =
        cur.ok() ? read_figure(static_cast<double>(*cur) / 1000.0, "MHz", dir + "/scaling_cur_freq")
                 : unavailable_figure("MHz", Reason::kNotPresent, dir + "/scaling_cur_freq");
    f.max_mhz =
        max.ok() ? read_figure(static_cast<double>(*max) / 1000.0, "MHz", dir + "/cpuinfo_max_freq")
                 : unavailable_figure("MHz", Reason::kNotPresent, dir + "/cpuinfo_max_freq");
    out.cpufreq.push_back(f);
  }
  std::sort(out.cpufreq.begin(), out.cpufreq.end(),
            [](const CpuFreq& a, const CpuFreq& b) { return a.cpu < b.cpu; });
}

std::optional<double> mean_cur_mhz(SysTree& sys) {
  const std::string cpus = "/sys/devices/system/cpu";
  double sum = 0;
  int n = 0;
  for (const std::string& name : sys.list(cpus)) {
    if (name.size() < 4 || !starts_with(name, "cpu") || !std::isdigit(name[3])) continue;
    const auto cur = sys.read_int(cpus + "/" + name + "/cpufreq/scaling_cur_freq");
    if (!cur.ok()) continue;
    sum += static_cast<double>(*cur) / 1000.0;
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

std::vector<ThrottleCounter> read_throttle_counters(SysTree& sys) {
  std::vector<ThrottleCounter> out;
  if (const auto t = read_get_throttled(sys)) {
    ThrottleCounter c;
    c.name = "get_throttled";
    c.source = t->second;
    c.before = c.after = t->first;
    c.flags = get_throttled_flags(t->first);
    out.push_back(c);
  }
  // Intel's per-CPU thermal throttle counters: core events summed over CPUs, package events
  // (shared by a package's CPUs) as their maximum.
  const std::string cpus = "/sys/devices/system/cpu";
  for (const char* counter : {"core_throttle_count", "package_throttle_count",
                              "core_throttle_total_time_ms", "package_throttle_total_time_ms"}) {
    int64_t value = 0;
    int n = 0;
    for (const std::string& name : sys.list(cpus)) {
      if (name.size() < 4 || !starts_with(name, "cpu") || !std::isdigit(name[3])) continue;
      const auto v = sys.read_int(cpus + "/" + name + "/thermal_throttle/" + counter);
      if (!v.ok()) continue;
      value = starts_with(counter, "core") ? value + *v : std::max(value, *v);
      ++n;
    }
    if (n == 0) continue;
    ThrottleCounter c;
    c.name = counter;
    c.source = cpus + "/cpu*/thermal_throttle/" + counter +
               (starts_with(counter, "core") ? " (sum over " : " (max over ") + std::to_string(n) +
               " cpus)";
    c.before = c.after = value;
    out.push_back(c);
  }
  return out;
}

void update_throttle_counters(SysTree& sys, std::vector<ThrottleCounter>& counters) {
  const std::vector<ThrottleCounter> now = read_throttle_counters(sys);
  for (ThrottleCounter& c : counters) {
    for (const ThrottleCounter& n : now) {
      if (n.name != c.name) continue;
      c.after = n.after;
      c.flags = n.flags;
    }
  }
}

std::vector<SustainSample> run_sustained(double seconds, double window_s,
                                         const std::function<double()>& work, SysTree& sys,
                                         Clock& clock,
                                         const std::function<void(const std::string&)>& progress) {
  std::vector<SustainSample> out;
  const double t0 = clock.now_s();
  double t = t0;
  while (t - t0 < seconds) {
    const double w0 = clock.now_s();
    const double cpu0 = process_cpu_s();
    double gflop = 0;
    do {
      gflop += work();
    } while (clock.now_s() - w0 < window_s);
    t = clock.now_s();
    const double cpu = process_cpu_s() - cpu0;
    out.push_back({t - t0, gflop / (t - w0),
                   cpu > 0 ? std::optional<double>(gflop / cpu) : std::nullopt, mean_cur_mhz(sys)});
    if (progress) {
      char line[128];
      std::snprintf(line, sizeof line, "sustained load %.1f/%.0f s: %.1f GFLOP/s", t - t0, seconds,
                    out.back().gflops);
      progress(line);
    }
  }
  return out;
}

void analyze_sustained(const std::vector<SustainSample>& samples, const std::string& workload,
                       bool virtualized, Thermal& out) {
  out.sustain_workload = workload;
  if (samples.size() < 4) {
    const std::string why = "the sustained-load probe needs at least 4 windows";
    out.sustain_s = unavailable_figure("s", Reason::kUnsupported, why);
    out.burst_gflops = unavailable_figure("GFLOP/s", Reason::kUnsupported, why);
    out.sustained_gflops = unavailable_figure("GFLOP/s", Reason::kUnsupported, why);
    out.freq_drop_pct = unavailable_figure("%", Reason::kUnsupported, why);
    out.time_to_throttle_s = unavailable_figure("s", Reason::kUnsupported, why);
    return;
  }
  const size_t n = samples.size();
  const size_t n_head = std::max<size_t>(2, n / 10);
  const size_t n_tail = std::max<size_t>(2, n / 4);
  std::vector<double> head, tail;
  for (size_t i = 0; i < n_head; ++i) head.push_back(samples[i].gflops);
  for (size_t i = n - n_tail; i < n; ++i) tail.push_back(samples[i].gflops);
  const double window = samples[0].t_s;
  out.sustain_s = read_figure(samples.back().t_s, "s", "duration of the sustained-load probe");
  out.burst_gflops =
      measured_figure(head, "GFLOP/s", workload + ", first " + std::to_string(n_head) + " windows");
  out.sustained_gflops =
      measured_figure(tail, "GFLOP/s", workload + ", last " + std::to_string(n_tail) + " windows");

  std::vector<double> mhz_head, mhz_tail;
  for (size_t i = 0; i < n_head; ++i) {
    if (samples[i].mhz) mhz_head.push_back(*samples[i].mhz);
  }
  for (size_t i = n - n_tail; i < n; ++i) {
    if (samples[i].mhz) mhz_tail.push_back(*samples[i].mhz);
  }
  bool freq_dropped = false;
  if (!mhz_head.empty() && !mhz_tail.empty()) {
    const double a = median_of(mhz_head);
    const double b = median_of(mhz_tail);
    out.freq_drop_pct =
        derived_figure((a - b) / a * 100.0, "%", "mean scaling_cur_freq, first vs last windows");
    freq_dropped = (a - b) / a > 0.05;
  } else {
    out.freq_drop_pct =
        unavailable_figure("%", virtualized ? Reason::kVirtualized : Reason::kNotPresent,
                           "/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq not present");
  }
  // Throttling: judged on GFLOP per CPU-second when every window has it, so that CPU time
  // taken by other processes is not mistaken for a slower CPU.
  const bool per_cpu = std::all_of(samples.begin(), samples.end(),
                                   [](const SustainSample& s) { return s.gflop_per_cpu_s; });
  const auto rate = [&](size_t i) {
    return per_cpu ? *samples[i].gflop_per_cpu_s : samples[i].gflops;
  };
  std::vector<double> rate_head, rate_tail;
  for (size_t i = 0; i < n_head; ++i) rate_head.push_back(rate(i));
  for (size_t i = n - n_tail; i < n; ++i) rate_tail.push_back(rate(i));
  const double head_rate = median_of(rate_head);
  const bool slowed = median_of(rate_tail) < 0.9 * head_rate;
  std::optional<double> when;
  if (slowed || freq_dropped) {
    for (size_t i = 0; i + 2 < n; ++i) {
      if (rate(i) < 0.9 * head_rate && rate(i + 1) < 0.9 * head_rate &&
          rate(i + 2) < 0.9 * head_rate) {
        when = samples[i].t_s - window;
        break;
      }
    }
  }
  if (when) {
    out.time_to_throttle_s =
        derived_figure(*when, "s", "start of the first 3 windows below 90% of burst GFLOP/s");
  } else {
    out.time_to_throttle_s =
        unavailable_figure("s", Reason::kNotPresent,
                           std::string("no sustained drop below 90% of the first windows' ") +
                               (per_cpu ? "GFLOP per CPU-second" : "GFLOP/s") + " within " +
                               std::to_string(static_cast<int>(samples.back().t_s + 0.5)) + " s");
  }
}

}  // namespace strata::profiles
