#include <gtest/gtest.h>

#include "fixtures.h"
#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

using testing::FakeClock;
using testing::fixture;

TEST(ThermalState, RaspberryPiZoneTripAndCpufreq) {
  SysTree sys(fixture("rpi4b"));
  Thermal t;
  read_thermal_state(sys, t);
  ASSERT_EQ(t.zones.size(), 1u);
  EXPECT_EQ(t.zones[0].type, "cpu-thermal");
  EXPECT_DOUBLE_EQ(*t.zones[0].temp_c.value, 48.686);
  EXPECT_EQ(t.zones[0].temp_c.unit, "degC");
  ASSERT_EQ(t.zones[0].trips.size(), 1u);
  EXPECT_EQ(t.zones[0].trips[0].type, "critical");
  EXPECT_DOUBLE_EQ(*t.zones[0].trips[0].temp_c.value, 110.0);
  ASSERT_EQ(t.cpufreq.size(), 4u);
  EXPECT_DOUBLE_EQ(*t.cpufreq[3].cur_mhz.value, 1800.0);
  EXPECT_DOUBLE_EQ(*t.cpufreq[3].max_mhz.value, 1800.0);
  EXPECT_EQ(t.cpufreq[3].cur_mhz.source, "/sys/devices/system/cpu/cpu3/cpufreq/scaling_cur_freq");
  // The hwmon temperature stands in for libsensors in a recorded tree, and says so.
  ASSERT_EQ(t.sensors.size(), 1u);
  EXPECT_EQ(t.sensors[0].chip, "cpu_thermal");
  EXPECT_NE(t.sensors[0].temp_c.source.find("libsensors reads only the live /sys"),
            std::string::npos);
  EXPECT_EQ(mean_cur_mhz(sys), 1800.0);
}

TEST(ThermalState, RaspberryPiGetThrottledBitsAreDecoded) {
  SysTree sys(fixture("rpi4b"));
  const auto counters = read_throttle_counters(sys);
  ASSERT_EQ(counters.size(), 1u);
  EXPECT_EQ(counters[0].name, "get_throttled");
  EXPECT_EQ(counters[0].after, 0x50005);
  EXPECT_EQ(counters[0].source, "/sys/devices/platform/soc/soc:firmware/get_throttled");
  EXPECT_EQ(counters[0].flags,
            (std::vector<std::string>{"under_voltage_now", "throttled_now",
                                      "under_voltage_occurred", "throttled_occurred"}));
}

TEST(ThermalState, IntelThrottleCountersSumCoresAndTakePackageMax) {
  SysTree sys(fixture("intel-laptop"));
  auto counters = read_throttle_counters(sys);
  std::map<std::string, int64_t> by_name;
  for (const auto& c : counters) by_name[c.name] = c.after;
  EXPECT_EQ(by_name.at("core_throttle_count"), 4);
  EXPECT_EQ(by_name.at("package_throttle_count"), 12);
  EXPECT_EQ(by_name.at("core_throttle_total_time_ms"), 160);
  update_throttle_counters(sys, counters);
  EXPECT_EQ(counters[0].before, counters[0].after);  // nothing changed in a recorded tree
}

TEST(ThermalState, LaptopSensorsZonesAndHybridClocks) {
  SysTree sys(fixture("intel-laptop"));
  Thermal t;
  read_thermal_state(sys, t);
  EXPECT_EQ(t.zones.size(), 3u);
  EXPECT_EQ(t.zones[2].trips.size(), 3u);
  EXPECT_EQ(t.sensors.size(), 3u);  // coretemp package + core 0, nvme composite
  ASSERT_EQ(t.cpufreq.size(), 16u);
  EXPECT_DOUBLE_EQ(*t.cpufreq[0].max_mhz.value, 4700.0);
  EXPECT_DOUBLE_EQ(*t.cpufreq[15].max_mhz.value, 3400.0);
}

TEST(ThermalState, VirtualMachineHasNone) {
  SysTree sys(fixture("vm"));
  Thermal t;
  read_thermal_state(sys, t);
  EXPECT_TRUE(t.zones.empty());
  EXPECT_TRUE(t.cpufreq.empty());
  EXPECT_TRUE(t.sensors.empty());
  EXPECT_TRUE(read_throttle_counters(sys).empty());
  EXPECT_FALSE(mean_cur_mhz(sys).has_value());
}

std::vector<SustainSample> trace(const std::vector<double>& gflops, std::optional<double> mhz0,
                                 std::optional<double> mhz1) {
  std::vector<SustainSample> out;
  for (size_t i = 0; i < gflops.size(); ++i) {
    std::optional<double> mhz;
    if (mhz0) mhz = i < gflops.size() / 2 ? *mhz0 : *mhz1;
    out.push_back({0.5 * static_cast<double>(i + 1), gflops[i], std::nullopt, mhz});
  }
  return out;
}

