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
// front is the Pareto set of both passes' plans. That test is monotone, so it runs on blocks
// of prefixes first and on single prefixes only after the dominance filter of their set
// (search_keep.cpp), which leaves far fewer to test.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <thread>

#include "search_internal.h"
#include "search_labels.h"
#include "strata/base/io.h"

namespace strata::partitioner {
namespace {

using internal::Bounds;
using internal::Label;
using internal::Range;
using internal::Rest;
using internal::to_array;
using internal::to_partial;

enum class Mode { kBeam, kExact };

// Blocks of labels whose least fields for_each_live bounds first.
constexpr uint32_t kBlock = 16;

// A set the programme fills in one task: a state (c, S, j) or an open set (c, S, j).
struct Task {
  uint32_t mask;
  int j;
};

// What one task produced: its kept labels (and, at the last unit, their final objectives).
struct TaskOutput {
  std::vector<Label> labels;
  std::vector<Objectives> finals;
  int64_t candidates = 0;
  bool live = false;  // some candidate passed the incumbent test
};

// What the completions of one set's prefixes that use exactly the devices G can reach
// (search_completion.cpp), with the idle watts of every device of such a plan.
struct Part {
  internal::Completions::Best best;
  double idle_watts = 0;
};

// Scratch of one thread. The hints only speed up the incumbent test; they never change it.
struct Worker {
  std::vector<Label> cand;
  internal::KeepScratch keep;
  int k_hint = 1;
  int32_t hit = 0;
  // The current set's parts (one per device set a completion may use) and the least of each
  // objective over them; `parts_on` is false when the completion table is not built.
  bool parts_on = false;
  std::vector<Part> parts;
  internal::Completions::Best floor;
  Part floor_part;  // the floor with the least idle watts of any part
  size_t part_hint = 0;
};

class Search {
 public:
  Search(const CostModel& model, const SearchOptions& options, const Bounds& bounds,
         const internal::Completions& completions)
      : m_(model),
        options_(options),
        bounds_(bounds),
        completions_(completions),
        period_floor_(model),
        use_energy_(model.energy_in_dominance()) {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    threads_ = options.threads > 0 ? options.threads : static_cast<int>(hw);
  }

  // Runs the programme; returns the Pareto set of the complete plans it reached.
  Result<std::vector<PlanPoint>> run(Mode mode, std::vector<Objectives> incumbents,
                                     SearchStats* stats);

 private:
  void keep(Mode mode, Worker& w, std::vector<Label>* out) const;
  // Whether the incumbent test waits for the dominance filter (keep_unbeaten). Without the
  // completion table the bounds are weaker, blocks of prefixes are seldom beaten, and the
  // filter would see most prefixes the test drops.
  bool bound_after_keep(Mode mode) const {
    return mode == Mode::kExact && options_.epsilon <= 0 && completions_.enabled();
  }
  void keep_unbeaten(Mode mode, Worker& w, const Rest& r, double idle,
                     std::vector<Label>* out) const;
  bool prepare(Worker& w, uint32_t used, int c, int from, int first) const;
  void raise_floors(const Worker& w, Partial* p) const;
  bool beaten(Worker& w, const Partial& p, const Rest& r, double used_idle_watts) const;
  bool floor_covered(Worker& w, const Partial& p) const;
  template <typename Extend, typename Fn>
  void for_each_live(Worker& w, const std::vector<Label>& from, uint32_t begin, uint32_t end,
                     const Rest& r, double idle, const Extend& extend, const Fn& fn) const;
  double idle_of(uint32_t mask) const { return use_energy_ ? m_.idle_watts(mask) : 0.0; }
  // Runs fn(worker, task index) for every task on the threads; each task writes only its own
  // output, so the result does not depend on the number of threads.
  template <typename Fn>
  void for_each_task(size_t n_tasks, Fn&& fn);

