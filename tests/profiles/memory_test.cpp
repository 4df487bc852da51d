#include <gtest/gtest.h>
#include <sched.h>

#include "fixtures.h"
#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

using testing::fixture;

TEST(MemoryCapacity, CgroupV2LimitOnTheWayToTheRootCapsBoth) {
  SysTree sys(fixture("rpi4b"));
  Memory m;
  probe_memory_capacity(sys, m);
  // memory.max 3 GiB on user-1000.slice (the session scope below it says "max").
  EXPECT_EQ(*m.total_bytes.value, 3221225472.0);
  EXPECT_EQ(m.total_bytes.unit, "bytes");
  EXPECT_EQ(m.total_bytes.provenance, Provenance::kMeasured);
  EXPECT_NE(m.total_bytes.source.find("user-1000.slice/memory.max"), std::string::npos);
  // Room in the cgroup (3 GiB - 512 MiB) is below MemAvailable (3.25 GiB).
  EXPECT_EQ(*m.available_bytes.value, 3221225472.0 - 536870912.0);
  EXPECT_EQ(m.cgroup_limit_source, "/sys/fs/cgroup/user.slice/user-1000.slice/memory.max");
}

TEST(MemoryCapacity, CgroupV1ContainerLimit) {
  SysTree sys(fixture("vm"));
  Memory m;
  probe_memory_capacity(sys, m);
  EXPECT_EQ(*m.total_bytes.value, 2147483648.0);
  EXPECT_EQ(*m.available_bytes.value, 2147483648.0 - 104857600.0);
  EXPECT_NE(m.total_bytes.source.find("memory/docker/3f2a/memory.limit_in_bytes"),
            std::string::npos);
}

TEST(MemoryCapacity, NoLimitGivesMeminfo) {
  SysTree sys(fixture("intel-laptop"));
  Memory m;
  probe_memory_capacity(sys, m);
  EXPECT_EQ(*m.total_bytes.value, 32498784.0 * 1024);
  EXPECT_EQ(*m.available_bytes.value, 27262976.0 * 1024);
  EXPECT_EQ(m.total_bytes.source, "/proc/meminfo MemTotal");
  EXPECT_FALSE(m.cgroup_limit_source.has_value());
}

TEST(MemoryCapacity, UnreadableMeminfoIsUnavailableWithTheReason) {
  SysTree sys(fixture("intel-laptop"));
  sys.deny("/proc/meminfo");
  Memory m;
  probe_memory_capacity(sys, m);
  EXPECT_FALSE(m.total_bytes.available());
  EXPECT_EQ(m.total_bytes.provenance, Provenance::kUnavailable);
  EXPECT_EQ(m.total_bytes.reason, Reason::kPermissionDenied);
}

TEST(MemoryBandwidth, ArraysAreSixteenTimesTheLastLevelCacheAndAtLeast512MiB) {
  Device d;
  d.caches["l2_bytes"] = read_figure(1 << 20, "bytes", "x");
  d.caches["l3_bytes"] = read_figure(32 << 20, "bytes", "x");
  Memory cap;
  cap.available_bytes = read_figure(16.0 * (1 << 30), "bytes", "x");
  EXPECT_EQ(bandwidth_array_bytes(d, cap, false), int64_t{512} << 20);
  d.caches["l3_bytes"] = read_figure(64 << 20, "bytes", "x");
  EXPECT_EQ(bandwidth_array_bytes(d, cap, false), int64_t{1} << 30);
  cap.available_bytes = read_figure(2.0 * (1 << 30), "bytes", "x");  // a small board
  EXPECT_EQ(bandwidth_array_bytes(d, cap, false), int64_t{256} << 20);
}

// Regression: --quick halved the full size, which on a host with a 480 MiB L3 (and 23 GiB
// available) gave arrays of 1.45 GiB, 3x the cache, under the 4x the profile promises.
TEST(MemoryBandwidth, QuickArraysAreStillFourTimesTheLastLevelCache) {
  Device d;
  d.caches["l3_bytes"] = read_figure(480.0 * (1 << 20), "bytes", "x");
  Memory cap;
  cap.available_bytes = read_figure(23.2 * (1 << 30), "bytes", "x");
  EXPECT_EQ(bandwidth_array_bytes(d, cap, true), int64_t{4} * (480 << 20));
  EXPECT_EQ(bandwidth_array_bytes(d, cap, false), static_cast<int64_t>(23.2 * (1 << 30) / 8));
  d.caches["l3_bytes"] = read_figure(32 << 20, "bytes", "x");
  EXPECT_EQ(bandwidth_array_bytes(d, cap, true), int64_t{256} << 20);
}

