#include "strata/profiles/power.h"

#include <algorithm>
#include <cmath>

namespace strata::profiles {
namespace {

Reason reason_of(const Status& s) {
  switch (s.code()) {
    case StatusCode::kPermissionDenied: return Reason::kPermissionDenied;
    case StatusCode::kNotFound: return Reason::kNotPresent;
    default: return Reason::kUnsupported;
  }
}

bool is_counter(const PowerChannel& c) { return c.kind == "rapl" || c.kind == "hwmon_energy"; }

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// "power1_input" -> {"power", "1", "input"}; false when the name has another shape.
bool split_hwmon_name(const std::string& file, std::string& type, std::string& index,
                      std::string& item) {
  const size_t us = file.find('_');
  if (us == std::string::npos) return false;
  size_t d = 0;
  while (d < us && !std::isdigit(static_cast<unsigned char>(file[d]))) ++d;
  if (d == 0 || d == us) return false;
  type = file.substr(0, d);
  index = file.substr(d, us - d);
  item = file.substr(us + 1);
  return true;
}

}  // namespace

std::optional<double> energy_delta_uj(uint64_t before_uj, uint64_t after_uj,
                                      uint64_t max_range_uj) {
  if (after_uj >= before_uj) return static_cast<double>(after_uj - before_uj);
  if (max_range_uj == 0 || before_uj > max_range_uj) return std::nullopt;
  return static_cast<double>(max_range_uj - before_uj) + static_cast<double>(after_uj);
}

double trapezoid_joules(const std::vector<std::pair<double, double>>& samples) {
  double joules = 0;
  for (size_t i = 1; i < samples.size(); ++i) {
    const double dt = samples[i].first - samples[i - 1].first;
    joules += 0.5 * (samples[i].second + samples[i - 1].second) * dt;
  }
  return joules;
}

Figure ChannelWindow::figure(const std::string& source) const {
  if (reason) return unavailable_figure("W", *reason, source + ": " + reason_detail);
  if (seconds <= 0 || watts.empty()) {
    return unavailable_figure("W", Reason::kUnsupported, source + ": fewer than two samples");
  }
  Figure f = measured_figure(watts, "W", source);
  f.value = joules / seconds;  // the window's mean, which energy per token needs
  return f;
}

PowerMeter::PowerMeter(SysTree& sys, Clock& clock) : sys_(sys), clock_(clock) {
  discover_powercap();
  discover_hwmon();
  discover_battery();
  for (PowerChannel& c : channels_) {
    if (c.reason) continue;
    // Tell a refused file (EACCES) from a readable one before any window, without reading:
    // a read would consume a recorded series' first value.
    for (const std::string* path : {&c.path, &c.path2}) {
      if (path->empty() || c.reason) continue;
      const Status s = sys_.check_readable(*path);
      if (!s.ok()) {
        c.reason = reason_of(s);
        c.reason_detail = s.message();
      }
    }
  }
}

PowerMeter::~PowerMeter() {
  if (thread_.joinable()) {
    stop_ = true;
    thread_.join();
  }
}

void PowerMeter::discover_powercap() {
  const std::string base = "/sys/class/powercap";
  for (const std::string& zone : sys_.list(base)) {
    // intel-rapl-mmio repeats the package zone through another interface: counted once.
    if (!starts_with(zone, "intel-rapl:")) continue;
    const std::string dir = base + "/" + zone;
    PowerChannel c;
    c.kind = "rapl";
    const auto name = sys_.read(dir + "/name");
    c.name = name.ok() ? *name : zone;
    c.boundary = starts_with(c.name, "package") ? Boundary::kPackage
                 : c.name == "psys"             ? Boundary::kModule
                                                : Boundary::kRail;
    c.path = dir + "/energy_uj";
    const auto range = sys_.read_int(dir + "/max_energy_range_uj");
    if (range.ok() && *range > 0) c.max_range_uj = static_cast<uint64_t>(*range);
    channels_.push_back(c);
  }
}

void PowerMeter::discover_hwmon() {
  const std::string base = "/sys/class/hwmon";
  for (const std::string& hw : sys_.list(base)) {
    const std::string dir = base + "/" + hw;
    const auto chip_r = sys_.read(dir + "/name");
    const std::string chip = chip_r.ok() ? *chip_r : hw;
    const std::vector<std::string> files = sys_.list(dir);
    auto has = [&](const std::string& f) {
      return std::binary_search(files.begin(), files.end(), f);
    };
    for (const std::string& f : files) {
      std::string type, index, item;
      if (!split_hwmon_name(f, type, index, item)) continue;
      const auto label_r = sys_.read(dir + "/" + type + index + "_label");
      PowerChannel c;
      c.name = label_r.ok() ? *label_r : chip + "/" + type + index;
      if (type == "energy" && item == "input") {
        c.kind = "hwmon_energy";
        c.path = dir + "/" + f;
      } else if (type == "power" &&
                 (item == "input" || (item == "average" && !has("power" + index + "_input")))) {
        c.kind = "hwmon_power";
        c.path = dir + "/" + f;
      } else if (type == "in" && item == "input" && starts_with(chip, "ina") &&
                 has("curr" + index + "_input")) {
        // INA3221 and kin: a rail's power is its bus voltage times its current.
        c.kind = "hwmon_rail";
        c.path = dir + "/" + f;
        c.path2 = dir + "/curr" + index + "_input";
      } else {
        continue;
      }
      // VDD_IN is the Jetson module's input rail: the whole module. Per-core energy of
      // amd_energy-like chips is a rail, their socket sum a package.
      if (c.name == "VDD_IN") {
        c.boundary = Boundary::kModule;
      } else if (c.name.find("socket") != std::string::npos ||
                 c.name.find("package") != std::string::npos) {
        c.boundary = Boundary::kPackage;
      } else {
        c.boundary = Boundary::kRail;
      }
      channels_.push_back(c);
    }
  }
}

void PowerMeter::discover_battery() {
  const std::string base = "/sys/class/power_supply";
  for (const std::string& supply : sys_.list(base)) {
    const std::string dir = base + "/" + supply;
    const auto type = sys_.read(dir + "/type");
    if (!type.ok() || *type != "Battery") continue;
    PowerChannel c;
    c.name = supply;
    c.kind = "battery";
    c.boundary = Boundary::kSystem;
    if (sys_.exists(dir + "/power_now")) {
      c.path = dir + "/power_now";
    } else {
      c.path = dir + "/voltage_now";
      c.path2 = dir + "/current_now";
    }
    const auto status = sys_.read(dir + "/status");
    if (!status.ok() || *status != "Discharging") {
      // On mains the battery's current is the charge current, not what the system draws.
      c.reason = Reason::kUnsupported;
      c.reason_detail = dir + "/status is '" + (status.ok() ? *status : "unreadable") +
                        "': battery power measures the system only while discharging";
    }
    channels_.push_back(c);
  }
}

bool PowerMeter::any_readable() const {
  return std::any_of(channels_.begin(), channels_.end(),
                     [](const PowerChannel& c) { return !c.reason; });
}

PowerMeter::Reading PowerMeter::sample() {
  Reading r;
  r.t_s = clock_.now_s();
  r.values.resize(channels_.size());
  for (size_t i = 0; i < channels_.size(); ++i) {
    const PowerChannel& c = channels_[i];
    if (c.reason || failed_[i]) continue;
    const auto a = sys_.read_int(c.path);
    std::optional<int64_t> b;
    if (a.ok() && !c.path2.empty()) {
      const auto v = sys_.read_int(c.path2);
      if (!v.ok()) {
        failed_[i] = reason_of(v.status());
        failed_detail_[i] = v.status().message();
        continue;
      }
      b = *v;
    }
    if (!a.ok()) {
      failed_[i] = reason_of(a.status());
      failed_detail_[i] = a.status().message();
      continue;
    }
    const double x = static_cast<double>(*a);
    if (is_counter(c)) {
      r.values[i] = x;  // µJ
    } else if (c.kind == "hwmon_power") {
      r.values[i] = x * 1e-6;  // µW
    } else if (c.kind == "hwmon_rail") {
      r.values[i] = x * static_cast<double>(*b) * 1e-6;  // mV x mA
    } else if (b) {
      r.values[i] = std::fabs(x * static_cast<double>(*b)) * 1e-12;  // µV x µA
    } else {
      r.values[i] = std::fabs(x) * 1e-6;  // power_now µW
    }
  }
  return r;
}

PowerWindow PowerMeter::summarize(const std::vector<Reading>& readings) {
  PowerWindow w;
  if (readings.size() >= 2) {
    w.seconds = readings.back().t_s - readings.front().t_s;
    if (w.seconds > 0) w.achieved_hz = static_cast<double>(readings.size() - 1) / w.seconds;
  }
  for (size_t i = 0; i < channels_.size(); ++i) {
    const PowerChannel& c = channels_[i];
    ChannelWindow cw;
    if (c.reason || failed_[i]) {
      cw.reason = c.reason ? c.reason : failed_[i];
      cw.reason_detail = c.reason ? c.reason_detail : failed_detail_[i];
      w.channels.push_back(cw);
      continue;
    }
    if (is_counter(c)) {
      for (size_t k = 1; k < readings.size(); ++k) {
        const auto& p = readings[k - 1].values[i];
        const auto& q = readings[k].values[i];
        const double dt = readings[k].t_s - readings[k - 1].t_s;
        if (!p || !q || dt <= 0) continue;
        const auto d =
            energy_delta_uj(static_cast<uint64_t>(*p), static_cast<uint64_t>(*q), c.max_range_uj);
        if (!d) continue;  // a reset of a counter with no known range: skip the interval
        cw.joules += *d * 1e-6;
        cw.seconds += dt;
        cw.watts.push_back(*d * 1e-6 / dt);
      }
    } else {
      std::vector<std::pair<double, double>> curve;
      for (const Reading& r : readings) {
        if (r.values[i]) {
          curve.emplace_back(r.t_s, *r.values[i]);
          cw.watts.push_back(*r.values[i]);
        }
      }
      cw.joules = trapezoid_joules(curve);
      if (curve.size() >= 2) cw.seconds = curve.back().first - curve.front().first;
    }
    w.channels.push_back(cw);
  }
  return w;
}

PowerWindow PowerMeter::measure(double seconds, double hz) {
  STRATA_CHECK(hz > 0 && seconds >= 0 && !thread_.joinable());
  failed_.assign(channels_.size(), std::nullopt);
  failed_detail_.assign(channels_.size(), "");
  std::vector<Reading> readings;
  const double t0 = clock_.now_s();
  const auto n = static_cast<int64_t>(std::llround(seconds * hz));
  for (int64_t k = 0; k <= n; ++k) {
    clock_.sleep_until_s(t0 + static_cast<double>(k) / hz);
    readings.push_back(sample());
  }
  return summarize(readings);
}

void PowerMeter::start(double hz) {
  STRATA_CHECK(hz > 0 && !thread_.joinable());
  failed_.assign(channels_.size(), std::nullopt);
  failed_detail_.assign(channels_.size(), "");
  background_.clear();
  stop_ = false;
  thread_ = std::thread([this, hz] {
    const double t0 = clock_.now_s();
    for (int64_t k = 0;; ++k) {
      clock_.sleep_until_s(t0 + static_cast<double>(k) / hz);
      background_.push_back(sample());
      if (stop_) break;
    }
  });
}

PowerWindow PowerMeter::stop() {
  STRATA_CHECK(thread_.joinable());
  stop_ = true;
  thread_.join();
  return summarize(background_);
}

void fill_power(const PowerMeter& meter, const std::optional<PowerWindow>& idle,
                const std::optional<PowerWindow>& load, double load_gflop, bool virtualized,
                Power& power) {
  const auto& channels = meter.channels();
  power.sources.clear();
  int best = -1;
  bool any_denied = false;
  for (size_t i = 0; i < channels.size(); ++i) {
    const PowerChannel& c = channels[i];
    PowerSource s;
    s.name = c.name;
    s.kind = c.kind;
    s.boundary = c.boundary;
    s.source = c.path2.empty() ? c.path : c.path + " x " + c.path2;
    const std::string what = c.kind + " " + s.source;
    s.idle_watts = idle ? idle->channels[i].figure(what + ", idle")
                        : unavailable_figure("W", Reason::kUnsupported, what + ": no idle window");
    s.load_watts = load ? load->channels[i].figure(what + ", under load")
                        : unavailable_figure("W", Reason::kUnsupported, what + ": no load window");
    if (s.idle_watts.reason == Reason::kPermissionDenied) any_denied = true;
    const bool usable = s.idle_watts.available() || s.load_watts.available();
    if (usable && (best < 0 || s.boundary > power.sources[static_cast<size_t>(best)].boundary)) {
      best = static_cast<int>(power.sources.size());
    }
    power.sources.push_back(s);
  }
  if (load && load->achieved_hz > 0)
    power.sample_hz = load->achieved_hz;
  else if (idle)
    power.sample_hz = idle->achieved_hz;
  if (best < 0) {
    const Reason r = any_denied    ? Reason::kPermissionDenied
                     : virtualized ? Reason::kVirtualized
                                   : Reason::kNotPresent;
    const std::string where = channels.empty()
                                  ? "no powercap, hwmon power/energy or discharging battery found"
                                  : "no readable power source (see sources)";
    power.boundary = Boundary::kNone;
    power.idle_watts = unavailable_figure("W", r, where);
    power.load_watts = unavailable_figure("W", r, where);
    power.joules_per_gflop = unavailable_figure("J/GFLOP", r, where);
    return;
  }
  const PowerSource& s = power.sources[static_cast<size_t>(best)];
  power.boundary = s.boundary;
  power.idle_watts = s.idle_watts;
  power.load_watts = s.load_watts;
  const auto bi = static_cast<size_t>(best);  // sources are in channel order
  if (load && s.load_watts.available() && load_gflop > 0) {
    power.joules_per_gflop =
        derived_figure(load->channels[bi].joules / load_gflop, "J/GFLOP",
                       s.name + " energy during the sustained-load probe / GFLOP it computed");
  } else {
    power.joules_per_gflop =
        unavailable_figure("J/GFLOP", s.load_watts.reason.value_or(Reason::kUnsupported),
                           "needs load watts and the GFLOP done in the same window");
  }
}

}  // namespace strata::profiles
