// Lower bounds on what completing a plan prefix can add (docs/COST_MODEL.md, "Floors and
// bounds"). Two relaxations per (free device set F, first remaining unit c):
//  - every remaining unit on the fastest (or most frugal) device of F, memory ignored;
//  - without streaming, a fractional fill: device f costs at least rate_f seconds per byte
//    of weights + KV it holds (rate_f = the least time per byte of any remaining unit on f),
//    and holds at most its budget; filling the cheapest rates first is the optimum of that
//    relaxation. When even the fill cannot place the bytes, no completion fits at all.
#include <algorithm>
#include <bit>
#include <cmath>

#include "search_internal.h"

namespace strata::partitioner::internal {
namespace {

constexpr int64_t kMaxTableEntries = (int64_t{1} << 12) * 131;

}  // namespace

Bounds::Bounds(const CostModel& m) : m_(m), period_floor_(m) {
  n_ = m.n_units();
  const int d = m.n_devices();
  const uint32_t n_masks = uint32_t{1} << d;
  const auto n1 = static_cast<size_t>(n_ + 1);
  const double kv_positions =
      static_cast<double>(m.settings().context) * static_cast<double>(m.settings().sequences);
  need_.assign(n1, 0.0);
  std::vector<double> unit_need(static_cast<size_t>(n_));
  for (int u = n_ - 1; u >= 0; --u) {
    const LayerUnit& unit = m.table().units[static_cast<size_t>(u)];
    unit_need[static_cast<size_t>(u)] = static_cast<double>(unit.weight_bytes) +
                                        static_cast<double>(unit.kv_bytes_per_token) * kv_positions;
    need_[static_cast<size_t>(u)] =
        need_[static_cast<size_t>(u) + 1] + unit_need[static_cast<size_t>(u)];
  }
  std::vector<double> dyn(static_cast<size_t>(d), 0.0), idle(static_cast<size_t>(d), 0.0);
  for (int f = 0; f < d; ++f) {
    const DeviceCaps& dev = m.devices()[static_cast<size_t>(f)];
    if (m.settings().allow_streaming && dev.storage_read_mb_per_s > 0) stream_mask_ |= 1U << f;
    if (dev.has_power()) {
      dyn[static_cast<size_t>(f)] = std::max(0.0, *dev.load_watts - *dev.idle_watts);
      idle[static_cast<size_t>(f)] = *dev.idle_watts;
    }
  }
  idle_ = idle;
  min_boundary_bytes_ = INFINITY;
  for (int b = 1; b < n_; ++b)
    min_boundary_bytes_ = std::min(min_boundary_bytes_, m.step_boundary_bytes(b));
  if (n_ <= 1) min_boundary_bytes_ = 0;
  enabled_ = static_cast<int64_t>(n_masks) * (n_ + 1) <= kMaxTableEntries;
  if (d <= 16) {
    // The least one-way time between two devices of each set, built up one device at a time.
    pair_link_s_.assign(n_masks, INFINITY);
    for (uint32_t free = 1; free < n_masks; ++free) {
      const int top = 31 - std::countl_zero(free);
      const uint32_t rest = free & ~(1U << top);
      double best = rest == 0 ? INFINITY : pair_link_s_[rest];
      for (int f = 0; f < top; ++f) {
        if ((rest >> f & 1U) != 0) {
          best = std::min(best, m.links().get(f, top).transfer_s(min_boundary_bytes_));
        }
      }
      pair_link_s_[free] = best;
    }
    for (double& v : pair_link_s_) {
      if (!std::isfinite(v)) v = 0;
    }
  }
  if (!enabled_) return;

  // rate[f][c]: least seconds per byte of need of any unit >= c on device f.
  rate_.assign(static_cast<size_t>(d) * n1, INFINITY);
  std::vector<double>& rate = rate_;
  for (int f = 0; f < d; ++f) {
    for (int u = n_ - 1; u >= 0; --u) {
      double r = rate[static_cast<size_t>(f) * n1 + static_cast<size_t>(u) + 1];
      if (unit_need[static_cast<size_t>(u)] > 0) {
        r = std::min(r, m.unit_decode_s(f, u) / unit_need[static_cast<size_t>(u)]);
      }
      rate[static_cast<size_t>(f) * n1 + static_cast<size_t>(u)] = r;
    }
  }

  const size_t cells = n_masks * n1;
  sum_s_.assign(cells, 0.0);
  max_s_.assign(cells, 0.0);
  makespan_s_.assign(cells, 0.0);
  sum_e_.assign(cells, 0.0);
  fill_s_.assign(cells, 0.0);
  fill_e_.assign(cells, 0.0);
  fits_.assign(cells, 1);
  budget_.assign(n_masks, 0.0);
  std::vector<int> members;
  std::vector<std::pair<double, int>> order;
  for (uint32_t free = 1; free < n_masks; ++free) {
    members.clear();
    for (int f = 0; f < d; ++f) {
      if ((free >> f & 1U) == 0) continue;
      members.push_back(f);
      budget_[free] += static_cast<double>(m.devices()[static_cast<size_t>(f)].mem_budget_bytes);
    }
    for (int u = n_ - 1; u >= 0; --u) {
      double t = INFINITY, e = INFINITY;
      for (const int f : members) {
        const double tf = m.unit_decode_s(f, u);
        t = std::min(t, tf);
        e = std::min(e, dyn[static_cast<size_t>(f)] * tf);
      }
      const size_t i = at(free, u);
      sum_s_[i] = sum_s_[i + 1] + t;
      max_s_[i] = std::max(max_s_[i + 1], t);
      sum_e_[i] = sum_e_[i + 1] + e;
      // The fractional fill, by time and by energy.
      for (int pass = 0; pass < 2; ++pass) {
        order.clear();
        for (const int f : members) {
          const double r = rate[static_cast<size_t>(f) * n1 + static_cast<size_t>(u)];
          order.emplace_back(pass == 0 ? r : dyn[static_cast<size_t>(f)] * r, f);
        }
        std::sort(order.begin(), order.end());
        double left = need_[static_cast<size_t>(u)], cost = 0;
        for (const auto& [r, f] : order) {
          const double take = std::min(
              left, static_cast<double>(m.devices()[static_cast<size_t>(f)].mem_budget_bytes));
          if (take > 0 && std::isfinite(r)) cost += take * r;
          left -= take;
        }
        (pass == 0 ? fill_s_ : fill_e_)[i] = cost;
        if (pass == 0) fits_[i] = left <= 0 ? 1 : 0;
      }
      makespan_s_[i] = makespan(members, rate, u, free);
    }
  }
}

// The least bottleneck at which the devices of `free` could hold the remaining need: device
// f working for at most beta seconds holds at most beta / rate_f bytes (and at most its
// budget when memory binds), so beta must satisfy sum_f min(cap_f, beta / rate_f) >= need.
double Bounds::makespan(const std::vector<int>& members, const std::vector<double>& rate, int u,
                        uint32_t free) const {
  const double need = need_[static_cast<size_t>(u)];
  if (need <= 0) return 0;
  const bool memory_binds = (free & stream_mask_) == 0;
  const auto n1 = static_cast<size_t>(n_ + 1);
  // Each device saturates (reaches its budget) at beta_f = budget_f * rate_f.
  std::vector<std::pair<double, int>> saturate;
  double speed = 0;  // sum of 1 / rate_f over unsaturated devices: bytes per second
  for (const int f : members) {
    const double r = rate[static_cast<size_t>(f) * n1 + static_cast<size_t>(u)];
    if (!std::isfinite(r) || r <= 0) continue;
    speed += 1.0 / r;
    const double cap = static_cast<double>(m_.devices()[static_cast<size_t>(f)].mem_budget_bytes);
    saturate.emplace_back(memory_binds ? cap * r : INFINITY, f);
  }
  if (speed <= 0) return 0;
  std::sort(saturate.begin(), saturate.end());
  double held = 0;  // bytes held by saturated devices
  for (const auto& [beta_f, f] : saturate) {
    const double beta = (need - held) / speed;
    if (beta <= beta_f) return beta;
    const double r = rate[static_cast<size_t>(f) * n1 + static_cast<size_t>(u)];
    held += static_cast<double>(m_.devices()[static_cast<size_t>(f)].mem_budget_bytes);
    speed -= 1.0 / r;
    if (speed <= 1e-300) break;
  }
  return 0;  // the budgets cannot hold it: fits_ says so; no bound from here
}

Rest Bounds::rest(uint32_t free, int c, int from) const {
  Rest r;
  const int d = m_.n_devices();
  double link_s = 0, link_ser_s = 0, out_s = INFINITY;
  if (from >= 0) link_s = link_ser_s = INFINITY;
  for (int f = 0; f < d; ++f) {
    if ((free >> f & 1U) == 0) continue;
    out_s = std::min(out_s, m_.coord_out_s(f));
    if (from >= 0) {
      link_s = std::min(link_s, m_.link_s(from, f, c));
      link_ser_s = std::min(link_ser_s, m_.link_serialization_s(from, f, c));
    }
  }
  const double pair_s = pair_link_s_.empty() ? 0.0 : pair_link_s_[free];
  // A completion uses at most one device per remaining unit; from a state it must add one.
  r.k_max = std::min({std::popcount(free), n_ - c, Rest::kMaxK});
  double time_s = 0, max_s = 0, energy_j = 0;
  if (enabled_) {
    const size_t i = at(free, c);
    const bool memory_binds = (free & stream_mask_) == 0;
    r.possible = !memory_binds || fits_[i] != 0;
    time_s = std::max(sum_s_[i], memory_binds ? fill_s_[i] : 0.0);
    max_s = std::max(max_s_[i], makespan_s_[i]);
    energy_j = std::max(sum_e_[i], memory_binds ? fill_e_[i] : 0.0);
    r.mem_pressure = std::min(1.0, need_[static_cast<size_t>(c)] / budget_[free]) * kShrink;
  }
  r.latency_s = (time_s + link_s + out_s) * kShrink;
  r.bottleneck_s = std::max({max_s, time_s / std::max(1, r.k_max), link_ser_s}) * kShrink;
  r.energy_dyn_j = energy_j * kShrink;
  r.pair_link_s = pair_s * kShrink;
  // Per k: the k fastest devices share the time, the k largest budgets the bytes, the k
  // least idle devices add their idle power (an open set's own device is already counted).
  std::array<double, Rest::kMaxK> speed{}, budget{}, idle{};
  int members = 0;
  for (int f = 0; f < d && members < Rest::kMaxK; ++f) {
    if ((free >> f & 1U) == 0) continue;
    speed[static_cast<size_t>(members)] = enabled_ ? 1.0 / std::max(1e-300, rate_at(f, c)) : 0.0;
    budget[static_cast<size_t>(members)] =
        static_cast<double>(m_.devices()[static_cast<size_t>(f)].mem_budget_bytes);
    idle[static_cast<size_t>(members)] = idle_[static_cast<size_t>(f)];
    ++members;
  }
  std::sort(speed.begin(), speed.begin() + members, std::greater<>());
  std::sort(budget.begin(), budget.begin() + members, std::greater<>());
  std::sort(idle.begin(), idle.begin() + members);
  const double need = need_[static_cast<size_t>(c)];
  double speed_sum = 0, budget_sum = 0, idle_sum = 0;
  for (int k = 1; k <= r.k_max; ++k) {
    const auto uk = static_cast<size_t>(k);
    speed_sum += speed[uk - 1];
    budget_sum += budget[uk - 1];
    const double makespan = enabled_ && speed_sum > 0 ? need / speed_sum : 0.0;
    r.bottleneck_k[uk] = std::max({r.bottleneck_s, makespan * kShrink, time_s / k * kShrink});
    r.pressure_k[uk] = std::max(r.mem_pressure, std::min(1.0, need / budget_sum) * kShrink);
    // From a state the k devices are all new; an open set's first device is counted.
    if (from >= 0 || k > 1) idle_sum += idle[from >= 0 ? uk - 1 : uk - 2];
    r.idle_k[uk] = idle_sum;
  }
  return r;
}

Objectives Bounds::lower_bound(const Partial& p, const Rest& r, int k,
                               double used_idle_watts) const {
  const auto uk = static_cast<size_t>(k);
  Objectives o;
  o.latency_s = (p.latency_s + r.latency_s + (k - 1) * r.pair_link_s) * kShrink;
  o.period_s = period_floor_(o.latency_s, std::max(p.bottleneck_s, r.bottleneck_k[uk]));
  o.energy_j = ((p.energy_dyn_j + r.energy_dyn_j) / static_cast<double>(m_.micro_batch()) +
                (used_idle_watts + r.idle_k[uk]) * o.period_s) *
               kShrink;
  o.mem_pressure = std::max(p.mem_pressure, r.pressure_k[uk]);
  return o;
}

}  // namespace strata::partitioner::internal
