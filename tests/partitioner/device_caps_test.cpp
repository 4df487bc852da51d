#include "strata/partitioner/device_caps.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::partitioner {
namespace {

using Json = nlohmann::json;

Json pi5() {
  auto text = read_file(testing::fixture("pi5.json"));
  STRATA_CHECK(text.ok());
  return Json::parse(*text);
}

Result<DeviceCaps> caps(const Json& j, const std::string& name = "", int64_t mem = 0) {
  return device_caps_from_profile(j.dump(), "pi5.json", name, mem);
}

TEST(DeviceCaps, ReadsTheFixtureProfiles) {
  auto d = load_device(testing::fixture("pi5.json"));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->name, "pi5");
  EXPECT_EQ(d->mem_budget_bytes, 7600000000);
  EXPECT_EQ(d->mem_total_bytes, 8455716864);
  EXPECT_FALSE(d->mem_budget_from_flag);
  EXPECT_EQ(d->mem_read_gb_per_s, 11.0);
  EXPECT_EQ(d->mem_read_figure, "memory.read_gb_per_s.threads_all");
  EXPECT_EQ(d->gemv_gflops.at("q4_0"), 22.0);
  EXPECT_EQ(d->gemm_gflops.at("q8_0"), 60.0);
  EXPECT_EQ(d->storage_chunk_bytes, 4194304);
  EXPECT_EQ(d->storage_read_mb_per_s, 430.0);
  ASSERT_TRUE(d->has_power());
  EXPECT_EQ(*d->idle_watts, 2.7);
  EXPECT_EQ(*d->load_watts, 7.8);
  EXPECT_EQ(d->power_boundary, "wall");
  for (const char* f : {"orin-nano.json", "n100.json", "laptop.json"}) {
    auto other = load_device(testing::fixture(f));
    ASSERT_TRUE(other.ok()) << other.status().to_string();
    EXPECT_TRUE(require_compute(*other, {"f32", "q4_0", "q8_0"}).ok());
  }
}

TEST(DeviceCaps, NameAndMemoryFromTheCommandLine) {
  auto d = load_device("edge=" + testing::fixture("pi5.json") + ",mem=6G");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->name, "edge");
  EXPECT_EQ(d->mem_budget_bytes, int64_t{6} << 30);
  EXPECT_TRUE(d->mem_budget_from_flag);
  auto big = load_device("edge=" + testing::fixture("pi5.json") + ",mem=16G");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("exceeds memory.total_bytes"), std::string::npos);
  auto bad = load_device("edge=" + testing::fixture("pi5.json") + ",mem=lots");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto missing = load_device("edge=/nonexistent/p.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(DeviceCaps, MissingBandwidthNamesTheDeviceAndTheFigure) {
  Json j = pi5();
  j["memory"].erase("read_gb_per_s");
  auto triad = caps(j);
  ASSERT_TRUE(triad.ok());
  EXPECT_EQ(triad->mem_read_gb_per_s, 9.5);
  EXPECT_EQ(triad->mem_read_figure, "memory.triad_gb_per_s.threads_all");
  j["memory"].erase("triad_gb_per_s");
  auto none = caps(j);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find(
                "device 'pi5' (pi5.json): memory.read_gb_per_s.threads_all is missing"),
            std::string::npos)
      << none.status().message();
}

TEST(DeviceCaps, UnavailableFiguresCountAsMissing) {
  Json j = pi5();
  j["memory"]["available_bytes"] = {{"value", nullptr},
                                    {"unit", "bytes"},
                                    {"provenance", "unavailable"},
                                    {"reason", "permission_denied"}};
  auto d = caps(j);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find(
                "memory.available_bytes is unavailable (permission_denied) (or give mem=BYTES)"),
            std::string::npos)
      << d.status().message();
  EXPECT_TRUE(caps(j, "", 4'000'000'000).ok());  // mem= stands in for it

  Json p = pi5();
  p["power"]["idle_watts"] = {
      {"value", nullptr}, {"provenance", "unavailable"}, {"reason", "not_present"}};
  auto nopower = caps(p);
  ASSERT_TRUE(nopower.ok());
  EXPECT_FALSE(nopower->has_power());

  Json g = pi5();
  g["compute"]["gemv_gflops"]["q4_0"]["threads_all"]["provenance"] = "unavailable";
  auto nogemv = caps(g);
  ASSERT_TRUE(nogemv.ok());
  const Status s = require_compute(*nogemv, {"q4_0"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("device 'pi5' (pi5.json): compute.gemv_gflops.q4_0.threads_all is "
                             "missing or unavailable (the model has q4_0 weights)"),
            std::string::npos)
      << s.message();
}

TEST(DeviceCaps, StorageUsesTheFourMibChunkElseTheLargest) {
  Json j = pi5();
  j["storage"]["seq_read_mb_per_s"].erase("4194304");
  auto d = caps(j);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->storage_chunk_bytes, 1048576);
  EXPECT_EQ(d->storage_read_mb_per_s, 420.0);
  j.erase("storage");
  auto none = caps(j);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->storage_read_mb_per_s, 0.0);
}

TEST(DeviceCaps, AttentionRateWhenTheProfileMeasuredIt) {
  Json j = pi5();
  auto without = caps(j);
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(without->attention_gflops, 0.0);
  j["compute"]["attention_gflops"]["threads_all"] =
      j["compute"]["gemv_gflops"]["q4_0"]["threads_all"];
  j["compute"]["attention_gflops"]["threads_all"]["value"] = 3.5;
  auto with = caps(j);
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(with->attention_gflops, 3.5);
}

TEST(DeviceCaps, MeasuredFiguresGiveTheirMedian) {
  Json j = pi5();
  j["memory"]["read_gb_per_s"]["threads_all"]["stats"] = {
      {"median", 9.5}, {"p10", 8.0}, {"p90", 11.0}, {"n", 41}};
  j["compute"]["gemv_gflops"]["q4_0"]["threads_all"]["stats"] = {
      {"median", 20.0}, {"p10", 18.0}, {"p90", 22.0}, {"n", 41}};
  auto d = caps(j);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->mem_read_gb_per_s, 9.5);
  EXPECT_EQ(d->gemv_gflops.at("q4_0"), 20.0);
}

TEST(DeviceCaps, MalformedProfiles) {
  auto text = device_caps_from_profile("{\"name\": ", "broken.json", "", 0);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(text.status().message().find("broken.json: not valid JSON"), std::string::npos);
  Json j = pi5();
  j["memory"]["read_gb_per_s"]["threads_all"] = 11.0;  // a bare number, not a figure
  j["memory"].erase("triad_gb_per_s");
  auto bare = caps(j);
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("is not a figure object"), std::string::npos);
  Json unnamed = pi5();
  unnamed.erase("name");
  auto n = caps(unnamed);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("--device NAME="), std::string::npos);
}

}  // namespace
}  // namespace strata::partitioner
