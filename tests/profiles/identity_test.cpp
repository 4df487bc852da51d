#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>

#include "fixtures.h"
#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

using testing::fixture;

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(Identity, RaspberryPi4FromCpuinfoAndDeviceTree) {
  SysTree sys(fixture("rpi4b"));
  const Device d = probe_device(sys);
  EXPECT_EQ(d.arch, "aarch64");
  EXPECT_EQ(d.kernel, "6.6.31+rpt-rpi-v8");
  EXPECT_EQ(d.cpu.vendor, "ARM");
  EXPECT_EQ(d.cpu.brand, "Cortex-A72");
  EXPECT_EQ(d.cpu.source, "/proc/cpuinfo");  // libcpuid is never used on a recorded tree
  EXPECT_EQ(d.board_model, "Raspberry Pi 4 Model B Rev 1.4");
  EXPECT_EQ(d.board_model_source, "/proc/device-tree/model");
  EXPECT_EQ(*d.cores.value, 4);
  EXPECT_EQ(d.cores.unit, "count");
  EXPECT_EQ(d.cores.provenance, Provenance::kMeasured);
  EXPECT_EQ(*d.logical_cpus.value, 4);
  EXPECT_EQ(*d.caches.at("l1d_bytes").value, 32 * 1024);
  EXPECT_EQ(*d.caches.at("l2_bytes").value, 1024 * 1024);
  EXPECT_EQ(d.caches.at("l2_bytes").source, "/sys/devices/system/cpu/cpu0/cache/index2/size");
  EXPECT_TRUE(has(d.isa, "neon"));
  EXPECT_FALSE(has(d.isa, "dotprod"));  // the A72 has no SDOT
  EXPECT_FALSE(d.virtualized);
  ASSERT_EQ(d.core_types.size(), 1u);
  EXPECT_EQ(d.core_types[0].n_logical_cpus, 4);
}

TEST(Identity, JetsonOrinHasDotprodAndTwoClusters) {
  SysTree sys(fixture("jetson-orin-nano"));
  const Device d = probe_device(sys);
  EXPECT_EQ(d.cpu.brand, "Cortex-A78AE");
  EXPECT_EQ(d.board_model, "NVIDIA Jetson Orin Nano Developer Kit");
  EXPECT_TRUE(has(d.isa, "neon"));
  EXPECT_TRUE(has(d.isa, "dotprod"));
  EXPECT_TRUE(has(d.isa, "fp16"));
  EXPECT_EQ(*d.cores.value, 6);  // core ids repeat across the two clusters
  EXPECT_EQ(*d.caches.at("l3_bytes").value, 2 * 1024 * 1024);
  EXPECT_FALSE(d.virtualized);
}

TEST(Identity, IntelHybridLaptop) {
  SysTree sys(fixture("intel-laptop"));
  const Device d = probe_device(sys);
  EXPECT_EQ(d.arch, "x86_64");
  EXPECT_EQ(d.cpu.vendor, "GenuineIntel");
  EXPECT_EQ(d.cpu.brand, "12th Gen Intel(R) Core(TM) i7-1260P");
  EXPECT_EQ(d.cpu.family, 6);
  EXPECT_EQ(d.cpu.model, 154);
  EXPECT_EQ(d.cpu.stepping, 3);
  EXPECT_TRUE(has(d.isa, "avx2"));
  EXPECT_TRUE(has(d.isa, "avx_vnni"));
  EXPECT_FALSE(has(d.isa, "avx512f"));
  EXPECT_EQ(*d.logical_cpus.value, 16);
  EXPECT_EQ(*d.cores.value, 12);  // 4 P-cores with 2 threads, 8 E-cores
  ASSERT_EQ(d.core_types.size(), 2u);
  EXPECT_EQ(d.core_types[0].purpose, "performance");
  EXPECT_EQ(d.core_types[0].n_logical_cpus, 8);
  EXPECT_EQ(d.core_types[1].purpose, "efficiency");
  EXPECT_EQ(d.core_types[1].n_logical_cpus, 8);
  EXPECT_EQ(d.board_model, "Dell Inc. XPS 13 9320");
  EXPECT_FALSE(d.virtualized);
  EXPECT_EQ(*d.caches.at("l3_bytes").value, 18 * 1024 * 1024);
}

TEST(Identity, VirtualMachineIsRecognisedFromFlagAndDmi) {
  SysTree sys(fixture("vm"));
  const Device d = probe_device(sys);
  EXPECT_TRUE(d.virtualized);
  EXPECT_EQ(d.hypervisor, "QEMU");
  EXPECT_NE(d.virtualization_source.find("/proc/cpuinfo flag 'hypervisor'"), std::string::npos);
  EXPECT_NE(d.virtualization_source.find("sys_vendor"), std::string::npos);
  EXPECT_TRUE(has(d.isa, "avx512f"));
  EXPECT_TRUE(has(d.isa, "avx512_vnni"));
}

TEST(Identity, LiveMachineIsIdentified) {
  SysTree sys("/");
  const Device d = probe_device(sys);
  EXPECT_FALSE(d.arch.empty());
  EXPECT_FALSE(d.cpu.source.empty());
  ASSERT_TRUE(d.logical_cpus.available());
  EXPECT_GE(*d.logical_cpus.value, 1);
}

// libcpuid visits every CPU by moving the calling thread; the probe must put it back, or every
// thread the profiler starts afterwards shares the last CPU visited.
TEST(Identity, LiveProbeLeavesTheThreadsAffinityAsItWas) {
  cpu_set_t before;
  CPU_ZERO(&before);
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  SysTree sys("/");
  (void)probe_device(sys);
  cpu_set_t after;
  CPU_ZERO(&after);
  ASSERT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&before, &after))
      << "CPUs allowed before " << CPU_COUNT(&before) << ", after " << CPU_COUNT(&after);
}

}  // namespace
}  // namespace strata::profiles
