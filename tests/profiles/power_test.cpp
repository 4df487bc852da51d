#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fixtures.h"
#include "strata/profiles/power.h"

namespace strata::profiles {
namespace {

using testing::FakeClock;
using testing::fixture;

constexpr uint64_t kRange = 262143328850;  // a typical RAPL max_energy_range_uj

TEST(EnergyDelta, PlainIncrease) {
  EXPECT_EQ(energy_delta_uj(1000, 1500, kRange), 500.0);
  EXPECT_EQ(energy_delta_uj(7, 7, kRange), 0.0);
}

TEST(EnergyDelta, WrapUsesTheZonesRange) {
  // 1000 µJ to the top of the range, then 250 µJ past zero.
  EXPECT_EQ(energy_delta_uj(kRange - 1000, 250, kRange), 1250.0);
  // Another zone with another range wraps at its own value.
  EXPECT_EQ(energy_delta_uj(65000, 1000, 65536), 1536.0);
}

TEST(EnergyDelta, DecreaseWithoutARangeIsAResetNotEnergy) {
  EXPECT_FALSE(energy_delta_uj(5000, 10, 0).has_value());
  // A reading above the stated range cannot be a wrap either.
  EXPECT_FALSE(energy_delta_uj(kRange + 5, 10, kRange).has_value());
}

TEST(Trapezoid, ConstantPower) {
  EXPECT_DOUBLE_EQ(trapezoid_joules({{0, 4}, {0.5, 4}, {2, 4}}), 8.0);
}

TEST(Trapezoid, LinearRampIsExact) {
  // 2 W rising to 6 W over 2 s: 8 J; the rule is exact for straight lines at any spacing.
  EXPECT_DOUBLE_EQ(trapezoid_joules({{10, 2}, {10.5, 3}, {12, 6}}), 8.0);
}

TEST(Trapezoid, FewerThanTwoSamplesIsZero) {
  EXPECT_EQ(trapezoid_joules({}), 0.0);
  EXPECT_EQ(trapezoid_joules({{1, 100}}), 0.0);
}

TEST(Trapezoid, UnevenSpacing) {
  // (1+3)/2*1 + (3+2)/2*0.2 = 2 + 0.5
  EXPECT_DOUBLE_EQ(trapezoid_joules({{0, 1}, {1, 3}, {1.2, 2}}), 2.5);
}

const PowerSource* find_source(const Power& p, const std::string& name) {
  for (const auto& s : p.sources) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

TEST(PowerFixtures, JetsonVddInRailIsTheModuleTotal) {
  SysTree sys(fixture("jetson-orin-nano"));
  FakeClock clock;
  PowerMeter meter(sys, clock);
  ASSERT_EQ(meter.channels().size(), 3u);  // in1..in3 with curr1..3; shunt in4/in7 ignored
  const PowerWindow idle = meter.measure(1.0, 10);
  EXPECT_DOUBLE_EQ(idle.seconds, 1.0);
  EXPECT_NEAR(idle.achieved_hz, 10.0, 1e-9);
  Power p;
  fill_power(meter, idle, std::nullopt, 0, false, p);
  EXPECT_EQ(p.boundary, Boundary::kModule);
  // 5 V x (1.0 .. 2.0 A) rising linearly over 1 s: the trapezoid gives exactly 7.5 J.
  ASSERT_TRUE(p.idle_watts.available());
  EXPECT_NEAR(*p.idle_watts.value, 7.5, 1e-9);
  EXPECT_EQ(p.idle_watts.unit, "W");
  EXPECT_EQ(p.idle_watts.provenance, Provenance::kMeasured);
  EXPECT_EQ(p.idle_watts.stats->n, 11);
  EXPECT_NE(p.idle_watts.source.find("in1_input x "), std::string::npos);
  const PowerSource* cpu = find_source(p, "VDD_CPU_GPU_CV");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->boundary, Boundary::kRail);
  EXPECT_NEAR(*cpu->idle_watts.value, 2.0, 1e-9);  // 5 V x 0.4 A
  // No load window was taken: unavailable, not zero.
  EXPECT_FALSE(p.load_watts.available());
  EXPECT_FALSE(p.joules_per_gflop.available());
}

TEST(PowerFixtures, LaptopRaplWrapsDeniedZonesAndBattery) {
  SysTree sys(fixture("intel-laptop"));
  FakeClock clock;
  PowerMeter meter(sys, clock);
  const PowerWindow idle = meter.measure(1.0, 10);
  Power p;
  fill_power(meter, idle, idle, 20.0, false, p);
  const PowerSource* pkg = find_source(p, "package-0");
  ASSERT_NE(pkg, nullptr);
  EXPECT_EQ(pkg->kind, "rapl");
  EXPECT_EQ(pkg->boundary, Boundary::kPackage);
  // 0.5 J every 0.1 s across the counter's wrap: 5 W, not a negative or huge figure.
  ASSERT_TRUE(pkg->idle_watts.available()) << pkg->idle_watts.source;
  EXPECT_NEAR(*pkg->idle_watts.value, 5.0, 1e-9);
  EXPECT_NEAR(pkg->idle_watts.stats->p10, 5.0, 1e-9);
  EXPECT_NEAR(pkg->idle_watts.stats->p90, 5.0, 1e-9);
  for (const char* denied : {"core", "psys"}) {
    const PowerSource* s = find_source(p, denied);
    ASSERT_NE(s, nullptr) << denied;
    EXPECT_FALSE(s->idle_watts.available());
    EXPECT_EQ(s->idle_watts.provenance, Provenance::kUnavailable);
    EXPECT_EQ(s->idle_watts.reason, Reason::kPermissionDenied);
  }
  EXPECT_EQ(find_source(p, "intel-rapl-mmio:0"), nullptr);  // the same package, counted once
  // The discharging battery is the widest readable boundary: 15.4 V x 0.65 A.
  EXPECT_EQ(p.boundary, Boundary::kSystem);
  EXPECT_NEAR(*p.idle_watts.value, 10.01, 1e-9);
  // joules per GFLOP from the load window (here the same 1 s of 10.01 W) over 20 GFLOP.
  ASSERT_TRUE(p.joules_per_gflop.available());
  EXPECT_NEAR(*p.joules_per_gflop.value, 10.01 / 20.0, 1e-9);
  EXPECT_EQ(p.joules_per_gflop.provenance, Provenance::kDerived);
}

TEST(PowerFixtures, AllRaplDeniedAndNoBatteryIsPermissionDenied) {
  SysTree sys(fixture("intel-laptop"));
  sys.deny("/sys/class/powercap/intel-rapl:0/energy_uj");
  sys.deny("/sys/class/power_supply/BAT0/voltage_now");
  FakeClock clock;
  PowerMeter meter(sys, clock);
  EXPECT_FALSE(meter.any_readable());
  Power p;
  fill_power(meter, meter.measure(0.5, 10), std::nullopt, 0, false, p);
  EXPECT_EQ(p.boundary, Boundary::kNone);
  EXPECT_FALSE(p.idle_watts.value.has_value());
  EXPECT_EQ(p.idle_watts.reason, Reason::kPermissionDenied);
  EXPECT_EQ(p.load_watts.reason, Reason::kPermissionDenied);
}

TEST(PowerFixtures, ChargingBatteryIsNotTheSystemsDraw) {
  // A one-file tree made here: a laptop on its charger.
  const auto root =
      std::filesystem::temp_directory_path() / ("strata-power-test-" + std::to_string(::getpid()));
  const auto bat = root / "sys/class/power_supply/BAT0";
  std::filesystem::create_directories(bat);
  const auto put = [&](const char* name, const char* text) {
    std::ofstream(bat / name) << text << "\n";
  };
  put("type", "Battery");
  put("status", "Charging");
  put("power_now", "21000000");
  SysTree sys(root.string());
  FakeClock clock;
  PowerMeter meter(sys, clock);
  ASSERT_EQ(meter.channels().size(), 1u);
  EXPECT_EQ(meter.channels()[0].reason, Reason::kUnsupported);
  EXPECT_NE(meter.channels()[0].reason_detail.find("'Charging'"), std::string::npos);
  Power p;
  fill_power(meter, meter.measure(0.5, 10), std::nullopt, 0, false, p);
  std::filesystem::remove_all(root);
  EXPECT_FALSE(p.idle_watts.available());  // 21 W of charging is not what the system draws
  EXPECT_EQ(p.idle_watts.reason, Reason::kNotPresent);
  ASSERT_EQ(p.sources.size(), 1u);
  EXPECT_EQ(p.sources[0].idle_watts.reason, Reason::kUnsupported);
}

TEST(PowerFixtures, VirtualMachineHasNothingAndSaysWhy) {
  SysTree sys(fixture("vm"));
  FakeClock clock;
  PowerMeter meter(sys, clock);
  EXPECT_TRUE(meter.channels().empty());
  Power p;
  fill_power(meter, std::nullopt, std::nullopt, 0, /*virtualized=*/true, p);
  EXPECT_EQ(p.boundary, Boundary::kNone);
  EXPECT_EQ(p.idle_watts.provenance, Provenance::kUnavailable);
  EXPECT_EQ(p.idle_watts.reason, Reason::kVirtualized);
  EXPECT_EQ(p.joules_per_gflop.reason, Reason::kVirtualized);
  EXPECT_TRUE(p.sources.empty());
}

TEST(PowerFixtures, BareBoardWithoutSensorsIsNotPresent) {
  SysTree sys(fixture("rpi4b"));
  FakeClock clock;
  PowerMeter meter(sys, clock);
  EXPECT_TRUE(meter.channels().empty());
  Power p;
  fill_power(meter, std::nullopt, std::nullopt, 0, false, p);
  EXPECT_EQ(p.idle_watts.reason, Reason::kNotPresent);
}

}  // namespace
}  // namespace strata::profiles
