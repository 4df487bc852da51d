#include <gtest/gtest.h>

#include "strata/profiles/profile.h"

namespace strata::profiles {
namespace {

// A profile with every kind of field set to something other than its default.
Profile sample_profile() {
  Profile p;
  p.name = "rpi5-8gb";
  p.created = "2026-11-22T10:00:00Z";
  p.generator = "test";
  p.notes = {"one", "two"};
  p.device.arch = "aarch64";
  p.device.cpu = {"ARM", "Cortex-A76", "", 8, 0xd0b, 1, "/proc/cpuinfo"};
  p.device.cores = read_figure(4, "count", "/sys/devices/system/cpu");
  p.device.caches["l2_bytes"] = spec_figure(524288, "bytes", "datasheet");
  p.device.isa = {"neon", "dotprod"};
  p.device.core_types = {{"general", "Cortex-A76", 4}};
  p.device.board_model = "Raspberry Pi 5 Model B Rev 1.0";
  p.device.virtualized = false;
  p.compute.gemv_gflops["q4_0"] = {measured_figure({1.5, 1.25, 2.0, 1.75, 1.5}, "GFLOP/s", "k"),
                                   derived_figure(6.0, "GFLOP/s", "x4")};
  p.compute.gemm_gflops["f32"].threads_all =
      unavailable_figure("GFLOP/s", Reason::kUnsupported, "no kernels");
  p.compute.threads_all = 4;
  p.compute.runs.push_back({"gemv", "q4_0", 2048, 2048, 1, 4, read_figure(6.25, "GFLOP/s", "k")});
  p.memory.total_bytes = read_figure(8589934592.0, "bytes", "/proc/meminfo MemTotal");
  p.memory.available_bytes = estimated_figure(7.0e9, "bytes", "MemTotal minus the OS");
  p.memory.read_gb_per_s.threads_all = measured_figure({10.0, 10.5, 9.75}, "GB/s", "read");
  p.memory.cgroup_limit_source = "/sys/fs/cgroup/memory.max";
  p.memory.array_bytes = 1 << 27;
  p.storage.path = "/var/lib/strata";
  p.storage.direct_io = true;
  p.storage.seq_read_mb_per_s["4096"] = measured_figure({80, 81, 79}, "MB/s", "O_DIRECT");
  p.storage.seq_read_mb_per_s["4194304"] = spec_figure(430, "MB/s", "vendor");
  p.thermal.zones.push_back({"thermal_zone0",
                             "cpu-thermal",
                             read_figure(48.5, "degC", "temp"),
                             {{"critical", read_figure(110, "degC", "trip")}}});
  p.thermal.throttle.push_back({"get_throttled", "sysfs", 0, 0x50005, {"under_voltage_now"}});
  p.thermal.time_to_throttle_s = unavailable_figure("s", Reason::kNotPresent, "none");
  p.power.boundary = Boundary::kModule;
  p.power.idle_watts = read_figure(2.7, "W", "VDD_IN");
  p.power.sample_hz = 20.0;
  p.power.sources.push_back({"VDD_IN", "hwmon_rail", Boundary::kModule, "in1 x curr1",
                             read_figure(2.7, "W", "a"),
                             unavailable_figure("W", Reason::kPermissionDenied, "b")});
  Prediction pred;
  pred.model = "tiny.gguf";
  pred.dtype = "q4_0";
  pred.weight_bytes_per_token = 6.1e8;
  pred.flops_per_token = 2.2e9;
  pred.decode_tok_per_s = derived_figure(12.5, "tok/s", "roofline");
  pred.decode_bound = "memory";
  p.derived = pred;
  return p;
}

TEST(Schema, JsonRoundTripKeepsEveryField) {
  const Profile p = sample_profile();
  const std::string json = profile_to_json(p);
  const Result<Profile> back = profile_from_json(json);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, p);
  // And the text is stable: a second trip prints the same bytes.
  EXPECT_EQ(profile_to_json(*back), json);
}

TEST(Schema, WireRoundTripKeepsEveryField) {
  const Profile p = sample_profile();
  const std::vector<uint8_t> wire = profile_to_wire(p);
  const Result<Profile> back = profile_from_wire(wire.data(), wire.size());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, p);
  // JSON -> struct -> wire -> struct -> JSON is the identity on the text.
  EXPECT_EQ(profile_to_json(*back), profile_to_json(p));
}

