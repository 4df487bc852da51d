// The search's internal structures against brute force: the 3-D skyline that filters
// dominated labels, and the exact completion bounds.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>

#include "search_internal.h"
#include "test_util.h"

namespace strata::partitioner::internal {
namespace {

TEST(Skyline3, AnswersAsAScanOverInsertedPoints) {
  std::mt19937_64 rng(11);
  // Few distinct values, so that ties in every coordinate are common.
  auto value = [&] { return static_cast<double>(std::uniform_int_distribution<int>(0, 6)(rng)); };
  int covered = 0, open = 0;
  for (int round = 0; round < 200; ++round) {
    std::vector<std::array<double, 3>> points(40);
    for (auto& p : points) p = {value(), value(), value()};
    std::vector<double> ms;
    for (const auto& p : points) ms.push_back(p[2]);
    Skyline3 sky;
    const std::vector<double> asked = ms;
    std::vector<uint32_t> ranks;
    sky.reset(&ms, &ranks);
    ASSERT_EQ(ranks.size(), asked.size());
    for (size_t k = 0; k < asked.size(); ++k) ASSERT_EQ(ranks[k], sky.rank(asked[k]));
    std::vector<std::array<double, 3>> inserted;
    for (const auto& p : points) {
      bool expect = false;
      for (const auto& q : inserted) {
        expect = expect || (q[0] <= p[0] && q[1] <= p[1] && q[2] <= p[2]);
      }
      ASSERT_EQ(sky.covered(p[0], p[1], p[2]), expect) << "round " << round;
      (expect ? covered : open) += 1;
      // Insert covered points too at times: the skyline must stay correct either way.
      if (!expect || rng() % 2 == 0) {
        sky.insert(p[0], p[1], p[2]);
        inserted.push_back(p);
      }
    }
  }
  EXPECT_GT(covered, 1000);
  EXPECT_GT(open, 1000);
}

struct Suffix {
  double latency_s = 0, energy_dyn_j = 0, bottleneck_s = 0, mem_pressure = 0;
};

// Every completion of units [c, n) with its first stage on `first` that uses exactly `g`.
void suffixes(const CostModel& m, int c, uint32_t g, int first, const Suffix& so_far,
              std::vector<Suffix>* out) {
  const int n = m.n_units();
  const uint32_t rest = g & ~(1U << first);
  const DeviceCaps& dev = m.devices()[static_cast<size_t>(first)];
  const double dyn = dev.has_power() ? *dev.load_watts - *dev.idle_watts : 0.0;
  for (int e = c + 1; e <= n; ++e) {
    const StageCost& s = m.stage(first, c, e);
    if (!s.feasible || (e == n) != (rest == 0)) continue;
    Suffix x = so_far;
    x.latency_s += s.decode_s;
    x.energy_dyn_j += dyn * s.decode_s;
    x.bottleneck_s = std::max(x.bottleneck_s, s.decode_s);
    x.mem_pressure = std::max(x.mem_pressure, s.mem_pressure);
    if (e == n) {
      x.latency_s += m.coord_out_s(first);
      out->push_back(x);
      continue;
    }
    for (int f = 0; f < m.n_devices(); ++f) {
      if ((rest >> f & 1U) == 0) continue;
      Suffix y = x;
      y.latency_s += m.link_s(first, f, e);
      y.bottleneck_s = std::max(y.bottleneck_s, m.link_serialization_s(first, f, e));
      suffixes(m, e, rest, f, y, out);
    }
  }
}

// Each bound is at most what every completion reaches and, being the exact minimum, within
// the rounding allowance of the best one.
TEST(Completions, AreTheLeastOfEveryObjectiveOverTheCompletions) {
  int checked = 0;
  for (uint64_t seed = 300; seed <= 420; ++seed) {
    const CostModel m = testing::random_instance(seed);
    const Completions table(m);
    ASSERT_TRUE(table.enabled());
    const int d = m.n_devices();
    for (int c = 0; c < m.n_units(); ++c) {
      for (uint32_t g = 1; g < (1U << d); ++g) {
        for (int f = 0; f < d; ++f) {
          if ((g >> f & 1U) == 0) continue;
          std::vector<Suffix> all;
          suffixes(m, c, g, f, {}, &all);
          const Completions::Best& b = table.first_on(c, g, f);
          ASSERT_EQ(b.possible(), !all.empty()) << "seed " << seed;
          if (all.empty()) continue;
          Suffix least{INFINITY, INFINITY, INFINITY, INFINITY};
          for (const Suffix& x : all) {
            least.latency_s = std::min(least.latency_s, x.latency_s);
            least.energy_dyn_j = std::min(least.energy_dyn_j, x.energy_dyn_j);
            least.bottleneck_s = std::min(least.bottleneck_s, x.bottleneck_s);
            least.mem_pressure = std::min(least.mem_pressure, x.mem_pressure);
          }
          EXPECT_LE(b.latency_s, least.latency_s);
          EXPECT_GE(b.latency_s, least.latency_s * (1 - 1e-8));
          EXPECT_LE(b.energy_dyn_j, least.energy_dyn_j);
          EXPECT_GE(b.energy_dyn_j, least.energy_dyn_j - std::abs(least.energy_dyn_j) * 1e-8);
          EXPECT_LE(b.bottleneck_s, least.bottleneck_s);
          EXPECT_GE(b.bottleneck_s, least.bottleneck_s * (1 - 1e-8));
          EXPECT_LE(b.mem_pressure, least.mem_pressure);
          EXPECT_GE(b.mem_pressure, least.mem_pressure * (1 - 1e-8));
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 2000);
}

// The one-division period is a lower bound of CostModel::period_s and within its rounding
// allowance of it, for every group count it handles itself and either side of the cap.
TEST(PeriodFloor, IsJustBelowThePeriod) {
  const CostModel base = testing::random_instance(7);
  std::mt19937_64 rng(5);
  auto uni = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  int capped = 0, free_running = 0;
  for (const int64_t sequences : {1, 2, 3, 4, 6, 8, 16, 17, 64}) {
    PlanSettings settings = base.settings();
    settings.sequences = sequences;
    settings.micro_batch = 1;
    settings.prompt_len = std::min<int64_t>(settings.prompt_len, settings.context);
    auto m = CostModel::build(base.table(), base.devices(), base.links(), settings);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    const PeriodFloor floor(*m);
    for (int i = 0; i < 2000; ++i) {
      const double s = i % 50 == 0 ? 0.0 : std::exp(uni(-12, 2));
      const double l =
          s == 0 ? uni(1e-6, 1.0) : s * (i % 7 == 0 ? uni(0.5, 1.0) : uni(1.0, 2.0 * sequences));
      const double exact = m->period_s(l, s);
      const double bound = floor(l, s);
      ASSERT_LE(bound, exact) << "G " << sequences << " l " << l << " s " << s;
      ASSERT_GE(bound, exact * (1 - 1e-11)) << "G " << sequences << " l " << l << " s " << s;
      (exact * static_cast<double>(m->micro_batch()) <= s * (1 + 1e-12) ? capped : free_running) +=
          1;
    }
  }
  EXPECT_GT(capped, 1000);
  EXPECT_GT(free_running, 1000);
}

}  // namespace
}  // namespace strata::partitioner::internal
