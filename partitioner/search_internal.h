// Internals of the Pareto search shared by search.cpp, search_bounds.cpp and pareto.cpp.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "strata/partitioner/cost_model.h"
#include "strata/partitioner/search.h"

namespace strata::partitioner::internal {

// Every lower bound is shrunk by this relative factor, so that float rounding never lifts one
// above the value a real completion reaches.
constexpr double kShrink = 1.0 - 1e-9;

// A lower bound of CostModel::period_s for the search's bounds, which ask for it hundreds of
// millions of times. The mean value analysis there divides once per group; carrying the
// station's response time as a fraction P / Q needs one division in all (for G groups,
// P' = s D + s n (P - s Q) + n s^2 Q / 2 and Q' = D with D = P + z Q). The different rounding
// is covered by a relative 1e-12 taken off; when the one-step cap binds, the value is
// computed as period_s computes it. Beyond kMaxGroups (P and Q grow like s^G) or with no
// bottleneck it asks period_s itself.
class PeriodFloor {
 public:
  static constexpr int64_t kMaxGroups = 16;
  explicit PeriodFloor(const CostModel& m)
      : m_(m), micro_batch_(static_cast<double>(m.micro_batch())), groups_(m.n_groups()) {}
  double operator()(double latency_s, double bottleneck_s) const {
    const double s = bottleneck_s;
    const double l = std::max(latency_s, s);
    if (groups_ == 1) return l / micro_batch_;
    if (groups_ > kMaxGroups || !(s > 0)) return m_.period_s(latency_s, bottleneck_s);
    const double z = l - s;
    double p = s, q = 1;  // one group alone waits for nobody: r = s
    for (int64_t n = 1; n < groups_; ++n) {
      const double dn = static_cast<double>(n);
      const double d = p + z * q;
      p = s * d + s * dn * (p - s * q) + dn * s * s * q * 0.5;
      q = d;
    }
    const double cycle_s = p + z * q;  // G / throughput, times q
    if (cycle_s < static_cast<double>(groups_) * q * s) return 1.0 / ((1.0 / s) * micro_batch_);
    return cycle_s / (static_cast<double>(groups_) * q * micro_batch_) * (1.0 - 1e-12);
  }

 private:
  const CostModel& m_;
  double micro_batch_;
  int64_t groups_;
};

// Indices of the non-dominated entries of `objs` (one per distinct vector), sorted by
// latency, then period, energy (when `use_energy`), memory pressure.
std::vector<size_t> pareto_indices(const std::vector<Objectives>& objs, bool use_energy);

// True when `a` is no worse than `b` in every objective (energy only when `use_energy`).
inline bool weakly_dominates(const Objectives& a, const Objectives& b, bool use_energy) {
  return a.latency_s <= b.latency_s && a.period_s <= b.period_s &&
         (!use_energy || a.energy_j <= b.energy_j) && a.mem_pressure <= b.mem_pressure;
}

// A static set of objective vectors answering "is some vector of the set no worse than x in
// every objective?" quickly: a k-d tree whose nodes keep the least value of each objective
// below them, so whole subtrees that cannot hold such a vector are skipped.
class DominanceIndex {
 public:
  DominanceIndex() = default;
  DominanceIndex(const std::vector<Objectives>& points, bool use_energy);
  bool empty() const { return points_.empty(); }
  // True when some point is <= x in every objective (energy only when use_energy).
  // `hint` (the caller's, one per thread) remembers the last covering point, tried first.
  bool covers(const Objectives& x, int32_t* hint) const;

 private:
  using Vec = std::array<double, 4>;
  struct Node {
    Vec least;
    int32_t begin, end;   // points_[begin, end) below this node
    int32_t left, right;  // children, -1 for a leaf
  };
  int32_t build(int32_t begin, int32_t end);
  std::vector<Vec> points_;
  std::vector<Node> nodes_;
};

// Points (b, e, m) inserted one by one, answering "is some inserted point <= x in all
// three?" in O(log^2): a Fenwick tree over the ranks of m whose nodes keep the staircase of
// their points in (b, e) (b ascending, e descending). The m values of every point that will
// be inserted or asked about are given up front, to rank them.
class Skyline3 {
 public:
  // `ms`: every m that insert or covered will see (any order, repeats allowed). With
  // `ranks`, (*ranks)[k] becomes the rank of the k-th of them.
  void reset(std::vector<double>* ms, std::vector<uint32_t>* ranks = nullptr);
  bool covered(double b, double e, double m) const { return covered_at(rank(m), b, e); }
  void insert(double b, double e, double m);
  // The same with m given by its rank, for callers that ask and insert at one m.
  size_t rank(double m) const;  // 1-based: how many distinct m are <= m
  bool covered_at(size_t rank, double b, double e) const;
  void insert_at(size_t rank, double b, double e);

