// Power and energy: every source the machine exposes (RAPL powercap zones, hwmon energy,
// power and voltage x current rails such as the Jetson's INA3221, a battery's power_now),
// sampled at a fixed rate and integrated over a window.
//
// Energy counters (RAPL energy_uj, hwmon energy*_input) are differenced sample to sample with
// wrap-around handled per zone from its max_energy_range_uj; instantaneous power (hwmon power,
// rails, battery) is integrated with the trapezoid rule. A source that cannot be read keeps
// its reason (permission_denied: energy_uj is root-only since Linux 5.10) and yields no watts:
// never zero, never a guess.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "strata/profiles/profile.h"
#include "strata/profiles/sysfs.h"

namespace strata::profiles {

// Energy in µJ between two readings of a counter that runs from 0 to `max_range_uj` and then
// restarts at 0: `after - before`, or `max_range_uj - before + after` when it wrapped. With
// max_range_uj 0 (unknown) a decrease is a reset and gives nullopt. Pure.
std::optional<double> energy_delta_uj(uint64_t before_uj, uint64_t after_uj, uint64_t max_range_uj);

// Joules under a curve of (time s, watts) samples in time order, by the trapezoid rule.
// Fewer than two samples give 0. Pure.
double trapezoid_joules(const std::vector<std::pair<double, double>>& samples);

// One discovered source and how to read it.
struct PowerChannel {
  std::string name;  // zone name, rail label, supply name
  std::string kind;  // rapl, hwmon_energy, hwmon_power, hwmon_rail, battery
  Boundary boundary = Boundary::kNone;
  std::string path;              // counter, power or voltage file
  std::string path2;             // current file for rails and voltage x current batteries
  uint64_t max_range_uj = 0;     // counters only; 0 when unknown
  std::optional<Reason> reason;  // set when the source cannot be read
  std::string reason_detail;
};

// What one window of sampling gave for one channel.
struct ChannelWindow {
  std::optional<Reason> reason;  // set when the channel failed before or during the window
  std::string reason_detail;
  double joules = 0;
  double seconds = 0;
  std::vector<double> watts;  // per-interval (counters) or per-sample (instantaneous) watts

  // Mean watts over the window (joules / seconds) as a measured figure with the stats of
  // `watts`, or unavailable with the reason.
  Figure figure(const std::string& source) const;
};

struct PowerWindow {
  double seconds = 0;
  double achieved_hz = 0;
  std::vector<ChannelWindow> channels;  // in the order of PowerMeter::channels()
};

class PowerMeter {
 public:
  // Discovers the sources under `sys` (/sys/class/powercap, /sys/class/hwmon,
  // /sys/class/power_supply). Never fails; an unreadable source is kept with its reason.
  // `sys` and `clock` must outlive the meter.
  PowerMeter(SysTree& sys, Clock& clock);
  ~PowerMeter();
  PowerMeter(const PowerMeter&) = delete;
  PowerMeter& operator=(const PowerMeter&) = delete;

  const std::vector<PowerChannel>& channels() const { return channels_; }
  // True when at least one channel can be read.
  bool any_readable() const;

  // Samples every channel at `hz` for `seconds` on the calling thread. Not thread-safe with
  // start()/stop().
  PowerWindow measure(double seconds, double hz);
  // Samples on a background thread from now until stop(), which returns the window.
  void start(double hz);
  PowerWindow stop();

 private:
  struct Reading {
    double t_s = 0;
    std::vector<std::optional<double>> values;  // µJ for counters, W for instantaneous
  };
  Reading sample();
  PowerWindow summarize(const std::vector<Reading>& readings);
  void discover_powercap();
  void discover_hwmon();
  void discover_battery();

  SysTree& sys_;
  Clock& clock_;
  std::vector<PowerChannel> channels_;
  std::vector<std::optional<Reason>> failed_;  // per channel, set on a read error in a window
  std::vector<std::string> failed_detail_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::vector<Reading> background_;
};

// Fills `power` from an idle window and a load window of the same meter: each source's idle
// and load watts, the boundary and figures of the widest readable source, and
// joules_per_gflop from the load window's energy over `load_gflop` (GFLOP done in it; <= 0
// when unknown). When no source is readable the figures are unavailable with the reason
// (permission_denied if any source was refused, else virtualized in a VM, else not_present).
void fill_power(const PowerMeter& meter, const std::optional<PowerWindow>& idle,
                const std::optional<PowerWindow>& load, double load_gflop, bool virtualized,
                Power& power);

}  // namespace strata::profiles
