// The Pareto search: every plan (contiguous unit ranges on an ordered subset of distinct
// devices) whose objective vector no other plan dominates. search_front() is the exact
// dynamic programme; enumerate_front() is the brute-force reference the tests hold it to.
//
// Thread-safety: both functions only read the CostModel; calls may run concurrently.
// search_front runs on SearchOptions::threads threads of its own and returns when they end.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "strata/base/status.h"
#include "strata/partitioner/cost_model.h"

namespace strata::partitioner {

struct PlanPoint {
  std::vector<Stage> stages;
  Objectives objectives;
  uint32_t device_mask = 0;  // bit i set when device i holds a stage
};

// True when `a` is no worse than `b` in every objective and better in one. Energy takes part
// only when `use_energy` (every device has power figures).
bool dominates(const Objectives& a, const Objectives& b, bool use_energy);

// The non-dominated plans of `plans`, one per distinct objective vector, sorted by latency
// (then period, energy, memory pressure).
std::vector<PlanPoint> pareto_filter(std::vector<PlanPoint> plans, bool use_energy);

struct SearchOptions {
  // 0: exact. E > 0: a partial plan is also dropped when a kept one is within a factor
  // (1 + E) of it in every objective, which bounds the work on large instances; the result is
  // then an approximation of the front (docs/COST_MODEL.md, "Bounding large searches").
  double epsilon = 0;
  // The most partial plans the search may hold; beyond it the search stops with
  // kResourceExhausted (and suggests an epsilon).
  int64_t max_labels = 30'000'000;
  // Threads for the search; 0 uses every hardware thread. The front does not depend on it.
  int threads = 0;
  // Called after each unit boundary with (boundaries done, boundaries in all); may be empty.
  std::function<void(int, int)> progress;
};

struct SearchStats {
  int64_t states = 0;         // (units placed, device set, last device) with a partial plan
  int64_t labels = 0;         // partial plans kept over the whole search
  int64_t candidates = 0;     // partial plans generated before dominance pruning
  int64_t complete = 0;       // complete plans reaching the final filter
  int64_t incumbents = 0;     // plans found by the beam pass and used to prune the exact one
  int64_t cross_dropped = 0;  // prefixes dropped by one of the same set ending elsewhere
  double seconds = 0;         // wall time of the whole search
  double beam_seconds = 0;    // of which the beam pass
};

struct Front {
  std::vector<PlanPoint> plans;  // as pareto_filter orders them
  SearchStats stats;
  bool exact = true;
};

// The Pareto front over every plan of `model`. Returns an empty front when no plan fits (the
// caller explains why with diagnose_infeasible), kResourceExhausted when options.max_labels
// is reached.
Result<Front> search_front(const CostModel& model, const SearchOptions& options = {});

// The same front by enumerating every ordered device subset and every cut: exponential,
// for tests and tiny instances (at most 8 devices and 20 units, checked).
Front enumerate_front(const CostModel& model);

}  // namespace strata::partitioner
