#include <gtest/gtest.h>

#include <filesystem>

#include "strata/profiles/profile.h"

namespace strata::profiles {
namespace {

std::vector<std::string> device_files() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(STRATA_DEVICES_DIR)) {
    if (e.path().extension() == ".json") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A figure a reference profile gives the planner: a value from a named public source.
void expect_sourced(const Figure& f, const std::string& what) {
  ASSERT_TRUE(f.available()) << what;
  EXPECT_GT(*f.value, 0) << what;
  EXPECT_TRUE(f.provenance == Provenance::kSpec || f.provenance == Provenance::kEstimated)
      << what << ": " << provenance_name(f.provenance);
  EXPECT_GT(f.source.size(), 10u) << what << ": the source must name a document";
  EXPECT_FALSE(f.unit.empty()) << what;
}

TEST(ReferenceDevices, AtLeastFiveBoards) { EXPECT_GE(device_files().size(), 5u); }

TEST(ReferenceDevices, EachHasEveryFigureThePlannerReads) {
  for (const std::string& path : device_files()) {
    SCOPED_TRACE(path);
    const Result<Profile> r = load_profile(path);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const Profile& p = *r;
    EXPECT_FALSE(p.name.empty());
    EXPECT_EQ(std::filesystem::path(path).stem().string(), p.name);
    EXPECT_FALSE(p.device.board_model.value_or("").empty());
    expect_sourced(p.memory.total_bytes, "memory.total_bytes");
    expect_sourced(p.memory.available_bytes, "memory.available_bytes");
    EXPECT_LE(*p.memory.available_bytes.value, *p.memory.total_bytes.value);
    expect_sourced(p.memory.read_gb_per_s.threads_all, "memory.read_gb_per_s.threads_all");
    for (const char* dtype : {"f32", "f16", "bf16", "q8_0", "q4_0"}) {
      ASSERT_EQ(p.compute.gemv_gflops.count(dtype), 1u) << dtype;
      ASSERT_EQ(p.compute.gemm_gflops.count(dtype), 1u) << dtype;
      expect_sourced(p.compute.gemv_gflops.at(dtype).threads_all,
                     std::string("compute.gemv_gflops.") + dtype + ".threads_all");
      expect_sourced(p.compute.gemm_gflops.at(dtype).threads_all,
                     std::string("compute.gemm_gflops.") + dtype + ".threads_all");
    }
    EXPECT_GT(p.compute.threads_all, 0);
    for (const char* chunk : {"4096", "65536", "1048576", "4194304"}) {
      ASSERT_EQ(p.storage.seq_read_mb_per_s.count(chunk), 1u) << chunk;
      expect_sourced(p.storage.seq_read_mb_per_s.at(chunk),
                     std::string("storage.seq_read_mb_per_s.") + chunk);
    }
    expect_sourced(p.power.idle_watts, "power.idle_watts");
    expect_sourced(p.power.load_watts, "power.load_watts");
    EXPECT_LT(*p.power.idle_watts.value, *p.power.load_watts.value);
    EXPECT_NE(p.power.boundary, Boundary::kNone);
    // Reference figures are never dressed up as measurements.
    EXPECT_EQ(profile_to_json(p).find("\"measured\""), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::profiles
