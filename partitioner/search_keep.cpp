// The filters that keep a set's labels: the Pareto filter of the exact pass, the beam's
// choice, and the filter across the last devices of one device set.
#include <algorithm>
#include <iterator>

#include "search_labels.h"

namespace strata::partitioner::internal {
namespace {

// Candidate sets above this size are filtered with a Skyline3 rather than a linear scan.
constexpr size_t kSkylineFrom = 64;
// How many of the latest kept labels cross_filter tries against each label.
constexpr size_t kCrossScan = 48;

// Sorts *a by `less`. Labels arrive as runs that are already sorted, or nearly: a set's
// labels are kept in this order and a stage or link adds the same time to each. Merging the
// ascending runs costs log(runs) passes where a sort costs log(size). `merged`, `run_ends`:
// scratch.
template <typename T, typename Less>
void sort_runs(std::vector<T>* a, std::vector<T>* merged, std::vector<size_t>* run_ends,
               const Less& less) {
  run_ends->clear();
  for (size_t i = 1; i < a->size(); ++i) {
    if (less((*a)[i], (*a)[i - 1])) run_ends->push_back(i);
  }
  run_ends->push_back(a->size());
  if (run_ends->size() == 1) return;
  if (run_ends->size() * 8 > a->size()) {  // short runs: merging gains nothing
    std::sort(a->begin(), a->end(), less);
    return;
  }
  merged->resize(a->size());
  std::vector<T>* from = a;
  std::vector<T>* to = merged;
  while (run_ends->size() > 1) {
    size_t begin = 0, kept = 0;
    for (size_t r = 0; r < run_ends->size(); r += 2) {
      const size_t mid = (*run_ends)[r];
      const size_t end = r + 1 < run_ends->size() ? (*run_ends)[r + 1] : mid;
      const auto f = from->begin();
      std::merge(f + static_cast<std::ptrdiff_t>(begin), f + static_cast<std::ptrdiff_t>(mid),
                 f + static_cast<std::ptrdiff_t>(mid), f + static_cast<std::ptrdiff_t>(end),
                 to->begin() + static_cast<std::ptrdiff_t>(begin), less);
      (*run_ends)[kept++] = end;
      begin = end;
    }
    run_ends->resize(kept);
    std::swap(from, to);
  }
  if (from != a) a->swap(*merged);
}

}  // namespace

// Appends the non-dominated labels of *cand to `out` (sorting *cand). After sorting by (latency,
// bottleneck, energy, memory) a label can only be dominated by an earlier one, so one pass
// against the kept ones suffices; equal vectors keep the first.
void keep_pareto(std::vector<Label>* cand, bool use_energy, double epsilon, KeepScratch* w,
                 std::vector<Label>* out) {
  const bool e = use_energy;
  sort_runs(cand, &w->merged, &w->run_ends, [e](const Label& a, const Label& b) {
    if (a.v[0] != b.v[0]) return a.v[0] < b.v[0];
    if (a.v[1] != b.v[1]) return a.v[1] < b.v[1];
    if (e && a.v[2] != b.v[2]) return a.v[2] < b.v[2];
    return a.v[3] < b.v[3];
  });
  const double f = 1.0 + epsilon;
  if ((*cand).size() > kSkylineFrom) {
    // Large sets: ask the skyline instead of scanning every kept label.
    w->ms.clear();
    for (const Label& x : (*cand)) {
      w->ms.push_back(x.v[3]);
      if (f != 1.0) w->ms.push_back(x.v[3] * f);
    }
    if (f == 1.0) {
      // Exact: one rank serves both the question and the insertion.
      w->sky.reset(&w->ms, &w->ranks);
      for (size_t i = 0; i < (*cand).size(); ++i) {
        const Label& x = (*cand)[i];
        const size_t rank = w->ranks[i];
        if (w->sky.covered_at(rank, x.v[1], e ? x.v[2] : 0.0)) continue;
        w->sky.insert_at(rank, x.v[1], e ? x.v[2] : 0.0);
        out->push_back(x);
      }
      return;
    }
    w->sky.reset(&w->ms);
    for (const Label& x : (*cand)) {
      if (w->sky.covered(x.v[1] * f, e ? x.v[2] * f : 0.0, x.v[3] * f)) continue;
      w->sky.insert(x.v[1], e ? x.v[2] : 0.0, x.v[3]);
      out->push_back(x);
    }
    return;
  }
  w->kept.clear();
  for (const Label& x : (*cand)) {
    const double xb = x.v[1] * f, xe = e ? x.v[2] * f : 0.0, xm = x.v[3] * f;
    bool dominated = false;
    // Labels close in latency are the likeliest to dominate: scan the newest first.
    for (auto y = w->kept.rbegin(); y != w->kept.rend(); ++y) {
      if ((*y)[0] <= xb && (*y)[1] <= xe && (*y)[2] <= xm) {
        dominated = true;
        break;
      }
    }
    if (dominated) continue;
    w->kept.push_back({x.v[1], e ? x.v[2] : 0.0, x.v[3]});
    out->push_back(x);
  }
}

// Keeps the best label of cand for each of a few scores: each objective alone and sums of
// objectives scaled by their least value in the set.
void keep_beam(const std::vector<Label>& cand, bool use_energy, std::vector<Label>* out) {
  std::array<double, 4> least{INFINITY, INFINITY, INFINITY, INFINITY};
  for (const Label& x : cand) {
    for (size_t k = 0; k < 4; ++k) least[k] = std::min(least[k], x.v[k]);
  }
  for (double& l : least) l = l > 0 ? 1.0 / l : 1.0;
  if (!use_energy) least[2] = 0;
  // Weights on (latency, bottleneck, energy, memory) of each score.
  static constexpr double kScores[][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1},
                                          {1, 1, 0, 0}, {1, 0, 1, 0}, {1, 0, 0, 1}, {0, 1, 0, 1},
                                          {0, 1, 1, 0}, {1, 1, 1, 1}, {2, 1, 1, 1}, {1, 2, 1, 1}};
  // All scores in one pass over the set; each product as weight x least x field, so the
  // scores do not depend on the pass.
  constexpr size_t kN = std::size(kScores);
  std::array<std::array<double, 4>, kN> coef;
  for (size_t t = 0; t < kN; ++t) {
    for (size_t k = 0; k < 4; ++k) coef[t][k] = kScores[t][k] * least[k];
  }
  std::array<double, kN> best;
  best.fill(INFINITY);
  std::array<size_t, kN> best_i{};
  for (size_t i = 0; i < cand.size(); ++i) {
    const std::array<double, 4>& v = cand[i].v;
    for (size_t t = 0; t < kN; ++t) {
      double s = 0;
      for (size_t k = 0; k < 4; ++k) s += coef[t][k] * v[k];
      if (s < best[t]) {
        best[t] = s;
        best_i[t] = i;
      }
    }
  }
  std::array<size_t, kN> chosen{};
  size_t n_chosen = 0;
  for (size_t t = 0; t < kN; ++t) {
    if (std::find(chosen.begin(), chosen.begin() + static_cast<std::ptrdiff_t>(n_chosen),
                  best_i[t]) == chosen.begin() + static_cast<std::ptrdiff_t>(n_chosen)) {
      chosen[n_chosen++] = best_i[t];
    }
  }
  for (size_t i = 0; i < n_chosen; ++i) out->push_back(cand[chosen[i]]);
}