TEST(ColdRegion, FaultsInEverythingWithoutADeadline) {
  const Result<ColdRegion> r = fault_in_cold_region(int64_t{9} << 20, 2, 0, 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->touched_bytes, int64_t{9} << 20);
  EXPECT_EQ(r->buffer.size(), int64_t{9} << 20);
  // Sizes come from an eighth of the available memory: any byte count, rounded up to a page.
  const Result<ColdRegion> odd = fault_in_cold_region(1'000'003, 1, 0, 0);
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->touched_bytes, 1'003'520);
  EXPECT_EQ(reinterpret_cast<const double*>(odd->buffer.data())[1'003'520 / 8 - 1], kColdFill);
}

TEST(ColdRegion, StopsAtTheDeadlineButNotBelowTheMinimum) {
  // A deadline already passed: every thread stops after its first 2 MiB step past the minimum.
  const Result<ColdRegion> r = fault_in_cold_region(int64_t{64} << 20, 2, 1e-12, int64_t{5} << 20);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_GE(r->touched_bytes, int64_t{6} << 20);   // the minimum rounded up to whole steps
  EXPECT_LE(r->touched_bytes, int64_t{10} << 20);  // and one more step per thread at most
  EXPECT_EQ(r->touched_bytes % (int64_t{2} << 20), 0);
}

TEST(MemoryBandwidth, ArraysLentByTheCallerAreUsed) {
  const Result<ColdRegion> cold = fault_in_cold_region(3 * (int64_t{8} << 20), 2, 0, 0);
  ASSERT_TRUE(cold.ok());
  BandwidthOptions opt;
  opt.array_bytes = int64_t{8} << 20;
  opt.reps = 3;
  opt.threads_all = 2;
  opt.arrays = cold->buffer.data();
  Memory m;
  probe_memory_bandwidth(opt, m, nullptr);
  EXPECT_TRUE(m.triad_gb_per_s.threads_all.available());
  // The probe used the lent pages as they came (a = b = c = kColdFill): its triad
  // (a = b + 0.5 c) swept region 4 of a (of 8 regions of 131072 doubles) in each pass's
  // warm-up round; no loop writes region 0 of a.
  const auto* a = reinterpret_cast<const double*>(cold->buffer.data());
  EXPECT_EQ(a[0], kColdFill);
  EXPECT_GE(a[4 * 131072 + 7], 1.5 * kColdFill);
}

TEST(MemoryBandwidth, EveryFigureIsMeasuredWithStats) {
  BandwidthOptions opt;
  opt.array_bytes = 8 << 20;
  opt.reps = 3;
  opt.threads_all = 2;
  Memory m;
  int steps = 0;
  probe_memory_bandwidth(opt, m, [&](const std::string&) { ++steps; });
  EXPECT_EQ(steps, 2);  // the 3 kernels in turn, with {1, all} threads
  EXPECT_EQ(m.array_bytes, 8 << 20);
  for (const ThreadFigures* tf : {&m.read_gb_per_s, &m.copy_gb_per_s, &m.triad_gb_per_s}) {
    for (const Figure* f : {&tf->threads_1, &tf->threads_all}) {
      ASSERT_TRUE(f->available());
      EXPECT_GT(*f->value, 0);
      EXPECT_EQ(f->unit, "GB/s");
      EXPECT_EQ(f->provenance, Provenance::kMeasured);
      ASSERT_TRUE(f->stats.has_value());
      EXPECT_EQ(f->stats->n, 3);
      EXPECT_LE(f->stats->p10, f->stats->median);
      EXPECT_LE(f->stats->median, f->stats->p90);
      EXPECT_EQ(*f->value, f->stats->p90);  // a peak rate: interference only slows reps
    }
  }
  EXPECT_NE(m.triad_gb_per_s.threads_all.source.find("2 threads"), std::string::npos);
  EXPECT_NE(m.triad_gb_per_s.threads_all.source.find("8 regions of 1.00 MiB"), std::string::npos);
}

TEST(MemoryBandwidth, ArrayBytesAreWholeRegions) {
  BandwidthOptions opt;
  opt.array_bytes = (3 << 20) + 16;  // two doubles more than 3 regions of 1 MiB
  opt.regions = 3;
  opt.reps = 1;
  Memory m;
  probe_memory_bandwidth(opt, m, nullptr);
  EXPECT_EQ(m.array_bytes, 3 << 20);
  EXPECT_NE(m.read_gb_per_s.threads_1.source.find("3 regions of 1.00 MiB"), std::string::npos);
}

TEST(MemoryBandwidth, PinningEndsWithTheProbe) {
  cpu_set_t before;
  CPU_ZERO(&before);
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  BandwidthOptions opt;
  opt.array_bytes = 2 << 20;
  opt.reps = 1;
  opt.threads_all = 2;
  Memory m;
  probe_memory_bandwidth(opt, m, nullptr);
  cpu_set_t after;
  CPU_ZERO(&after);
  ASSERT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&before, &after));  // the caller may run anywhere it could before
}

}  // namespace
}  // namespace strata::profiles
