// Reports of a planning run: the PLAN.json document the coordinator consumes (schema
// "strata.plan/1", docs/COST_MODEL.md), the terminal tables, and an SVG of the front.
//
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <string>
#include <vector>

#include "strata/partitioner/cost_model.h"
#include "strata/partitioner/plan.h"
#include "strata/partitioner/search.h"

namespace strata::partitioner {

// Everything a report shows about one run of `strata plan`.
struct PlanRun {
  const CostModel* model = nullptr;
  const Front* front = nullptr;
  Objective objective = Objective::kKnee;
  Constraints constraints;
  Choice choice;
  const ScenarioReport* scenarios = nullptr;  // may be null
  std::vector<std::string> notes;             // caveats shown with the result
};

// The "strata.plan/1" document, 2-space indented, ending in a newline.
std::string plan_json(const PlanRun& run);

// The terminal report: devices, the chosen plan's stages, the front (at most `max_rows`
// rows: the chosen plan, each objective's best, then plans spread over the latency range),
// the scenarios when given, and the notes.
std::string plan_text(const PlanRun& run, size_t max_rows);

// The rows plan_text shows when the front has more than `max_rows` plans (all of them
// otherwise), in front order.
std::vector<size_t> rows_to_show(const PlanRun& run, size_t max_rows);

// An SVG of the front: latency (ms) across, throughput (tokens/s) up, energy per token as
// the colour of each point with a colour bar, the chosen plan ringed and labelled.
std::string front_svg(const PlanRun& run);

}  // namespace strata::partitioner