// Drops the state labels of device set `mask` at unit c that a label of the same set ending
// on another device beats for every completion. Both continue with a link to a free device
// f and then the same stages, so label y (last device j') beats x (last device j) when, for
// every free f,
//   y.L + link(j', f) <= x.L + link(j, f)  and  max(y.B, ser(j', f)) <= max(x.B, ser(j, f)),
// and y.E <= x.E, y.M <= x.M. The sums are computed exactly as add_link computes them and
// rounding is monotone, so y stays no worse through the rest of the plan. Labels are visited
// in increasing (L + link to the first free device, B, E, M): every possible y of an x comes
// before it, and only labels kept so far may drop a later one, so two equal labels never drop
// each other. Returns how many labels were dropped; each (mask, j) range shrinks in place.
int64_t cross_filter(const CostModel& m, bool use_energy, uint32_t mask, int c,
                     std::vector<Label>* labels, std::vector<Range>* state_ranges) {
  const int d = m.n_devices();
  const uint32_t free = (uint32_t{1} << d) - 1 - mask;
  const auto ud = static_cast<size_t>(d);
  int members = 0;
  for (int j = 0; j < d; ++j)
    members += (*state_ranges)[mask * ud + static_cast<size_t>(j)].count > 0;
  if (members < 2 || free == 0) return 0;
  std::vector<int> frees;
  for (int f = 0; f < d; ++f) {
    if ((free >> f & 1U) != 0) frees.push_back(f);
  }
  const size_t nf = frees.size();
  std::vector<double> link(ud * nf), ser(ud * nf);  // [j][free f]
  for (int j = 0; j < d; ++j) {
    for (size_t k = 0; k < nf; ++k) {
      link[static_cast<size_t>(j) * nf + k] = m.link_s(j, frees[k], c);
      ser[static_cast<size_t>(j) * nf + k] = m.link_serialization_s(j, frees[k], c);
    }
  }
  struct Entry {
    double key, l, b, e, m;
    uint32_t index;
    int j;
  };
  std::vector<Entry> entries, merged;
  std::vector<size_t> run_ends;
  for (int j = 0; j < d; ++j) {
    const Range r = (*state_ranges)[mask * ud + static_cast<size_t>(j)];
    for (uint32_t i = r.offset; i < r.offset + r.count; ++i) {
      const Label& x = (*labels)[i];
      entries.push_back({x.v[0] + link[static_cast<size_t>(j) * nf], x.v[0], x.v[1],
                         use_energy ? x.v[2] : 0.0, x.v[3], i, j});
    }
  }
  // Each last device's labels come in latency order, and the key adds one link time to each.
  sort_runs(&entries, &merged, &run_ends, [](const Entry& a, const Entry& b) {
    if (a.key != b.key) return a.key < b.key;
    if (a.b != b.b) return a.b < b.b;
    if (a.e != b.e) return a.e < b.e;
    if (a.m != b.m) return a.m < b.m;
    return a.index < b.index;
  });
  auto beats = [&](const Entry& y, const Entry& x) {
    if (y.b > x.b || y.e > x.e || y.m > x.m) return false;
    const double* ly = &link[static_cast<size_t>(y.j) * nf];
    const double* lx = &link[static_cast<size_t>(x.j) * nf];
    const double* sy = &ser[static_cast<size_t>(y.j) * nf];
    const double* sx = &ser[static_cast<size_t>(x.j) * nf];
    for (size_t k = 0; k < nf; ++k) {
      if (y.l + ly[k] > x.l + lx[k] || std::max(y.b, sy[k]) > std::max(x.b, sx[k])) return false;
    }
    return true;
  };
  std::vector<const Entry*> kept;
  int64_t dropped_count = 0;
  for (const Entry& x : entries) {
    bool dropped = false;
    // Only the nearest kept labels in the order are tried: a cut that keeps the scan linear
    // in the set's size and only ever keeps more labels (each is still a valid prefix).
    const size_t scan = std::min(kept.size(), kCrossScan);
    for (size_t s = 1; s <= scan && !dropped; ++s) dropped = beats(*kept[kept.size() - s], x);
    if (dropped) {
      (*labels)[x.index].device = -1;  // a state label's device is never negative otherwise
      ++dropped_count;
    } else {
      kept.push_back(&x);
    }
  }
  if (dropped_count == 0) return 0;
  for (int j = 0; j < d; ++j) {
    Range& r = (*state_ranges)[mask * ud + static_cast<size_t>(j)];
    uint32_t out = r.offset;
    for (uint32_t i = r.offset; i < r.offset + r.count; ++i) {
      if ((*labels)[i].device >= 0) (*labels)[out++] = (*labels)[i];
    }
    r.count = out - r.offset;
  }
  return dropped_count;
}

}  // namespace strata::partitioner::internal
