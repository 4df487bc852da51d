// Emulation headroom for `strata run`'s report: folds the step statistics an emulating agent
// keeps (transport::StepStats local_ms, paced_ms) into EmulationHeadroom, and writes it out.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/agent/coordinator.h"
#include "strata/transport/messages.h"

namespace strata::agent {

// The median of `v` (the mean of the middle two for an even count); 0 when empty.
double median_of(std::vector<double> v);

// The headroom of one stage's `steps`: overruns counted over every paced step (paced_ms > 0),
// the medians over the paced steps for which `decode_only(step_id)` holds. All zero when no
// step was paced (the agent does not emulate).
EmulationHeadroom measure_headroom(const std::vector<transport::StepStats>& steps,
                                   const std::function<bool(uint64_t step_id)>& decode_only);

// One "emulation: ..." line per emulating stage, then, when any stage overran, a note that the
// measured figures include this host's contention. Empty when no stage emulates.
std::string format_headroom(const std::vector<StageReport>& stages);

// The headroom as the report's JSON: null when the stage does not emulate.
nlohmann::json headroom_json(const EmulationHeadroom& headroom);

}  // namespace strata::agent
