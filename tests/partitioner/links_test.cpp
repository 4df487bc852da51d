#include "strata/partitioner/links.h"

#include <gtest/gtest.h>

namespace strata::partitioner {
namespace {

TEST(Links, TransferIsHalfTheRoundTripPlusSerialization) {
  const Link l{2.0, 100.0, false};
  EXPECT_DOUBLE_EQ(l.serialization_s(8192), 8192 * 8 / 100e6);
  EXPECT_DOUBLE_EQ(l.transfer_s(8192), 1e-3 + 8192 * 8 / 100e6);
}

TEST(Links, ParseValue) {
  auto l = parse_link_value("2.5,100", "--link");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->rtt_ms, 2.5);
  EXPECT_EQ(l->mbit_per_s, 100);
  EXPECT_FALSE(l->is_default);
  for (const char* bad : {"", "2", "2,", ",100", "-1,100", "2,0", "2,abc", "x,100"}) {
    auto b = parse_link_value(bad, "--link");
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("RTT_MS,MBIT_PER_S"), std::string::npos);
  }
}

TEST(Links, FileSetsPairsAndTheDefault) {
  LinkTable t({"pi5", "orin-nano", "laptop"}, Link{});
  const Status s = apply_links_json(R"({"schema": "strata.links/1",
      "default": {"rtt_ms": 3, "mbit_per_s": 50},
      "links": [{"a": "pi5", "b": "laptop", "rtt_ms": 1, "mbit_per_s": 940}]})",
                                    "links.json", &t);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(t.get(0, 2).mbit_per_s, 940);
  EXPECT_EQ(t.get(2, 0).mbit_per_s, 940);  // symmetric
  EXPECT_FALSE(t.get(0, 2).is_default);
  EXPECT_EQ(t.get(0, 1).mbit_per_s, 50);
  EXPECT_TRUE(t.get(0, 1).is_default);
  t.set_default(Link{1, 1000, true});
  EXPECT_EQ(t.get(0, 1).mbit_per_s, 1000);  // default pairs follow a later default
  EXPECT_EQ(t.get(0, 2).mbit_per_s, 940);   // named pairs keep theirs
  const LinkTable half = t.scaled_bandwidth(0.5);
  EXPECT_EQ(half.get(0, 2).mbit_per_s, 470);
  EXPECT_EQ(half.get(1, 2).mbit_per_s, 500);
}

TEST(Links, UnknownDevicesAreNamedWithTheKnownOnes) {
  LinkTable t({"pi5", "orin-nano", "laptop"}, Link{});
  const Status s = apply_links_json(R"({"schema": "strata.links/1", "links": [
      {"a": "pi5", "b": "laptop", "rtt_ms": 1, "mbit_per_s": 100},
      {"a": "pi5", "b": "jetson", "rtt_ms": 1, "mbit_per_s": 100}]})",
                                    "links.json", &t);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("links.json: links[1] names unknown device 'jetson' (devices: pi5, "
                             "orin-nano, laptop)"),
            std::string::npos)
      << s.message();
  const Status same = apply_links_json(R"({"schema": "strata.links/1", "links": [
      {"a": "pi5", "b": "pi5", "rtt_ms": 1, "mbit_per_s": 100}]})",
                                       "links.json", &t);
  EXPECT_FALSE(same.ok());
  EXPECT_EQ(apply_links_json("[", "links.json", &t).code(), StatusCode::kCorrupt);
  EXPECT_FALSE(apply_links_json(R"({"links": []})", "links.json", &t).ok());
}

TEST(Links, FlagSplitsNamesThatContainDashes) {
  LinkTable t({"pi5", "orin-nano", "rpi5-8gb"}, Link{});
  ASSERT_TRUE(apply_link_flag("orin-nano-rpi5-8gb=4,300", &t).ok());
  EXPECT_EQ(t.get(1, 2).mbit_per_s, 300);
  ASSERT_TRUE(apply_link_flag("pi5-orin-nano=2,100", &t).ok());
  EXPECT_EQ(t.get(0, 1).rtt_ms, 2);
  const Status unknown = apply_link_flag("pi5-jetson=2,100", &t);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.message().find("does not split at a '-' into two known devices"),
            std::string::npos);
  EXPECT_FALSE(apply_link_flag("pi5-orin-nano", &t).ok());
  LinkTable ambiguous({"a", "a-b", "b", "b-c", "c"}, Link{});
  const Status amb = apply_link_flag("a-b-c=1,10", &ambiguous);  // a + b-c, or a-b + c
  ASSERT_FALSE(amb.ok());
  EXPECT_NE(amb.message().find("more than one way"), std::string::npos);
}

}  // namespace
}  // namespace strata::partitioner
