#include <gtest/gtest.h>
#include <algorithm>

#include <filesystem>

#include "fixtures.h"
#include "strata/base/io.h"
#include "strata/profiles/profiler.h"

namespace strata::profiles {
namespace {

using testing::fixture;

// A whole quick run with the VM tree standing in for /sys and /proc: the recorded parts come
// from the tree, the measured parts from this machine, and the result survives both codecs.
TEST(Profiler, QuickRunOnARecordedVm) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("strata-profiler-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ProfileOptions opt;
  opt.quick = true;
  opt.sustain_s = 0;  // no sustained load in a unit test
  opt.sysfs_root = fixture("vm");
  opt.storage_path = dir.string();
  opt.name = "vm-test";
  std::vector<std::string> steps;
  const Result<Profile> r = run_profile(opt, [&](const std::string& s) { steps.push_back(s); });
  const bool left_empty = std::filesystem::is_empty(dir);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Profile& p = *r;
  EXPECT_TRUE(left_empty);
  EXPECT_FALSE(steps.empty());
  EXPECT_EQ(p.name, "vm-test");
  EXPECT_EQ(p.schema, kProfileSchema);
  EXPECT_TRUE(p.device.virtualized);
  EXPECT_EQ(*p.memory.total_bytes.value, 2147483648.0);  // the tree's cgroup v1 limit
  EXPECT_EQ(p.power.boundary, Boundary::kNone);
  EXPECT_EQ(p.power.idle_watts.reason, Reason::kVirtualized);
  EXPECT_FALSE(p.notes.empty());

  // Every path the planner reads exists.
  EXPECT_TRUE(p.memory.read_gb_per_s.threads_all.available());
  EXPECT_TRUE(p.memory.triad_gb_per_s.threads_all.available());
  EXPECT_EQ(p.storage.seq_read_mb_per_s.size(), 11u);
  EXPECT_TRUE(p.storage.seq_read_mb_per_s.at("4194304").available());
  for (const char* dtype : {"f32", "f16", "bf16", "q8_0", "q4_0"}) {
    ASSERT_EQ(p.compute.gemv_gflops.count(dtype), 1u) << dtype;
    ASSERT_EQ(p.compute.gemm_gflops.count(dtype), 1u) << dtype;
    for (const auto* table : {&p.compute.gemv_gflops, &p.compute.gemm_gflops}) {
      const Figure& f = table->at(dtype).threads_all;
      ASSERT_TRUE(f.available()) << dtype;
      EXPECT_GT(*f.value, 0) << dtype;
      EXPECT_EQ(f.unit, "GFLOP/s");
      EXPECT_GE(f.stats->n, 5) << dtype;
    }
  }
  const Result<Profile> back = profile_from_json(profile_to_json(p));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, p);
  EXPECT_FALSE(profile_summary(p).empty());
}

// Regression: bandwidth arrays were sized from the recorded board's 1 MiB L2, so this
// machine's 32 MiB L3 served the "memory" bandwidth from cache.
TEST(Profiler, RecordedTreeDoesNotSizeTheHostsMeasurements) {
  SysTree live("/");
  const Device host = probe_device(live);
  Memory host_memory;
  probe_memory_capacity(live, host_memory);
  ProfileOptions opt;
  opt.quick = true;
  opt.sustain_s = 0;
  opt.sysfs_root = fixture("rpi4b");
  opt.storage_path = std::filesystem::temp_directory_path().string();
  const Result<Profile> r = run_profile(opt, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // The probe rounds down to 8 whole regions of doubles. --quick may stop faulting in the
  // host's size at its deadline, and then says so naming the host's size.
  const int64_t want = bandwidth_array_bytes(host, host_memory, true);
  if (r->memory.array_bytes != want / 64 * 64) {
    EXPECT_LT(r->memory.array_bytes, want);
    const std::string note = "not " + format_bytes(static_cast<double>(want)) + ":";
    EXPECT_TRUE(
        std::any_of(r->notes.begin(), r->notes.end(),
                    [&](const std::string& n) { return n.find(note) != std::string::npos; }))
        << "no note naming the host's array size " << note;
  }
  EXPECT_EQ(r->device.board_model, "Raspberry Pi 4 Model B Rev 1.4");  // identity: the tree's
}

TEST(Profiler, BadOptionsAreInvalidArguments) {
  ProfileOptions opt;
  opt.quick = true;
  opt.storage_path = "/no/such/folder";
  EXPECT_EQ(run_profile(opt, nullptr).status().code(), StatusCode::kInvalidArgument);
  opt.storage_path = "";
  opt.model_path = "/no/such/model.gguf";
  EXPECT_EQ(run_profile(opt, nullptr).status().code(), StatusCode::kInvalidArgument);
  opt.model_path = "";
  opt.sysfs_root = "/no/such/tree";
  EXPECT_EQ(run_profile(opt, nullptr).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::profiles
