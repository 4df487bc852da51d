#include "strata/partitioner/search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "test_util.h"

namespace strata::partitioner {
namespace {

using Vec = std::tuple<double, double, double, double>;

// The front as sorted objective vectors; NaN energy (unknown) becomes -1 so that == works.
std::vector<Vec> vectors(const Front& f) {
  std::vector<Vec> out;
  for (const auto& p : f.plans) {
    const Objectives& o = p.objectives;
    out.emplace_back(o.latency_s, o.period_s, std::isnan(o.energy_j) ? -1.0 : o.energy_j,
                     o.mem_pressure);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The heart of the partitioner's promise: on every small instance the dynamic programme
// returns exactly the front that enumerating every plan gives.
TEST(Search, EqualsBruteForceOnRandomInstances) {
  int with_plans = 0, multi_stage = 0, with_copies = 0;
  for (uint64_t seed = 1; seed <= 1500; ++seed) {
    const CostModel model = testing::random_instance(seed);
    const Front brute = enumerate_front(model);
    auto dp = search_front(model);
    ASSERT_TRUE(dp.ok()) << dp.status().to_string();
    ASSERT_EQ(vectors(*dp), vectors(brute)) << "seed " << seed << ": " << model.n_units()
                                            << " units, " << model.n_devices() << " devices";
    with_plans += !brute.plans.empty();
    for (const auto& p : brute.plans) multi_stage += p.stages.size() > 1;
    for (int j = 0; j < model.n_devices(); ++j) with_copies += model.interchangeable_below(j) != 0;
  }
  // The random instances must exercise what they are meant to.
  EXPECT_GT(with_plans, 1200);
  EXPECT_GT(multi_stage, 1000);
  EXPECT_GT(with_copies, 100);
}

TEST(Search, EqualsBruteForceOnEightUnitsAndFourDevices) {
  testing::RandomInstanceOptions opt;
  opt.min_units = 8;
  opt.min_devices = 4;
  size_t points = 0;
  for (uint64_t seed = 5001; seed <= 5400; ++seed) {
    const CostModel model = testing::random_instance(seed, opt);
    ASSERT_EQ(model.n_units(), 8);
    ASSERT_EQ(model.n_devices(), 4);
    const Front brute = enumerate_front(model);
    auto dp = search_front(model);
    ASSERT_TRUE(dp.ok());
    ASSERT_EQ(vectors(*dp), vectors(brute)) << "seed " << seed;
    points += brute.plans.size();
  }
  EXPECT_GT(points, 2000u);  // fronts of many points, not a handful of trivial ones
}

// Front equality on the kinds of instance the exact bounds treat specially: more devices
// (more device sets to split completions over), copies of one device (the symmetry
// reduction), no power figures (energy out of dominance) and budgets that hold only a few
// units per device (memory bounds and infeasible sets).
void expect_equal_to_brute_force(const testing::RandomInstanceOptions& opt, uint64_t first,
                                 uint64_t last, size_t min_points) {
  size_t points = 0;
  for (uint64_t seed = first; seed <= last; ++seed) {
    const CostModel model = testing::random_instance(seed, opt);
    const Front brute = enumerate_front(model);
    auto dp = search_front(model);
    ASSERT_TRUE(dp.ok()) << dp.status().to_string();
    ASSERT_EQ(vectors(*dp), vectors(brute)) << "seed " << seed << ": " << model.n_units()
                                            << " units, " << model.n_devices() << " devices";
    points += brute.plans.size();
  }
  EXPECT_GE(points, min_points);
}

TEST(Search, EqualsBruteForceOnSixDevices) {
  testing::RandomInstanceOptions opt;
  opt.min_units = 7;
  opt.max_units = 10;
  opt.min_devices = opt.max_devices = 6;
  expect_equal_to_brute_force(opt, 7001, 7030, 300);
}

TEST(Search, EqualsBruteForceOnIdenticalDevices) {
  testing::RandomInstanceOptions opt;
  opt.min_units = 6;
  opt.max_units = 12;
  opt.min_devices = 2;
  opt.max_devices = 5;
  opt.all_copies = true;
  for (uint64_t seed = 7101; seed <= 7103; ++seed) {
    const CostModel model = testing::random_instance(seed, opt);
    for (int j = 1; j < model.n_devices(); ++j) {
      ASSERT_NE(model.interchangeable_below(j), 0u) << "seed " << seed << " device " << j;
    }
  }
  expect_equal_to_brute_force(opt, 7101, 7250, 300);
}

TEST(Search, EqualsBruteForceWithoutPowerFigures) {
  testing::RandomInstanceOptions opt;
  opt.min_units = 4;
  opt.min_devices = 2;
  opt.no_power = true;
  ASSERT_FALSE(testing::random_instance(7301, opt).energy_in_dominance());
  expect_equal_to_brute_force(opt, 7301, 7600, 600);
}

TEST(Search, EqualsBruteForceUnderTightMemory) {
  testing::RandomInstanceOptions opt;
  opt.min_units = 6;
  opt.max_units = 10;
  opt.min_devices = 3;
  opt.max_devices = 5;
  opt.tight_memory = true;
  expect_equal_to_brute_force(opt, 7601, 7900, 150);
}

TEST(Search, EqualsBruteForceUnderTightMemoryOnIdenticalDevices) {
  testing::RandomInstanceOptions opt;
  opt.min_units = 6;
  opt.max_units = 10;
  opt.min_devices = 3;
  opt.max_devices = 5;
  opt.tight_memory = true;
  opt.all_copies = true;
  expect_equal_to_brute_force(opt, 7901, 8100, 50);
}

TEST(Search, EveryPlanReevaluatesToItsObjectives) {
  for (uint64_t seed = 100; seed <= 400; ++seed) {
    const CostModel model = testing::random_instance(seed);
    auto dp = search_front(model);
    ASSERT_TRUE(dp.ok());
    for (const auto& plan : dp->plans) {
      auto o = model.evaluate(plan.stages);
      ASSERT_TRUE(o.ok()) << o.status().to_string();
      EXPECT_EQ(o->latency_s, plan.objectives.latency_s);
      EXPECT_EQ(o->period_s, plan.objectives.period_s);
      EXPECT_EQ(o->mem_pressure, plan.objectives.mem_pressure);
      EXPECT_TRUE(o->energy_j == plan.objectives.energy_j ||
                  (std::isnan(o->energy_j) && std::isnan(plan.objectives.energy_j)));
      uint32_t mask = 0;
      for (const auto& s : plan.stages) mask |= 1U << s.device;
      EXPECT_EQ(mask, plan.device_mask);
    }
  }
}

TEST(Search, FrontIsMutuallyNonDominated) {
  for (uint64_t seed = 900; seed <= 1000; ++seed) {
    const CostModel model = testing::random_instance(seed);
    auto dp = search_front(model);
    ASSERT_TRUE(dp.ok());
    for (const auto& a : dp->plans) {
      for (const auto& b : dp->plans) {
        EXPECT_FALSE(dominates(a.objectives, b.objectives, model.energy_in_dominance()));
      }
    }
  }
}

TEST(Search, EpsilonFrontApproximatesTheExactOne) {
  const double eps = 0.05;
  for (uint64_t seed = 2000; seed <= 2200; ++seed) {
    const CostModel model = testing::random_instance(seed);
    SearchOptions options;
    options.epsilon = eps;
    auto approx = search_front(model, options);
    auto exact = search_front(model);
    ASSERT_TRUE(approx.ok() && exact.ok());
    EXPECT_FALSE(approx->exact);
    // (No bound on the count: a plan pruned as near-dominated can leave in the approximate
    // front a plan it would have dominated, so the approximate front may even be larger.)
    EXPECT_EQ(approx->plans.empty(), exact->plans.empty());
    // Every exact point has an approximate one within a small factor in every objective
    // (pruning compounds once per stage and link, so allow (1 + eps)^(2 n_devices)).
    const double slack = std::pow(1 + eps, 2 * model.n_devices());
    for (const auto& e : exact->plans) {
      bool near = false;
      for (const auto& a : approx->plans) {
        const Objectives& x = a.objectives;
        const Objectives& y = e.objectives;
        near = near || (x.latency_s <= y.latency_s * slack && x.period_s <= y.period_s * slack &&
                        x.mem_pressure <= y.mem_pressure * slack &&
                        (!model.energy_in_dominance() || x.energy_j <= y.energy_j * slack));
      }
      EXPECT_TRUE(near) << "seed " << seed;
    }
  }
}

TEST(Search, ThreadsDoNotChangeTheFront) {
  testing::RandomInstanceOptions opt;
  // Eight devices: 2048 sets per unit, enough for the search to hand work to several threads.
  opt.min_units = opt.max_units = 12;
  opt.min_devices = opt.max_devices = 8;
  for (uint64_t seed = 77; seed <= 79; ++seed) {
    const CostModel model = testing::random_instance(seed, opt);
    SearchOptions one, four;
    one.threads = 1;
    four.threads = 4;
    auto a = search_front(model, one);
    auto b = search_front(model, four);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->plans.size(), b->plans.size());
    for (size_t i = 0; i < a->plans.size(); ++i) {
      EXPECT_EQ(a->plans[i].objectives.latency_s, b->plans[i].objectives.latency_s);
      ASSERT_EQ(a->plans[i].stages.size(), b->plans[i].stages.size());
      for (size_t k = 0; k < a->plans[i].stages.size(); ++k) {
        EXPECT_EQ(a->plans[i].stages[k].device, b->plans[i].stages[k].device);
        EXPECT_EQ(a->plans[i].stages[k].unit_end, b->plans[i].stages[k].unit_end);
      }
    }
    EXPECT_EQ(a->stats.labels, b->stats.labels);
  }
}

TEST(Search, NoPlanWhenNothingFits) {
  LayerTable table;
  table.units.push_back({"a",
                         UnitKind::kBlock,
                         1e9,
                         0,
                         2'000'000'000,
                         {{"f32", 2'000'000'000}},
                         2'000'000'000,
                         4096,
                         0});
  DeviceCaps dev;
  dev.name = "small";
  dev.mem_budget_bytes = 1'000'000'000;
  dev.mem_read_gb_per_s = 10;
  dev.gemv_gflops["f32"] = 10;
  dev.gemm_gflops["f32"] = 10;
  auto model = CostModel::build(table, {dev}, LinkTable({"small"}, Link{}), PlanSettings{});
  ASSERT_TRUE(model.ok());
  auto front = search_front(*model);
  ASSERT_TRUE(front.ok());
  EXPECT_TRUE(front->plans.empty());
  EXPECT_TRUE(enumerate_front(*model).plans.empty());
}

TEST(Search, LabelBudgetIsAnErrorThatSuggestsEpsilon) {
  testing::RandomInstanceOptions opt;
  const CostModel model = testing::random_instance(7, opt);
  SearchOptions options;
  options.max_labels = 0;
  auto front = search_front(model, options);
  if (model.n_units() > 0) {
    ASSERT_FALSE(front.ok());
    EXPECT_EQ(front.status().code(), StatusCode::kResourceExhausted);
    EXPECT_NE(front.status().message().find("epsilon"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::partitioner
