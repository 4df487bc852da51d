// Dominance on complete plans, and the brute-force reference front.
#include <algorithm>

#include "search_internal.h"

namespace strata::partitioner {
namespace internal {

std::vector<size_t> pareto_indices(const std::vector<Objectives>& objs, bool use_energy) {
  std::vector<size_t> order(objs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // After this sort a vector can only be weakly dominated by one before it, so a single pass
  // against the kept ones finds the front; equal vectors keep the first.
  std::sort(order.begin(), order.end(), [&](size_t ia, size_t ib) {
    const Objectives& a = objs[ia];
    const Objectives& b = objs[ib];
    if (a.latency_s != b.latency_s) return a.latency_s < b.latency_s;
    if (a.period_s != b.period_s) return a.period_s < b.period_s;
    if (use_energy && a.energy_j != b.energy_j) return a.energy_j < b.energy_j;
    if (a.mem_pressure != b.mem_pressure) return a.mem_pressure < b.mem_pressure;
    return ia < ib;
  });
  std::vector<size_t> kept;
  for (const size_t i : order) {
    bool dominated = false;
    for (const size_t k : kept) {
      if (weakly_dominates(objs[k], objs[i], use_energy)) {
        dominated = true;
        break;
      }
    }
    if (!dominated) kept.push_back(i);
  }
  return kept;
}

}  // namespace internal

bool dominates(const Objectives& a, const Objectives& b, bool use_energy) {
  return internal::weakly_dominates(a, b, use_energy) &&
         !internal::weakly_dominates(b, a, use_energy);
}

std::vector<PlanPoint> pareto_filter(std::vector<PlanPoint> plans, bool use_energy) {
  std::vector<Objectives> objs;
  objs.reserve(plans.size());
  for (const auto& p : plans) objs.push_back(p.objectives);
  std::vector<PlanPoint> out;
  for (const size_t i : internal::pareto_indices(objs, use_energy)) {
    out.push_back(std::move(plans[i]));
  }
  return out;
}

Front enumerate_front(const CostModel& model) {
  const int n = model.n_units();
  const int d = model.n_devices();
  STRATA_CHECK_MSG(d <= 8 && n <= 20, "enumerate_front is for tiny instances only");
  std::vector<PlanPoint> all;
  std::vector<Stage> stages;
  // Places the stage that starts at unit b on every unused device, with every end.
  auto place = [&](auto&& self, int b, const Partial& p, uint32_t mask) -> void {
    for (int j = 0; j < d; ++j) {
      if ((mask >> j & 1U) != 0) continue;
      for (int c = b + 1; c <= n; ++c) {
        if (!model.stage(j, b, c).feasible) continue;
        Partial q = stages.empty() ? model.start(j) : model.add_link(p, stages.back().device, j, b);
        q = model.add_stage(q, j, b, c);
        stages.push_back({j, b, c});
        const uint32_t m = mask | uint32_t{1} << j;
        if (c == n) {
          all.push_back({stages, model.finish(q, j, m), m});
        } else {
          self(self, c, q, m);
        }
        stages.pop_back();
      }
    }
  };
  place(place, 0, Partial{}, 0);
  Front front;
  front.stats.complete = static_cast<int64_t>(all.size());
  front.plans = pareto_filter(std::move(all), model.energy_in_dominance());
  return front;
}

}  // namespace strata::partitioner