  const CostModel& m_;
  const SearchOptions& options_;
  const Bounds& bounds_;
  const internal::Completions& completions_;
  const internal::PeriodFloor period_floor_;
  const bool use_energy_;
  int threads_ = 1;
  internal::DominanceIndex incumbents_;
  std::vector<Worker> workers_;
  // Completions::after(c, g, from) for the current c, [g][from]: every state at c asks for
  // many of them, and each costs a link time per device of g.
  std::vector<internal::Completions::Best> after_;
};

template <typename Fn>
void Search::for_each_task(size_t n_tasks, Fn&& fn) {
  const size_t n_threads =
      std::min(static_cast<size_t>(threads_), std::max<size_t>(1, n_tasks / 256));
  if (workers_.size() < n_threads) workers_.resize(n_threads);
  std::atomic<size_t> next{0};
  auto loop = [&](Worker& w) {
    for (size_t t = next.fetch_add(1); t < n_tasks; t = next.fetch_add(1)) fn(w, t);
  };
  std::vector<std::thread> pool;
  for (size_t i = 1; i < n_threads; ++i) pool.emplace_back(loop, std::ref(workers_[i]));
  loop(workers_[0]);
  for (auto& t : pool) t.join();
}

// Collects the parts of a set whose prefixes used the devices `used` and go on at unit c:
// after a stage on `from` (first = -1) the completion crosses a link into a free device;
// in an open set (from = -1) its first stage is on `first`, already in `used`. Returns false
// when no completion is possible at all.
bool Search::prepare(Worker& w, uint32_t used, int c, int from, int first) const {
  w.parts_on = completions_.enabled();
  if (!w.parts_on) return true;
  w.parts.clear();
  w.part_hint = 0;
  w.floor = {};
  const uint32_t full = (uint32_t{1} << m_.n_devices()) - 1;
  const uint32_t free = full & ~used;
  const int left = m_.n_units() - c;
  // Every subset g of the free devices, the empty one too when the first device is fixed.
  for (uint32_t g = free;; g = (g - 1) & free) {
    const uint32_t devices = from >= 0 ? g : (g | 1U << first);
    if (devices != 0 && std::popcount(devices) <= left) {
      const internal::Completions::Best& b =
          from >= 0
              ? after_[devices * static_cast<size_t>(m_.n_devices()) + static_cast<size_t>(from)]
              : completions_.first_on(c, devices, first);
      if (b.possible()) {
        w.parts.push_back({b, idle_of(used | devices)});
        w.floor.latency_s = std::min(w.floor.latency_s, b.latency_s);
        w.floor.energy_dyn_j = std::min(w.floor.energy_dyn_j, b.energy_dyn_j);
        w.floor.bottleneck_s = std::min(w.floor.bottleneck_s, b.bottleneck_s);
        w.floor.mem_pressure = std::min(w.floor.mem_pressure, b.mem_pressure);
      }
    }
    if (g == 0) break;
  }
  w.floor_part = {w.floor, INFINITY};
  for (const Part& part : w.parts) {
    w.floor_part.idle_watts = std::min(w.floor_part.idle_watts, part.idle_watts);
  }
  return !w.parts.empty();
}

// As Bounds::clamp, with the exact least bottleneck and pressure of any completion.
void Search::raise_floors(const Worker& w, Partial* p) const {
  if (!w.parts_on) return;
  // Every completion's bottleneck is at least the floor's, so the final maximum is unchanged.
  p->bottleneck_s = std::max(p->bottleneck_s, w.floor.bottleneck_s);
  p->mem_pressure = std::max(p->mem_pressure, w.floor.mem_pressure);
}

// True when an incumbent covers the bound of the set's floor part: no worse than any part, so
// the incumbent then covers every part's bound too.
bool Search::floor_covered(Worker& w, const Partial& p) const {
  if (!w.parts_on || incumbents_.empty()) return false;
  const Part& part = w.floor_part;
  Objectives lb;
  lb.latency_s = (p.latency_s + part.best.latency_s) * internal::kShrink;
  lb.period_s = period_floor_(lb.latency_s, std::max(p.bottleneck_s, part.best.bottleneck_s));
  lb.energy_j =
      use_energy_
          ? ((p.energy_dyn_j + part.best.energy_dyn_j) / static_cast<double>(m_.micro_batch()) +
             part.idle_watts * lb.period_s) *
                internal::kShrink
          : 0.0;
  lb.mem_pressure = std::max(p.mem_pressure, part.best.mem_pressure);
  return incumbents_.covers(lb, &w.hit);
}

// Calls fn(i, q) for each label i of from[begin, end) whose extension q = extend(label) the
// current set's bounds (Search::beaten, with the set's Rest `r` and idle watts) do not show
// beaten, and for some that they do. Labels go in blocks: the bound is non-decreasing in
// every field of the prefix and so are the extension's sums and maxima (rounding is
// monotone), so the extension of a block's least fields, when beaten, shows every label of
// the block beaten by the very tests each would get alone. A set's labels come sorted by
// latency, so a block's neighbours are alike and its least fields close to each of them.
template <typename Extend, typename Fn>
void Search::for_each_live(Worker& w, const std::vector<Label>& from, uint32_t begin, uint32_t end,
                           const Rest& r, double idle, const Extend& extend, const Fn& fn) const {
  for (uint32_t block = begin; block < end; block += kBlock) {
    const uint32_t block_end = std::min(end, block + kBlock);
    if (block_end - block > 1 && !incumbents_.empty()) {
      std::array<double, 4> v = from[block].v;
      for (uint32_t i = block + 1; i < block_end; ++i) {
        for (size_t k = 0; k < 4; ++k) v[k] = std::min(v[k], from[i].v[k]);
      }
      if (beaten(w, extend(Partial{v[0], v[1], v[2], v[3]}), r, idle)) continue;
    }
    for (uint32_t i = block; i < block_end; ++i) fn(i, extend(to_partial(from[i])));
  }
}

bool Search::beaten(Worker& w, const Partial& p, const Rest& r, double used_idle_watts) const {
  if (w.parts_on) {
    if (incumbents_.empty()) return false;
    const double micro_batch = static_cast<double>(m_.micro_batch());
    const size_t n_parts = w.parts.size();
    auto part_covered = [&](const Part& part) {
      Objectives lb;
      lb.latency_s = (p.latency_s + part.best.latency_s) * internal::kShrink;
      lb.period_s = period_floor_(lb.latency_s, std::max(p.bottleneck_s, part.best.bottleneck_s));
      lb.energy_j = use_energy_ ? ((p.energy_dyn_j + part.best.energy_dyn_j) / micro_batch +
                                   part.idle_watts * lb.period_s) *
                                      internal::kShrink
                                : 0.0;
      lb.mem_pressure = std::max(p.mem_pressure, part.best.mem_pressure);
      return incumbents_.covers(lb, &w.hit);
    };
    // Most prefixes asked here survive (the dominance filter and the block bounds took the
    // others), and the part that let the last one survive usually lets this one survive too:
    // try it before the floor, which only settles prefixes that are beaten.
    const size_t first = w.part_hint % n_parts;
    if (!part_covered(w.parts[first])) return false;
    if (floor_covered(w, p)) return true;
    for (size_t t = 1; t < n_parts; ++t) {
      const size_t i = (first + t) % n_parts;
      if (!part_covered(w.parts[i])) {
        w.part_hint = i;
        return false;
      }
    }
    return true;
  }
  if (incumbents_.empty() || r.k_max < 1) return false;
  // A prefix usually survives for the same k as the one before it: try that k first.
  const int first = std::min(w.k_hint, r.k_max);
  if (!incumbents_.covers(bounds_.lower_bound(p, r, first, used_idle_watts), &w.hit)) {
    return false;
  }
  for (int k = 1; k <= r.k_max; ++k) {
    if (k == first) continue;
    if (!incumbents_.covers(bounds_.lower_bound(p, r, k, used_idle_watts), &w.hit)) {
      w.k_hint = k;
      return false;
    }
  }
  return true;
}

void Search::keep(Mode mode, Worker& w, std::vector<Label>* out) const {
  if (w.cand.empty()) return;
  if (mode == Mode::kBeam) {
    internal::keep_beam(w.cand, use_energy_, out);
  } else {
    internal::keep_pareto(&w.cand, use_energy_, options_.epsilon, &w.keep, out);
  }
}

// keep(), then in the exact search without epsilon the incumbent test on what is kept. The
// test is monotone (a prefix no worse than a beaten one is beaten too), so a prefix that the
// test keeps is dominated within the set only by prefixes it keeps too: testing after the
// dominance filter keeps the very labels that testing before it does, and most candidates
// never reach the test.
void Search::keep_unbeaten(Mode mode, Worker& w, const Rest& r, double idle,
                           std::vector<Label>* out) const {
  if (!bound_after_keep(mode)) {
    keep(mode, w, out);
    return;
  }
  const size_t first = out->size();
  keep(mode, w, out);
  size_t kept = first;
  for (size_t i = first; i < out->size(); ++i) {
    if (!beaten(w, to_partial((*out)[i]), r, idle)) (*out)[kept++] = (*out)[i];
  }
  out->resize(kept);
}

Result<std::vector<PlanPoint>> Search::run(Mode mode, std::vector<Objectives> incumbents,
                                           SearchStats* stats) {
  incumbents_ = internal::DominanceIndex(incumbents, use_energy_);
  const bool prune = mode == Mode::kExact;
  const bool test_now = prune && !bound_after_keep(mode);
  const int n = m_.n_units();
  const int d = m_.n_devices();
  const uint32_t n_masks = uint32_t{1} << d;
  const uint32_t full = n_masks - 1;
  const auto ud = static_cast<size_t>(d);
  auto open_at = [&](int b, uint32_t mask, int j) {
    return (static_cast<size_t>(b) * n_masks + mask) * ud + static_cast<size_t>(j);
  };

  std::vector<Range> open_ranges(static_cast<size_t>(n) * n_masks * ud);
  std::vector<Range> state_ranges(n_masks * ud);
  std::vector<Label> opens;
  std::vector<Label> labels;
  std::vector<Objectives> finals;
  std::vector<std::pair<int32_t, uint32_t>> where;  // finals' (label, device mask)
  std::vector<Task> tasks;
  std::vector<TaskOutput> outputs;
  int64_t dropped_here = 0;  // state labels cross_filter removed (their slots stay unused)
  if (workers_.empty()) workers_.resize(1);

  for (int j = 0; j < d; ++j) {
    if (m_.interchangeable_below(j) != 0) continue;  // its class starts with a lower index
    Partial p = m_.start(j);
    const Rest r = bounds_.rest(full, 0, -1);
    if (!r.possible || !prepare(workers_[0], 1U << j, 0, -1, j)) continue;
    bounds_.clamp(&p, r);
    raise_floors(workers_[0], &p);
    if (prune && beaten(workers_[0], p, r, idle_of(1U << j))) continue;
    open_ranges[open_at(0, 1U << j, j)] = {static_cast<uint32_t>(opens.size()), 1};
    opens.push_back({to_array(p), -1, 0, static_cast<int16_t>(j)});
  }

  for (int c = 1; c <= n; ++c) {
    if (c < n && completions_.enabled()) {
      after_.assign(n_masks * ud, {});
      for (uint32_t g = 1; g < n_masks; ++g) {
        for (int j = 0; j < d; ++j) {
          if ((g >> j & 1U) == 0)
            after_[g * ud + static_cast<size_t>(j)] = completions_.after(c, g, j);
        }
      }
    }
    // States at c: the last stage [b, c) on j after the open set (b, S, j).
    tasks.clear();
    for (uint32_t mask = 1; mask < n_masks; ++mask) {
      const int k = std::popcount(mask);
      if (k > c || (mask == full && c < n)) continue;
      for (int j = 0; j < d; ++j) {
        if ((mask >> j & 1U) != 0) tasks.push_back({mask, j});
      }
    }
    outputs.assign(tasks.size(), {});
    for_each_task(tasks.size(), [&](Worker& w, size_t t) {
      const uint32_t mask = tasks[t].mask;
      const int j = tasks[t].j;
      const int k = std::popcount(mask);
      // Most sets have nothing to extend: find out before computing bounds.
      bool any = false;
      for (int b = k - 1; b < c && !any; ++b) {
        any = open_ranges[open_at(b, mask, j)].count > 0 && m_.stage(j, b, c).feasible;
      }
      if (!any) return;
      const double idle = idle_of(mask);
      Rest r;
      if (c < n) {
        r = bounds_.rest(full & ~mask, c, j);
        if (!r.possible || !prepare(w, mask, c, j, -1)) return;
      }
      w.cand.clear();
      for (int b = k - 1; b < c; ++b) {
        const Range range = open_ranges[open_at(b, mask, j)];
        if (range.count == 0 || !m_.stage(j, b, c).feasible) continue;
        auto push = [&](uint32_t o, const Partial& q) {
          w.cand.push_back(
              {to_array(q), opens[o].parent, static_cast<int16_t>(b), static_cast<int16_t>(j)});
        };
        if (c == n) {
          for (uint32_t o = range.offset; o < range.offset + range.count; ++o) {
            push(o, m_.add_stage(to_partial(opens[o]), j, b, c));
          }
          continue;
        }
        auto extend = [&](const Partial& p) {
          Partial q = m_.add_stage(p, j, b, c);
          bounds_.clamp(&q, r);
          raise_floors(w, &q);
          return q;
        };
        for_each_live(w, opens, range.offset, range.offset + range.count, r, idle, extend,
                      [&](uint32_t o, const Partial& q) {
                        if (!test_now || !beaten(w, q, r, idle)) push(o, q);
                      });
      }
      TaskOutput& out = outputs[t];
      out.candidates = static_cast<int64_t>(w.cand.size());
      if (c < n) {
        keep_unbeaten(mode, w, r, idle, &out.labels);
        out.live = bound_after_keep(mode) ? !out.labels.empty() : out.candidates > 0;
        return;
      }
      out.live = out.candidates > 0;
      // Complete plans: compare their final objectives directly; one an incumbent is no worse
      // than adds nothing (it is dominated by or equal to the incumbent), nor does one that
      // another plan of this set beats.
      std::vector<Objectives> objs;
      std::vector<size_t> from;
      for (size_t i = 0; i < w.cand.size(); ++i) {
        const Objectives o = m_.finish(to_partial(w.cand[i]), j, mask);
        if (prune && !incumbents_.empty() && incumbents_.covers(o, &w.hit)) continue;
        objs.push_back(o);
        from.push_back(i);
      }
      for (const size_t i : internal::pareto_indices(objs, use_energy_)) {
        out.finals.push_back(objs[i]);
        out.labels.push_back(w.cand[from[i]]);
      }
    });
    std::fill(state_ranges.begin(), state_ranges.end(), Range{});
    for (size_t t = 0; t < tasks.size(); ++t) {
      TaskOutput& out = outputs[t];
      stats->candidates += out.candidates;
      stats->states += out.live;
      const auto start = static_cast<uint32_t>(labels.size());
      for (size_t i = 0; i < out.finals.size(); ++i) {
        finals.push_back(out.finals[i]);
        where.emplace_back(static_cast<int32_t>(start + i), tasks[t].mask);
      }
      labels.insert(labels.end(), out.labels.begin(), out.labels.end());
      state_ranges[tasks[t].mask * ud + static_cast<size_t>(tasks[t].j)] = {
          start, static_cast<uint32_t>(out.labels.size())};
    }
    if (c < n) {
      // Prefixes of one device set that end on different devices compete too.
      tasks.clear();
      for (uint32_t mask = 1; mask < full; ++mask) {
        if (std::popcount(mask) <= c) tasks.push_back({mask, 0});
      }
      std::vector<int64_t> dropped(tasks.size(), 0);
      for_each_task(tasks.size(), [&](Worker&, size_t t) {
        dropped[t] =
            internal::cross_filter(m_, use_energy_, tasks[t].mask, c, &labels, &state_ranges);
      });
      for (const int64_t x : dropped) {
        stats->cross_dropped += x;
        dropped_here += x;
      }
    }
    if (static_cast<int64_t>(labels.size() + opens.size()) > options_.max_labels) {
      return resource_exhausted(
          "the search holds over " + std::to_string(options_.max_labels) +
          " partial plans at unit " + std::to_string(c) + " of " + std::to_string(n) + "; " +
          (options_.epsilon > 0 ? "use a larger epsilon"
                                : "bound it with an epsilon (--epsilon 0.01)") +
          " or plan with fewer devices");
    }
    if (c == n) break;
    // Open sets at c: every state (c, S - j, i) crossing the link i -> j.
    tasks.clear();
    for (uint32_t mask = 3; mask < n_masks; ++mask) {
      const int k = std::popcount(mask);
      if (k < 2 || k - 1 > c) continue;
      for (int j = 0; j < d; ++j) {
        if ((mask >> j & 1U) == 0) continue;
        const uint32_t below = m_.interchangeable_below(j);
        // An equal device of lower index must be in use already.
        if (((mask & ~(1U << j)) & below) == below) tasks.push_back({mask, j});
      }
    }
    outputs.assign(tasks.size(), {});
    for_each_task(tasks.size(), [&](Worker& w, size_t t) {
      const uint32_t mask = tasks[t].mask;
      const int j = tasks[t].j;
      const uint32_t prev = mask & ~(1U << j);
      bool any = false;
      for (int i = 0; i < d && !any; ++i)
        any = state_ranges[prev * ud + static_cast<size_t>(i)].count > 0;
      if (!any) return;
      const Rest r = bounds_.rest((full & ~mask) | 1U << j, c, -1);
      if (!r.possible || !prepare(w, mask, c, -1, j)) return;
      const double idle = idle_of(mask);
      w.cand.clear();
      for (int i = 0; i < d; ++i) {
        const Range range = state_ranges[prev * ud + static_cast<size_t>(i)];
        auto extend = [&](const Partial& p) {
          Partial q = m_.add_link(p, i, j, c);
          bounds_.clamp(&q, r);
          raise_floors(w, &q);
          return q;
        };
        for_each_live(w, labels, range.offset, range.offset + range.count, r, idle, extend,
                      [&](uint32_t l, const Partial& q) {
                        if (!test_now || !beaten(w, q, r, idle)) {
                          w.cand.push_back({to_array(q), static_cast<int32_t>(l), 0, 0});
                        }
                      });
      }
      outputs[t].candidates = static_cast<int64_t>(w.cand.size());
      keep_unbeaten(mode, w, r, idle, &outputs[t].labels);
    });
    for (size_t t = 0; t < tasks.size(); ++t) {
      const TaskOutput& out = outputs[t];
      stats->candidates += out.candidates;
      const auto start = static_cast<uint32_t>(opens.size());
      opens.insert(opens.end(), out.labels.begin(), out.labels.end());
      open_ranges[open_at(c, tasks[t].mask, tasks[t].j)] = {
          start, static_cast<uint32_t>(out.labels.size())};
    }
    if (options_.progress && mode == Mode::kExact) options_.progress(c, n);
  }
  stats->labels += static_cast<int64_t>(labels.size() + opens.size());
  stats->labels -= dropped_here;

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
  const internal::Completions completions(model);
  Search search(model, options, bounds, completions);
  Front front;
  front.exact = options.epsilon <= 0;
  STRATA_ASSIGN_OR_RETURN(std::vector<PlanPoint> beam, search.run(Mode::kBeam, {}, &front.stats));
  std::vector<Objectives> incumbents;
  for (const auto& p : beam) incumbents.push_back(p.objectives);
  front.stats.incumbents = static_cast<int64_t>(beam.size());
  front.stats.beam_seconds = now_s() - t0;
  STRATA_ASSIGN_OR_RETURN(std::vector<PlanPoint> exact,
                          search.run(Mode::kExact, std::move(incumbents), &front.stats));
  for (auto& p : beam) exact.push_back(std::move(p));
  front.plans = pareto_filter(std::move(exact), model.energy_in_dominance());
  if (options.progress) options.progress(model.n_units(), model.n_units());
  front.stats.seconds = now_s() - t0;
  return front;
}

}  // namespace strata::partitioner
