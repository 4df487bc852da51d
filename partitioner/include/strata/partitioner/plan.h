// Choosing a point of the front and explaining it: the objective to pick by, ε-constraints,
// bandwidth scenarios (which plan stays best when the links change), per-stage details of a
// plan for reports, and why no plan fits when none does.
//
// Thread-safety: pure functions over immutable inputs; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/partitioner/cost_model.h"
#include "strata/partitioner/search.h"

namespace strata::partitioner {

enum class Objective { kLatency, kThroughput, kEnergy, kKnee };

// "latency", "throughput", "energy", "knee"; kInvalidArgument naming the choices otherwise.
Result<Objective> parse_objective(const std::string& text);
const char* objective_name(Objective objective);

// ε-constraints: only plans within every given bound are eligible.
struct Constraints {
  std::optional<double> max_energy_j_per_token;
  std::optional<double> max_latency_ms;
  std::optional<double> min_throughput_tok_per_s;
  std::optional<double> max_mem_pressure;  // 0..1
  bool empty() const {
    return !max_energy_j_per_token && !max_latency_ms && !min_throughput_tok_per_s &&
           !max_mem_pressure;
  }
};

// True when `o` meets every bound (an unknown energy fails an energy bound).
bool meets(const Objectives& o, const Constraints& constraints);

struct Choice {
  size_t index = 0;              // into the front's plans
  std::vector<size_t> eligible;  // plans meeting the constraints, front order
  std::string reason;            // one sentence: why this plan
};

// Picks the eligible plan that is best by `objective` (ties broken by the other objectives
// in the order latency, throughput, energy, memory). The knee is the eligible plan closest
// (Euclidean) to the ideal point, each objective measured by its excess over the best
// eligible value: relative for latency, period and energy, in budget fractions for memory
// pressure. Returns kInvalidArgument for an empty front, for `energy` when energy is unknown,
// and, naming the bound and the closest plan, when no plan meets the constraints.
Result<Choice> choose_plan(const Front& front, Objective objective, const Constraints& constraints,
                           bool energy_known);

// The details reports show for one stage and for a plan.
struct StageDetail {
  int device = 0;
  std::string device_name;
  int unit_begin = 0, unit_end = 0;    // [begin, end) in table units
  int block_begin = 0, block_end = 0;  // the same range in transformer blocks
  std::string first_unit, last_unit;   // unit names
  StageCost cost;
  int64_t mem_budget_bytes = 0;
  double link_out_ms = 0;  // decode: one-way time of the activations to the next stage
  double prefill_link_out_ms = 0;
  std::string link_out_to;  // next device, "coordinator", or "" when not modelled
};

struct PlanDetail {
  std::vector<StageDetail> stages;
  Objectives objectives;
  double time_to_first_token_ms = 0;  // prefill through every stage and link, then the token
  double bottleneck_ms = 0;           // the slowest stage or link
};

PlanDetail describe_plan(const CostModel& model, const PlanPoint& plan);

// Bandwidth scenarios: every link's bandwidth scaled by each factor in turn.
struct ScenarioReport {
  std::vector<double> factors;
  std::vector<PlanPoint> candidates;            // the nominal front plus each scenario's best
  std::vector<std::vector<Objectives>> values;  // [candidate][scenario]
  std::vector<size_t> best;                     // [scenario] -> candidate best under that scenario
  std::vector<double> max_regret;  // [candidate] worst relative shortfall over scenarios
  size_t robust = 0;               // the candidate with the least max_regret
};

// Re-plans under each factor (exactly, with `options`), picks each scenario's best by
// `objective` and `constraints`, re-evaluates every candidate in every scenario, and finds
// the plan whose worst regret over the scenarios is least. Regret: value / best - 1 for
// latency, period (1/throughput) and energy; for the knee, the difference of knee distances
// (each scenario scaled over its own front). A candidate that breaks a constraint in a
// scenario has infinite regret there. Returns errors of search_front / choose_plan, or
// kInvalidArgument for a factor <= 0.
Result<ScenarioReport> bandwidth_scenarios(const CostModel& model, const Front& nominal,
                                           const std::vector<double>& factors, Objective objective,
                                           const Constraints& constraints,
                                           const SearchOptions& options);

// Why `model` has no feasible plan: kResourceExhausted with a message naming what the model
// needs, what the devices hold, and by how much the best of them falls short.
Status diagnose_infeasible(const CostModel& model);

// One line per device that cannot hold even one unit on its own ("device 'pi5' (pi5.json)
// is too small for any unit: ... short by 88.0 MiB"); empty when every device can.
std::vector<std::string> devices_too_small(const CostModel& model);

}  // namespace strata::partitioner
