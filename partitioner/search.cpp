// The exact search. States are (units placed, device set used, last device); each holds the
// Pareto set of its prefixes' vectors (latency, bottleneck, dynamic energy, memory pressure).
// Every final objective is non-decreasing in each of the four, and what a completion adds
// depends only on the state, so a prefix dominated within its state never completes into a
// plan that beats the same completion of the prefix dominating it: pruning loses no point of
// the front (docs/COST_MODEL.md, "Why the search is exact").
//
// Two kinds of sets alternate: a state (c, S, j) holds prefixes whose last stage on j ends at
// unit c; an open set (b, S, j) holds prefixes that crossed the link into j and will start
// its stage at unit b. A state pulls from the open sets of every start b < c, so a link is
// added once per prefix rather than once per (prefix, stage end).
//
// The search runs twice. A beam pass keeps a handful of prefixes per set and yields real
// plans near the front (incumbents). The exact pass then also drops a prefix when an
// incumbent is no worse than the prefix's lower bound (search_bounds.cpp) in every
// objective: all its completions are then dominated by, or equal to, that incumbent. The
// front is the Pareto set of both passes' plans.
#include <algorithm>
#include <array>
#include <bit>

#include "search_internal.h"
#include "strata/base/io.h"

namespace strata::partitioner {
namespace {

using internal::Bounds;
using internal::Rest;

struct Label {
  std::array<double, 4> v;  // latency, bottleneck, dynamic energy, memory pressure
  int32_t parent;           // opens: the state label it came from; states: the previous
                            // stage's state label (-1 at the first stage)
  int16_t begin;            // state labels: first unit of the last stage
  int16_t device;           // state labels: device of the last stage
};

struct Range {
  uint32_t offset = 0;
  uint32_t count = 0;
};

Partial to_partial(const Label& l) { return {l.v[0], l.v[1], l.v[2], l.v[3]}; }
std::array<double, 4> to_array(const Partial& p) {
  return {p.latency_s, p.bottleneck_s, p.energy_dyn_j, p.mem_pressure};
}

enum class Mode { kBeam, kExact };

class Search {
 public:
  Search(const CostModel& model, const SearchOptions& options, const Bounds& bounds)
      : m_(model), options_(options), bounds_(bounds), use_energy_(model.energy_in_dominance()) {}

  // Runs the programme; returns the Pareto set of the complete plans it reached.
  Result<std::vector<PlanPoint>> run(Mode mode, std::vector<Objectives> incumbents,
                                     SearchStats* stats);

 private:
  void keep(Mode mode, std::vector<Label>* out);
  void keep_pareto(std::vector<Label>* out);
  void keep_beam(std::vector<Label>* out);
  bool beaten(const Partial& p, const Rest& r, double used_idle_watts) const;

  const CostModel& m_;
  const SearchOptions& options_;
  const Bounds& bounds_;
  const bool use_energy_;
  internal::DominanceIndex incumbents_;
  mutable int k_hint_ = 1;
  std::vector<Label> cand_;
  std::vector<std::array<double, 3>> kept_;
};

bool Search::beaten(const Partial& p, const Rest& r, double used_idle_watts) const {
  if (incumbents_.empty() || r.k_max < 1) return false;
  // A prefix usually survives for the same k as the one before it: try that k first.
  const int first = std::min(k_hint_, r.k_max);
  if (!incumbents_.covers(bounds_.lower_bound(p, r, first, used_idle_watts))) return false;
  for (int k = 1; k <= r.k_max; ++k) {
    if (k == first) continue;
    if (!incumbents_.covers(bounds_.lower_bound(p, r, k, used_idle_watts))) {
      k_hint_ = k;
      return false;
    }
  }
  return true;
}

// Appends the non-dominated labels of cand_ to `out`. After sorting by (latency, bottleneck,
// energy, memory) a label can only be dominated by an earlier one, so one pass against the
// kept ones suffices; equal vectors keep the first.
void Search::keep_pareto(std::vector<Label>* out) {
  const bool e = use_energy_;
  std::sort(cand_.begin(), cand_.end(), [e](const Label& a, const Label& b) {
    if (a.v[0] != b.v[0]) return a.v[0] < b.v[0];
    if (a.v[1] != b.v[1]) return a.v[1] < b.v[1];
    if (e && a.v[2] != b.v[2]) return a.v[2] < b.v[2];
    return a.v[3] < b.v[3];
  });
  kept_.clear();
  const double f = 1.0 + options_.epsilon;
  for (const Label& x : cand_) {
    const double xb = x.v[1] * f, xe = e ? x.v[2] * f : 0.0, xm = x.v[3] * f;
    bool dominated = false;
    // Labels close in latency are the likeliest to dominate: scan the newest first.
    for (auto y = kept_.rbegin(); y != kept_.rend(); ++y) {
      if ((*y)[0] <= xb && (*y)[1] <= xe && (*y)[2] <= xm) {
        dominated = true;
        break;
      }
    }
    if (dominated) continue;
    kept_.push_back({x.v[1], e ? x.v[2] : 0.0, x.v[3]});
    out->push_back(x);
  }
}

// Keeps the best label of cand_ for each of a few scores: each objective alone and sums of
// objectives scaled by their least value in the set.
void Search::keep_beam(std::vector<Label>* out) {
  std::array<double, 4> least{INFINITY, INFINITY, INFINITY, INFINITY};
  for (const Label& x : cand_) {
    for (size_t k = 0; k < 4; ++k) least[k] = std::min(least[k], x.v[k]);
  }
  for (double& l : least) l = l > 0 ? 1.0 / l : 1.0;
  if (!use_energy_) least[2] = 0;
  // Weights on (latency, bottleneck, energy, memory) of each score.
  static constexpr double kScores[][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1},
                                          {1, 1, 0, 0}, {1, 0, 1, 0}, {1, 0, 0, 1}, {0, 1, 0, 1},
                                          {0, 1, 1, 0}, {1, 1, 1, 1}, {2, 1, 1, 1}, {1, 2, 1, 1}};
  std::vector<size_t> chosen;
  for (const auto& w : kScores) {
    double best = INFINITY;
    size_t best_i = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
      double s = 0;
      for (size_t k = 0; k < 4; ++k) s += w[k] * least[k] * cand_[i].v[k];
      if (s < best) {
        best = s;
        best_i = i;
      }
    }
    if (std::find(chosen.begin(), chosen.end(), best_i) == chosen.end()) chosen.push_back(best_i);
  }
  for (const size_t i : chosen) out->push_back(cand_[i]);
}

