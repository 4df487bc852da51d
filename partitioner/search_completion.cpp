// The exact per-objective completion bounds (docs/COST_MODEL.md, "Exact completion bounds").
// best(c, G, f) folds the completion right to left: the stage [c, e) on f, then the link
// f -> g at e and best(e, G - f, g), or at e = n the hop to the coordinator. Each objective
// is minimised on its own, so the four minima may come from different completions: together
// they are a lower bound, not a plan.
#include <algorithm>
#include <bit>

#include "search_internal.h"

namespace strata::partitioner::internal {
namespace {

// Sums here associate differently from the search's left-to-right fold; a relative 1e-9
// covers that rounding many times over (a sum of n terms errs by about n * 1e-16).
double shrink(double x) { return x - std::abs(x) * 1e-9; }

}  // namespace

Completions::Completions(const CostModel& m) : m_(m) {
  n_ = m.n_units();
  d_ = m.n_devices();
  n_masks_ = size_t{1} << d_;
  const int64_t entries = static_cast<int64_t>(n_ + 1) * static_cast<int64_t>(n_masks_) * d_;
  enabled_ = entries <= kMaxEntries;
  if (!enabled_) return;
  best_.assign(static_cast<size_t>(entries), Best{});
  std::vector<double> dyn(static_cast<size_t>(d_), 0.0);
  for (int f = 0; f < d_; ++f) {
    const DeviceCaps& dev = m.devices()[static_cast<size_t>(f)];
    if (dev.has_power()) dyn[static_cast<size_t>(f)] = *dev.load_watts - *dev.idle_watts;
  }
  // Link times at each boundary e, [e][from][to]: the programme asks for each many times.
  const auto ud = static_cast<size_t>(d_);
  std::vector<double> link_s(static_cast<size_t>(n_ + 1) * ud * ud);
  std::vector<double> link_ser_s(link_s.size());
  for (int e = 0; e <= n_; ++e) {
    for (int f = 0; f < d_; ++f) {
      for (int g2 = 0; g2 < d_; ++g2) {
        if (f == g2) continue;
        const size_t i =
            (static_cast<size_t>(e) * ud + static_cast<size_t>(f)) * ud + static_cast<size_t>(g2);
        link_s[i] = m.link_s(f, g2, e);
        link_ser_s[i] = m.link_serialization_s(f, g2, e);
      }
    }
  }
  for (int c = n_ - 1; c >= 0; --c) {
    for (uint32_t g = 1; g < n_masks_; ++g) {
      const int k = std::popcount(g);
      if (k > n_ - c) continue;  // every device of g needs a unit
      for (int f = 0; f < d_; ++f) {
        if ((g >> f & 1U) == 0) continue;
        const uint32_t rest = g & ~(1U << f);
        Best b;
        // With k - 1 devices after f, the first stage ends by n - (k - 1).
        const int last_end = rest == 0 ? n_ : n_ - (k - 1);
        for (int e = rest == 0 ? n_ : c + 1; e <= last_end; ++e) {
          const StageCost& s = m.stage(f, c, e);
          if (!s.feasible) continue;
          const double energy_j = dyn[static_cast<size_t>(f)] * s.decode_s;
          if (rest == 0) {
            b.latency_s = std::min(b.latency_s, s.decode_s + m.coord_out_s(f));
            b.energy_dyn_j = std::min(b.energy_dyn_j, energy_j);
            b.bottleneck_s = std::min(b.bottleneck_s, s.decode_s);
            b.mem_pressure = std::min(b.mem_pressure, s.mem_pressure);
            continue;
          }
          const size_t row = (static_cast<size_t>(e) * ud + static_cast<size_t>(f)) * ud;
          for (int g2 = 0; g2 < d_; ++g2) {
            if ((rest >> g2 & 1U) == 0) continue;
            const Best& next = best_[at(e, rest, g2)];
            if (!next.possible()) continue;
            const auto at_link = row + static_cast<size_t>(g2);
            b.latency_s = std::min(b.latency_s, s.decode_s + link_s[at_link] + next.latency_s);
            b.energy_dyn_j = std::min(b.energy_dyn_j, energy_j + next.energy_dyn_j);
            b.bottleneck_s = std::min(
                b.bottleneck_s, std::max({s.decode_s, link_ser_s[at_link], next.bottleneck_s}));
            b.mem_pressure = std::min(b.mem_pressure, std::max(s.mem_pressure, next.mem_pressure));
          }
        }
        best_[at(c, g, f)] = b;
      }
    }
  }
  // Shrink once, after the programme: the values above feed each other unshrunk.
  for (Best& b : best_) {
    if (!b.possible()) continue;
    b.latency_s = shrink(b.latency_s);
    b.energy_dyn_j = shrink(b.energy_dyn_j);
    b.bottleneck_s = shrink(b.bottleneck_s);
    b.mem_pressure = shrink(b.mem_pressure);
  }
}

Completions::Best Completions::after(int c, uint32_t g, int from) const {
  Best b;
  for (int f = 0; f < d_; ++f) {
    if ((g >> f & 1U) == 0) continue;
    const Best& x = best_[at(c, g, f)];
    if (!x.possible()) continue;
    b.latency_s = std::min(b.latency_s, shrink(m_.link_s(from, f, c)) + x.latency_s);
    b.energy_dyn_j = std::min(b.energy_dyn_j, x.energy_dyn_j);
    b.bottleneck_s = std::min(
        b.bottleneck_s, std::max(shrink(m_.link_serialization_s(from, f, c)), x.bottleneck_s));
    b.mem_pressure = std::min(b.mem_pressure, x.mem_pressure);
  }
  return b;
}

}  // namespace strata::partitioner::internal