TEST(Sustained, ThrottlingBoardDropsAndSaysWhen) {
  // 20 windows of 0.5 s: 10 GFLOP/s for 4 s, then 7 GFLOP/s; the clock falls 1800 -> 1500.
  std::vector<double> g(20, 10.0);
  for (size_t i = 8; i < g.size(); ++i) g[i] = 7.0;
  Thermal t;
  analyze_sustained(trace(g, 1800.0, 1500.0), "gemm q4_0", false, t);
  EXPECT_DOUBLE_EQ(*t.burst_gflops.value, 10.0);
  EXPECT_DOUBLE_EQ(*t.sustained_gflops.value, 7.0);
  EXPECT_EQ(t.sustained_gflops.unit, "GFLOP/s");
  EXPECT_NEAR(*t.freq_drop_pct.value, 100.0 * 300 / 1800, 1e-9);
  ASSERT_TRUE(t.time_to_throttle_s.available());
  EXPECT_DOUBLE_EQ(*t.time_to_throttle_s.value, 4.0);  // window 9 starts at 4.0 s
  EXPECT_EQ(t.time_to_throttle_s.provenance, Provenance::kDerived);
  EXPECT_DOUBLE_EQ(*t.sustain_s.value, 10.0);
}

TEST(Sustained, SteadyMachineDoesNotThrottle) {
  std::vector<double> g = {10, 10.4, 9.8, 10.1, 9.9, 10.2, 10.0, 9.7, 10.3, 10.0, 9.9, 10.1};
  Thermal t;
  analyze_sustained(trace(g, 2000.0, 2000.0), "gemm", false, t);
  EXPECT_FALSE(t.time_to_throttle_s.available());
  EXPECT_EQ(t.time_to_throttle_s.reason, Reason::kNotPresent);
  EXPECT_DOUBLE_EQ(*t.freq_drop_pct.value, 0.0);
}

TEST(Sustained, OtherProcessesTakingTheCpuIsNotThrottling) {
  // From window 8 on another process takes 30% of the CPU: GFLOP/s fall, GFLOP per
  // CPU-second does not.
  std::vector<SustainSample> s;
  for (int i = 0; i < 20; ++i) {
    const double share = i < 8 ? 1.0 : 0.7;
    s.push_back({0.5 * (i + 1), 10.0 * share, 5.0, std::nullopt});
  }
  Thermal t;
  analyze_sustained(s, "gemm", true, t);
  EXPECT_DOUBLE_EQ(*t.sustained_gflops.value, 7.0);  // what the user got
  EXPECT_FALSE(t.time_to_throttle_s.available());
  EXPECT_NE(t.time_to_throttle_s.source.find("GFLOP per CPU-second"), std::string::npos);
}

TEST(Sustained, ThrottlingShowsInGflopPerCpuSecond) {
  std::vector<SustainSample> s;
  for (int i = 0; i < 20; ++i) {
    const double speed = i < 12 ? 1.0 : 0.75;  // the clock drops 25% at 6 s
    s.push_back({0.5 * (i + 1), 10.0 * speed, 5.0 * speed, std::nullopt});
  }
  Thermal t;
  analyze_sustained(s, "gemm", false, t);
  ASSERT_TRUE(t.time_to_throttle_s.available());
  EXPECT_DOUBLE_EQ(*t.time_to_throttle_s.value, 6.0);
}

TEST(Sustained, OneSlowWindowIsNoise) {
  std::vector<double> g(16, 10.0);
  g[5] = 5.0;  // another process took the CPU for a moment
  Thermal t;
  analyze_sustained(trace(g, std::nullopt, std::nullopt), "gemm", false, t);
  EXPECT_FALSE(t.time_to_throttle_s.available());
}

TEST(Sustained, NoCpufreqInAVmIsVirtualized) {
  Thermal t;
  analyze_sustained(trace(std::vector<double>(8, 3.0), std::nullopt, std::nullopt), "gemm",
                    /*virtualized=*/true, t);
  EXPECT_EQ(t.freq_drop_pct.reason, Reason::kVirtualized);
  EXPECT_TRUE(t.burst_gflops.available());
}

TEST(Sustained, TooShortIsUnavailable) {
  Thermal t;
  analyze_sustained(trace({5, 5}, std::nullopt, std::nullopt), "gemm", false, t);
  EXPECT_FALSE(t.burst_gflops.available());
  EXPECT_EQ(t.burst_gflops.reason, Reason::kUnsupported);
}

TEST(Sustained, RunnerCallsTheWorkForEachWindow) {
  SysTree sys(fixture("rpi4b"));
  FakeClock clock;
  int calls = 0;
  // Each call "takes" 0.125 s of fake time (exact in binary) and does 1 GFLOP: 8 GFLOP/s.
  const auto samples = run_sustained(
      2.0, 0.5,
      [&] {
        ++calls;
        clock.sleep_until_s(clock.now_s() + 0.125);
        return 1.0;
      },
      sys, clock, nullptr);
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_DOUBLE_EQ(samples[0].gflops, 8.0);
  EXPECT_EQ(samples[0].mhz, 1800.0);
  EXPECT_EQ(calls, 16);
}

}  // namespace
}  // namespace strata::profiles
