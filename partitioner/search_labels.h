// The labels of the Pareto search (search.cpp) and the filters that keep the non-dominated
// ones of a set (search_keep.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "search_internal.h"
#include "strata/partitioner/cost_model.h"

namespace strata::partitioner::internal {

// One prefix of a plan in a set of the programme.
struct Label {
  std::array<double, 4> v;  // latency, bottleneck, dynamic energy, memory pressure
  int32_t parent;           // opens: the state label it came from; states: the previous
                            // stage's state label (-1 at the first stage)
  int16_t begin;            // state labels: first unit of the last stage
  int16_t device;           // state labels: device of the last stage
};

// A set's labels: [offset, offset + count) of the labels vector of their kind.
struct Range {
  uint32_t offset = 0;
  uint32_t count = 0;
};

inline Partial to_partial(const Label& l) { return {l.v[0], l.v[1], l.v[2], l.v[3]}; }
inline std::array<double, 4> to_array(const Partial& p) {
  return {p.latency_s, p.bottleneck_s, p.energy_dyn_j, p.mem_pressure};
}

// Scratch of keep_pareto, one per thread.
struct KeepScratch {
  std::vector<std::array<double, 3>> kept;
  Skyline3 sky;
  std::vector<double> ms;
  std::vector<uint32_t> ranks;
  std::vector<size_t> run_ends;  // sort_runs' ascending runs
  std::vector<Label> merged;
};

// Appends the labels of *cand that no other label of it dominates to `out` (one of each
// group of equal vectors), sorting *cand by (latency, bottleneck, energy, memory). Energy
// takes part only when `use_energy`; with epsilon > 0 a label within a factor (1 + epsilon)
// of a kept one in every field is dropped too.
void keep_pareto(std::vector<Label>* cand, bool use_energy, double epsilon, KeepScratch* w,
                 std::vector<Label>* out);

// Appends the best label of `cand` for each of a few scores (the beam pass).
void keep_beam(const std::vector<Label>& cand, bool use_energy, std::vector<Label>* out);

// Drops the state labels of device set `mask` at unit c that a label of the same set ending
// on another device beats for every completion; state_ranges[mask * d + j] shrink in place.
// Returns how many were dropped.
int64_t cross_filter(const CostModel& m, bool use_energy, uint32_t mask, int c,
                     std::vector<Label>* labels, std::vector<Range>* state_ranges);

}  // namespace strata::partitioner::internal