void Search::keep(Mode mode, std::vector<Label>* out) {
  if (mode == Mode::kBeam) {
    keep_beam(out);
  } else {
    keep_pareto(out);
  }
}

Result<std::vector<PlanPoint>> Search::run(Mode mode, std::vector<Objectives> incumbents,
                                           SearchStats* stats) {
  incumbents_ = internal::DominanceIndex(incumbents, use_energy_);
  const bool prune = mode == Mode::kExact;
  const int n = m_.n_units();
  const int d = m_.n_devices();
  const uint32_t n_masks = uint32_t{1} << d;
  const uint32_t full = n_masks - 1;
  const auto ud = static_cast<size_t>(d);
  auto open_at = [&](int b, uint32_t mask, int j) {
    return (static_cast<size_t>(b) * n_masks + mask) * ud + static_cast<size_t>(j);
  };
  auto idle_of = [&](uint32_t mask) { return use_energy_ ? m_.idle_watts(mask) : 0.0; };

  std::vector<Range> open_ranges(static_cast<size_t>(n) * n_masks * ud);
  std::vector<Range> state_ranges(n_masks * ud);
  std::vector<Label> opens;
  std::vector<Label> labels;
  std::vector<Objectives> finals;
  std::vector<std::pair<int32_t, uint32_t>> where;  // finals' (label, device mask)

  for (int j = 0; j < d; ++j) {
    if (m_.interchangeable_below(j) != 0) continue;  // its class starts with a lower index
    Partial p = m_.start(j);
    const Rest r = bounds_.rest(full, 0, -1);
    bounds_.clamp(&p, r);
    if (!r.possible || (prune && beaten(p, r, idle_of(1U << j)))) continue;
    open_ranges[open_at(0, 1U << j, j)] = {static_cast<uint32_t>(opens.size()), 1};
    opens.push_back({to_array(p), -1, 0, static_cast<int16_t>(j)});
  }

  for (int c = 1; c <= n; ++c) {
    std::fill(state_ranges.begin(), state_ranges.end(), Range{});
    // States at c: the last stage [b, c) on j after the open set (b, S, j).
    for (uint32_t mask = 1; mask < n_masks; ++mask) {
      const int k = std::popcount(mask);
      if (k > c || (mask == full && c < n)) continue;
      const uint32_t free = full & ~mask;
      const double idle = idle_of(mask);
      for (int j = 0; j < d; ++j) {
        if ((mask >> j & 1U) == 0) continue;
        Rest r;
        if (c < n) {
          r = bounds_.rest(free, c, j);
          if (!r.possible) continue;
        }
        cand_.clear();
        for (int b = k - 1; b < c; ++b) {
          const Range range = open_ranges[open_at(b, mask, j)];
          if (range.count == 0 || !m_.stage(j, b, c).feasible) continue;
          for (uint32_t o = range.offset; o < range.offset + range.count; ++o) {
            Partial q = m_.add_stage(to_partial(opens[o]), j, b, c);
            if (c < n) {
              bounds_.clamp(&q, r);
              if (prune && beaten(q, r, idle)) continue;
            }
            cand_.push_back(
                {to_array(q), opens[o].parent, static_cast<int16_t>(b), static_cast<int16_t>(j)});
          }
        }
        if (cand_.empty()) continue;
        stats->candidates += static_cast<int64_t>(cand_.size());
        ++stats->states;
        if (c == n) {
          // Complete plans: compare their final objectives directly; one an incumbent is no
          // worse than adds nothing (it is dominated by or equal to the incumbent).
          for (const Label& x : cand_) {
            const Objectives o = m_.finish(to_partial(x), j, mask);
            if (prune && !incumbents_.empty() && incumbents_.covers(o)) continue;
            finals.push_back(o);
            where.emplace_back(static_cast<int32_t>(labels.size()), mask);
            labels.push_back(x);
          }
          continue;
        }
        const auto start = static_cast<uint32_t>(labels.size());
        keep(mode, &labels);
        state_ranges[mask * ud + static_cast<size_t>(j)] = {
            start, static_cast<uint32_t>(labels.size()) - start};
      }
    }
    if (static_cast<int64_t>(labels.size() + opens.size()) > options_.max_labels) {
      return resource_exhausted(
          "the search holds over " + std::to_string(options_.max_labels) +
          " partial plans at unit " + std::to_string(c) + " of " + std::to_string(n) +
          "; bound it with an epsilon (--epsilon 0.01) or plan with fewer devices");
    }
    if (c == n) break;
    // Open sets at c: every state (c, S - j, i) crossing the link i -> j.
    for (uint32_t mask = 3; mask < n_masks; ++mask) {
      const int k = std::popcount(mask);
      if (k < 2 || k - 1 > c) continue;
      const double idle = idle_of(mask);
      for (int j = 0; j < d; ++j) {
        if ((mask >> j & 1U) == 0) continue;
        const uint32_t prev = mask & ~(1U << j);
        const uint32_t below = m_.interchangeable_below(j);
        if ((prev & below) != below) continue;  // an equal device of lower index is unused
        const Rest r = bounds_.rest((full & ~mask) | 1U << j, c, -1);
        if (!r.possible) continue;
        cand_.clear();
        for (int i = 0; i < d; ++i) {
          const Range range = state_ranges[prev * ud + static_cast<size_t>(i)];
          for (uint32_t l = range.offset; l < range.offset + range.count; ++l) {
            Partial q = m_.add_link(to_partial(labels[l]), i, j, c);
            bounds_.clamp(&q, r);
            if (prune && beaten(q, r, idle)) continue;
            cand_.push_back({to_array(q), static_cast<int32_t>(l), 0, 0});
          }
        }
        if (cand_.empty()) continue;
        stats->candidates += static_cast<int64_t>(cand_.size());
        const auto start = static_cast<uint32_t>(opens.size());
        keep(mode, &opens);
        open_ranges[open_at(c, mask, j)] = {start, static_cast<uint32_t>(opens.size()) - start};
      }
    }
    if (options_.progress && mode == Mode::kExact) options_.progress(c, n);
  }
  stats->labels += static_cast<int64_t>(labels.size() + opens.size());

  stats->complete += static_cast<int64_t>(finals.size());
  std::vector<PlanPoint> plans;
  for (const size_t i : internal::pareto_indices(finals, use_energy_)) {
    PlanPoint p;
    p.objectives = finals[i];
    p.device_mask = where[i].second;
    int end = n;
    for (int32_t l = where[i].first; l >= 0; l = labels[static_cast<size_t>(l)].parent) {
      const Label& lab = labels[static_cast<size_t>(l)];
      p.stages.push_back({lab.device, lab.begin, end});
      end = lab.begin;
    }
    std::reverse(p.stages.begin(), p.stages.end());
    plans.push_back(std::move(p));
  }
  return plans;
}

}  // namespace

Result<Front> search_front(const CostModel& model, const SearchOptions& options) {
  const double t0 = now_s();
  const Bounds bounds(model);
  Search search(model, options, bounds);
  Front front;
  front.exact = options.epsilon <= 0;
  STRATA_ASSIGN_OR_RETURN(std::vector<PlanPoint> beam, search.run(Mode::kBeam, {}, &front.stats));
  std::vector<Objectives> incumbents;
  for (const auto& p : beam) incumbents.push_back(p.objectives);
  front.stats.incumbents = static_cast<int64_t>(beam.size());
  STRATA_ASSIGN_OR_RETURN(std::vector<PlanPoint> exact,
                          search.run(Mode::kExact, std::move(incumbents), &front.stats));
  for (auto& p : beam) exact.push_back(std::move(p));
  front.plans = pareto_filter(std::move(exact), model.energy_in_dominance());
  if (options.progress) options.progress(model.n_units(), model.n_units());
  front.stats.seconds = now_s() - t0;
  return front;
}

}  // namespace strata::partitioner
