// Device emulation: an agent on a fast machine paces itself to behave like a slower reference
// device, so one machine can reproduce a heterogeneous testbed. Each step is held until the
// time the reference device's roofline gives for it (the planner's own per-unit formula,
// partitioner::unit_step_s, on the reference profile's figures), and memory is capped at the
// reference's available memory.
//
// Why the roofline and not a scaled local time: a step's time on this machine does not scale
// like the reference's. A small model's weights sit in this machine's last-level cache, so its
// decode runs far above DRAM bandwidth, and scaling that time by a bandwidth ratio made the
// emulated device several times faster than the device it stood for. Pacing to the roofline
// makes an emulated stage take what the reference's profile says it takes; what a run then
// measures against the plan is everything else: scheduling, batching, links, the coordinator.
//
// Thread-safety: plain values; safe to read from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/model.h"
#include "strata/partitioner/device_caps.h"
#include "strata/partitioner/layer_table.h"

namespace strata::agent {

struct Pace {
  partitioner::DeviceCaps reference;
  int64_t mem_cap_bytes = 0;  // 0 = no cap
  std::string note;           // what is emulated, for logs
};

// Reads the reference profile (docs/PROFILE_SCHEMA.md). Errors name the file and the missing
// figure (memory bandwidth, memory budget).
Result<Pace> load_pace(const std::string& reference_profile);

// The units of one stage of `model` (a whole model or a slice): the embedding when
// `embedding`, blocks [block_begin, block_end), the head when `head`, costed by the planner's
// own table for a model file (partitioner::layer_table_from_model). kCorrupt when the model
// has no units.
Result<std::vector<partitioner::LayerUnit>> stage_units(const model::Model& model, bool embedding,
                                                        int64_t block_begin, int64_t block_end,
                                                        bool head);

// Seconds the reference device takes for one step of `n_tokens` tokens of `units`: attention
// over `ctx_positions` positions in all, `kv_rows` KV rows read (partitioner::unit_step_s).
// load_pace gave every weight type a rate (missing ones count as f32's; with none at all,
// only memory time is counted).
double reference_step_s(const Pace& pace, const std::vector<partitioner::LayerUnit>& units,
                        int64_t n_tokens, double ctx_positions, double kv_rows);

}  // namespace strata::agent
