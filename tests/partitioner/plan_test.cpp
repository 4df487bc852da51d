#include "strata/partitioner/plan.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata::partitioner {
namespace {

// Two units of 0.1 s each on two equal devices, 1 MB of activations between them, links
// of `mbit` Mbit/s: splitting doubles the throughput while the link is fast.
CostModel two_way(double mbit, int64_t budget = 10'000'000'000, bool power = true) {
  LayerTable table;
  for (const char* name : {"a", "b"}) {
    table.units.push_back(
        {name, UnitKind::kBlock, 4e8, 0, 1'000'000, {{"f32", 1'000'000}}, 1'000'000, 1'000'000, 0});
  }
  std::vector<DeviceCaps> devices;
  for (const char* name : {"d0", "d1"}) {
    DeviceCaps d;
    d.name = name;
    d.source = std::string(name) + ".json";
    d.mem_budget_bytes = budget;
    d.mem_read_gb_per_s = 100;
    d.gemv_gflops = {{"f32", 4}};
    d.gemm_gflops = {{"f32", 40}};
    if (power) {
      d.idle_watts = 1;
      d.load_watts = 5;
    }
    devices.push_back(d);
  }
  devices[1].load_watts = power ? std::optional<double>(6.0) : std::nullopt;  // not interchangeable
  LinkTable links({"d0", "d1"}, Link{});
  links.set(0, 1, {0.0, mbit, false});
  PlanSettings s;
  s.sequences = 4;
  s.micro_batch = 1;  // the hand-computed figures below are for single-token steps
  s.prompt_len = 1;
  s.context = 1;
  auto m = CostModel::build(table, devices, links, s);
  STRATA_CHECK_MSG(m.ok(), m.status().to_string());
  return std::move(m).value();
}

Front front_of(const CostModel& m) {
  auto f = search_front(m);
  STRATA_CHECK(f.ok());
  return std::move(f).value();
}

TEST(Plan, ChoosesByEachObjective) {
  const CostModel m = two_way(1000);
  const Front f = front_of(m);
  ASSERT_GE(f.plans.size(), 2u);
  auto lat = choose_plan(f, Objective::kLatency, {}, true);
  auto tput = choose_plan(f, Objective::kThroughput, {}, true);
  auto energy = choose_plan(f, Objective::kEnergy, {}, true);
  ASSERT_TRUE(lat.ok() && tput.ok() && energy.ok());
  EXPECT_EQ(f.plans[lat->index].stages.size(), 1u);   // no link to cross
  EXPECT_EQ(f.plans[tput->index].stages.size(), 2u);  // two stages share the work
  for (const auto& p : f.plans) {
    EXPECT_LE(f.plans[lat->index].objectives.latency_s, p.objectives.latency_s);
    EXPECT_LE(f.plans[tput->index].objectives.period_s, p.objectives.period_s);
    EXPECT_LE(f.plans[energy->index].objectives.energy_j, p.objectives.energy_j);
  }
  EXPECT_NE(lat->reason.find("lowest per-token latency"), std::string::npos);
  auto knee = choose_plan(f, Objective::kKnee, {}, true);
  ASSERT_TRUE(knee.ok());
  EXPECT_NE(knee->reason.find("the knee"), std::string::npos);
  EXPECT_EQ(knee->eligible.size(), f.plans.size());
}

TEST(Plan, EpsilonConstraintPicksTheFastestWithinTheBudget) {
  const CostModel m = two_way(1000);
  const Front f = front_of(m);
  double least = INFINITY, most = 0;
  for (const auto& p : f.plans) {
    least = std::min(least, p.objectives.energy_j);
    most = std::max(most, p.objectives.energy_j);
  }
  ASSERT_LT(least, most);
  Constraints c;
  c.max_energy_j_per_token = (least + most) / 2;
  auto choice = choose_plan(f, Objective::kThroughput, c, true);
  ASSERT_TRUE(choice.ok());
  EXPECT_LE(f.plans[choice->index].objectives.energy_j, *c.max_energy_j_per_token);
  for (const size_t i : choice->eligible) {
    EXPECT_LE(f.plans[choice->index].objectives.period_s, f.plans[i].objectives.period_s);
  }
  EXPECT_NE(choice->reason.find("--max-energy-j-per-token"), std::string::npos);
  c.max_energy_j_per_token = least / 2;
  auto none = choose_plan(f, Objective::kLatency, c, true);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("the least energy of any plan is"), std::string::npos)
      << none.status().message();
  Constraints lat;
  lat.max_latency_ms = 1;
  auto slow = choose_plan(f, Objective::kLatency, lat, true);
  ASSERT_FALSE(slow.ok());
  EXPECT_NE(slow.status().message().find("the lowest latency of any plan is 200 ms"),
            std::string::npos)
      << slow.status().message();
}