 private:
  std::vector<double> ms_;  // distinct, ascending
  // reset's hash table of the bits of m, each m's slot in it and each slot's rank.
  std::vector<uint64_t> seen_;
  std::vector<uint32_t> slot_of_, slot_rank_;
  std::vector<std::vector<std::pair<double, double>>> nodes_;  // [1 .. ms_.size()]
};

// What any completion adds to a prefix whose remaining units [c, n) all go to devices of a
// set `free`: lower bounds, each shrunk by a relative 1e-9 so that rounding in the sums of
// the cost model can never lift a bound above the true value. Some bounds depend on how many
// devices k the completion uses (k = 1 .. k_max): more devices can share the work (a lower
// bottleneck, lower memory pressure) but cost links and idle power. Every completion uses
// some k, so a prefix is dead when, for every k, an incumbent beats its bound for that k.
struct Rest {
  static constexpr int kMaxK = 16;
  bool possible = true;     // false: the free devices cannot hold the remaining units
  double latency_s = 0;     // stages, the first link, the hop to the coordinator (any k)
  double bottleneck_s = 0;  // the slowest remaining stage or first link (any k)
  double energy_dyn_j = 0;  // (load - idle) x stage time of the remaining stages
  double mem_pressure = 0;  // the highest remaining pressure (any k)
  int k_max = 0;
  double pair_link_s = 0;  // the least one-way time of a link between free devices
  std::array<double, kMaxK + 1> bottleneck_k{};  // [k]: with only k devices
  std::array<double, kMaxK + 1> pressure_k{};    // [k]
  std::array<double, kMaxK + 1> idle_k{};        // [k]: idle watts the completion adds
};

// Lower bounds per (free device set, first remaining unit), precomputed when the tables fit
// (2^12 sets x 131 units); without them the search stays exact but prunes less.
class Bounds {
 public:
  explicit Bounds(const CostModel& model);
  bool enabled() const { return enabled_; }

  // For a prefix that still has to cross a link from device `from` (>= 0) into one of
  // `free`, or (from = -1) already sits on a device of `free` that will take unit c.
  Rest rest(uint32_t free, int c, int from) const;

  // Raises p's bottleneck and memory pressure to what every completion reaches anyway
  // (final throughput and memory pressure are maxima, so no final vector changes).
  void clamp(Partial* p, const Rest& r) const {
    p->bottleneck_s = std::max(p->bottleneck_s, r.bottleneck_s);
    p->mem_pressure = std::max(p->mem_pressure, r.mem_pressure);
  }

  // The objective vector no completion of `p` using k more devices can beat;
  // `used_idle_watts` is the idle power of the prefix's devices (0 when energy is left out).
  Objectives lower_bound(const Partial& p, const Rest& r, int k, double used_idle_watts) const;

 private:
  size_t at(uint32_t free, int c) const {
    return free * static_cast<size_t>(n_ + 1) + static_cast<size_t>(c);
  }
  double makespan(const std::vector<int>& members, const std::vector<double>& rate, int u,
                  uint32_t free) const;

  const CostModel& m_;
  PeriodFloor period_floor_;
  int n_ = 0;
  bool enabled_ = false;
  uint32_t stream_mask_ = 0;  // devices that may stream weights (then memory is no bound)
  std::vector<double> sum_s_, max_s_, makespan_s_, sum_e_, fill_s_, fill_e_;  // [free][c]
  std::vector<uint8_t> fits_;                                                 // [free][c]
  std::vector<double> budget_;                                                // [free]
  std::vector<double> idle_;                                                  // [device]
  double min_boundary_bytes_ = 0;
  std::vector<double> pair_link_s_;  // [set]: least one-way link time between two members
  std::vector<double> rate_;         // [device][c]: least seconds per byte of any unit >= c
  double rate_at(int f, int c) const {
    return rate_[static_cast<size_t>(f) * static_cast<size_t>(n_ + 1) + static_cast<size_t>(c)];
  }
  std::vector<double> need_;  // [c]
};

// The least latency, dynamic energy, bottleneck and memory pressure that a completion can
// reach, each minimised on its own, by the exact backward programme over (first unit c,
// device set G the completion uses, device f of its first stage). A partial plan whose
// remaining units [c, n) go to exactly the devices G is then bounded per G rather than by
// relaxations; split over every G a completion may use, the bound stays valid for all of
// them (docs/COST_MODEL.md, "Exact completion bounds"). Built only when the table fits
// (kMaxEntries); every value is shrunk by a relative 1e-9 against rounding, as in Bounds.
class Completions {
 public:
  struct Best {
    double latency_s = INFINITY;  // from the first stage's start to the coordinator
    double energy_dyn_j = INFINITY;
    double bottleneck_s = INFINITY;
    double mem_pressure = INFINITY;
    bool possible() const { return latency_s < INFINITY; }
  };
  static constexpr int64_t kMaxEntries = int64_t{1} << 21;

  explicit Completions(const CostModel& model);
  bool enabled() const { return enabled_; }
  // Completions of [c, n) using exactly `g`, whose first stage runs on `f` (f in g).
  const Best& first_on(int c, uint32_t g, int f) const { return best_[at(c, g, f)]; }
  // The same after a prefix ending on `from` (not in g): the link from -> first device is
  // included, minimised over the first device.
  Best after(int c, uint32_t g, int from) const;

 private:
  size_t at(int c, uint32_t g, int f) const {
    return (static_cast<size_t>(c) * n_masks_ + g) * static_cast<size_t>(d_) +
           static_cast<size_t>(f);
  }
  const CostModel& m_;
  int n_ = 0, d_ = 0;
  size_t n_masks_ = 0;
  bool enabled_ = false;
  std::vector<Best> best_;  // [c][g][f]
};

}  // namespace strata::partitioner::internal