TEST(Schema, JsonUsesTheContractsPathsAndNames) {
  const std::string json = profile_to_json(sample_profile(), -1);
  for (const char* needle : {R"("schema":"strata.profile/1")", R"("provenance":"measured")",
                             R"("reason":"permission_denied")", R"("boundary":"module")",
                             R"("seq_read_mb_per_s":{"4096":{"value":80.0,"unit":"MB/s")",
                             R"("value":null)", R"("stats":{"median":1.5,"p10":)", R"(,"n":5})"}) {
    EXPECT_NE(json.find(needle), std::string::npos) << needle << "\n" << json;
  }
}

TEST(Schema, UnavailableFigureHasNullValueAndReason) {
  const Figure f = unavailable_figure("W", Reason::kVirtualized, "no powercap");
  EXPECT_FALSE(f.available());
  EXPECT_EQ(f.provenance, Provenance::kUnavailable);
  EXPECT_EQ(f.reason, Reason::kVirtualized);
  EXPECT_FALSE(f.stats.has_value());
}

TEST(Schema, SummarizeGivesMedianAndInterpolatedPercentiles) {
  const Stats s = summarize({5, 1, 4, 2, 3});
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.p10, 1.4);
  EXPECT_DOUBLE_EQ(s.p90, 4.6);
  EXPECT_EQ(s.n, 5);
  const Stats one = summarize({7});
  EXPECT_DOUBLE_EQ(one.p10, 7);
  EXPECT_DOUBLE_EQ(one.p90, 7);
}

TEST(Schema, BadEnumNamesThePath) {
  std::string json = profile_to_json(sample_profile(), -1);
  const std::string from = R"("provenance":"spec")";
  json.replace(json.find(from), from.size(), R"("provenance":"guessed")");
  const Result<Profile> r = profile_from_json(json);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("device.caches.l2_bytes.provenance"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("'guessed'"), std::string::npos);
}

TEST(Schema, WrongTypeNamesThePath) {
  const Result<Profile> r =
      profile_from_json(R"({"schema":"strata.profile/1","memory":{"total_bytes":{"value":"8G"}}})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("memory.total_bytes.value: expected a number"),
            std::string::npos)
      << r.status().message();
}

TEST(Schema, OtherSchemaVersionIsUnsupported) {
  const Result<Profile> r = profile_from_json(R"({"schema":"strata.profile/2"})");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_FALSE(profile_from_json("{}").ok());  // no schema at all
  EXPECT_EQ(profile_from_json("{not json").status().code(), StatusCode::kCorrupt);
}

TEST(Schema, MissingKeysKeepDefaultsAndUnknownKeysAreIgnored) {
  const Result<Profile> r =
      profile_from_json(R"({"schema":"strata.profile/1","name":"x","future":{"a":1}})");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->name, "x");
  EXPECT_EQ(r->power.boundary, Boundary::kNone);
  EXPECT_FALSE(r->memory.total_bytes.available());
}

TEST(Schema, DamagedWireBytesFailCleanly) {
  const std::vector<uint8_t> wire = profile_to_wire(sample_profile());
  EXPECT_FALSE(profile_from_wire(nullptr, 0).ok());
  // Every truncation and a sweep of single-byte corruptions: an error or a profile, never a
  // crash or a read out of bounds (the verifier runs first; ASan builds check the rest).
  for (size_t n = 1; n < wire.size(); n += 7) {
    EXPECT_FALSE(profile_from_wire(wire.data(), n).ok()) << n;
  }
  int rejected = 0;
  for (size_t i = 0; i < wire.size(); i += 3) {
    std::vector<uint8_t> bad = wire;
    bad[i] ^= 0x5a;
    const Result<Profile> r = profile_from_wire(bad.data(), bad.size());
    if (!r.ok()) {
      ++rejected;
      // A flip inside the schema string reads as another schema version.
      EXPECT_TRUE(r.status().code() == StatusCode::kCorrupt ||
                  r.status().code() == StatusCode::kUnsupported)
          << r.status().to_string();
    }
  }
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace strata::profiles