TEST(Plan, EnergyObjectiveNeedsPower) {
  const CostModel m = two_way(1000, 10'000'000'000, false);
  EXPECT_FALSE(m.energy_in_dominance());
  const Front f = front_of(m);
  auto e = choose_plan(f, Objective::kEnergy, {}, m.energy_in_dominance());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("power figures"), std::string::npos);
  EXPECT_TRUE(choose_plan(f, Objective::kKnee, {}, false).ok());
  EXPECT_FALSE(parse_objective("fast").ok());
  EXPECT_EQ(*parse_objective("energy"), Objective::kEnergy);
}

TEST(Plan, BandwidthScenariosFindThePlanThatStaysBest) {
  const CostModel m = two_way(100);
  const Front f = front_of(m);
  auto r = bandwidth_scenarios(m, f, {1.0, 0.1}, Objective::kThroughput, {}, {});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->best.size(), 2u);
  // At 100 Mbit/s the split wins (1 MB takes 0.08 s, under a stage's 0.1 s); at 10 Mbit/s
  // the link would take 0.8 s, and one device (0.2 s per token) wins.
  EXPECT_EQ(r->candidates[r->best[0]].stages.size(), 2u);
  EXPECT_EQ(r->candidates[r->best[1]].stages.size(), 1u);
  // The split loses 300% at x0.1, one device loses 100% at x1: one device stays best.
  EXPECT_EQ(r->candidates[r->robust].stages.size(), 1u);
  EXPECT_NEAR(r->max_regret[r->robust], 1.0, 1e-9);
  EXPECT_NEAR(r->max_regret[r->best[0]], 3.0, 1e-9);
  // Values are the candidates re-evaluated under each scenario.
  EXPECT_NEAR(r->values[r->best[0]][1].period_s, 0.8, 1e-9);
  EXPECT_FALSE(bandwidth_scenarios(m, f, {1.0, 0.0}, Objective::kThroughput, {}, {}).ok());
}

TEST(Plan, DescribeGivesBlocksLinksAndFirstToken) {
  const CostModel m = two_way(100);
  PlanPoint p;
  p.stages = {{0, 0, 1}, {1, 1, 2}};
  p.objectives = *m.evaluate(p.stages);
  const PlanDetail d = describe_plan(m, p);
  ASSERT_EQ(d.stages.size(), 2u);
  EXPECT_EQ(d.stages[0].device_name, "d0");
  EXPECT_EQ(d.stages[0].block_begin, 0);
  EXPECT_EQ(d.stages[0].block_end, 1);
  EXPECT_EQ(d.stages[1].first_unit, "b");
  EXPECT_EQ(d.stages[0].link_out_to, "d1");
  EXPECT_NEAR(d.stages[0].link_out_ms, 80.0, 1e-9);
  EXPECT_TRUE(d.stages[1].link_out_to.empty());  // no coordinator modelled
  EXPECT_NEAR(d.bottleneck_ms, 100.0, 1e-9);
  EXPECT_NEAR(d.time_to_first_token_ms,
              d.stages[0].cost.prefill_s * 1e3 + 80.0 + d.stages[1].cost.prefill_s * 1e3, 1e-9);
}

TEST(Plan, ExplainsAModelThatFitsNowhere) {
  const CostModel m =
      two_way(100, 5'500'000);  // each device holds one unit (+4 MB of buffers), not two
  EXPECT_TRUE(devices_too_small(m).empty());
  EXPECT_FALSE(front_of(m).plans.empty());
  const CostModel tiny = two_way(100, 900'000);
  const Status s = diagnose_infeasible(tiny);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("the model fits nowhere: it needs 1.91 MiB"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("short by"), std::string::npos);
  const auto small = devices_too_small(tiny);
  ASSERT_EQ(small.size(), 2u);
  EXPECT_NE(small[0].find("device 'd0' (d0.json) is too small for any unit"), std::string::npos)
      << small[0];
  EXPECT_NE(small[0].find("short by"), std::string::npos);
}

TEST(Plan, ExplainsUnitsThatFitNowhereAlone) {
  // Together the budgets would hold the model, but unit b alone fits on no device.
  LayerTable table;
  table.units.push_back({"a", UnitKind::kBlock, 1e6, 0, 100, {{"f32", 100}}, 100, 4, 0});
  table.units.push_back({"b", UnitKind::kBlock, 1e6, 0, 3000, {{"f32", 3000}}, 3000, 4, 0});
  std::vector<DeviceCaps> devices;
  for (const char* name : {"p", "q"}) {
    DeviceCaps d;
    d.name = name;
    d.mem_budget_bytes = 2000;
    d.mem_read_gb_per_s = 1;
    d.gemv_gflops = d.gemm_gflops = {{"f32", 1}};
    devices.push_back(d);
  }
  PlanSettings s;
  s.prompt_len = s.context = s.sequences = 1;
  auto m = CostModel::build(table, devices, LinkTable({"p", "q"}, Link{}), s);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(front_of(*m).plans.empty());
  const Status st = diagnose_infeasible(*m);
  EXPECT_NE(st.message().find("unit 'b' alone fits on no device"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace strata::partitioner
