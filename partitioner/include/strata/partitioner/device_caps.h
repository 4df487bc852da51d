// The device side of planning: the figures of a device profile (docs/PROFILE_SCHEMA.md,
// "Read by the planner") reduced to a plain struct. A figure whose provenance is
// `unavailable` counts as missing; a missing figure the planner needs is an error that names
// the device, its file and the figure's path.
//
// Thread-safety: plain values and pure functions; safe to use from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "strata/base/status.h"

namespace strata::partitioner {

struct DeviceCaps {
  std::string name;              // from NAME= on the command line, else the profile's "name"
  std::string source;            // the profile's path, for messages
  int64_t mem_total_bytes = 0;   // memory.total_bytes (0 when unavailable)
  int64_t mem_budget_bytes = 0;  // mem= when given, else memory.available_bytes
  bool mem_budget_from_flag = false;
  double mem_read_gb_per_s = 0;  // memory.read_gb_per_s.threads_all (else triad)
  std::string mem_read_figure;   // the path it came from
  // compute.{gemv,gemm}_gflops.<dtype>.threads_all for each dtype the profile has.
  std::map<std::string, double> gemv_gflops;
  std::map<std::string, double> gemm_gflops;
  // compute.attention_gflops.threads_all: the engine's decode attention on a KV cache read from
  // memory; 0 when the profile has none (older profiles, reference boards): decode attention
  // then runs at the GEMV rate of the unit's weight types.
  double attention_gflops = 0;
  // storage.seq_read_mb_per_s at the streaming chunk (4194304 when present, else the largest
  // chunk given); 0 when the profile has none (the device cannot stream weights).
  double storage_read_mb_per_s = 0;
  int64_t storage_chunk_bytes = 0;
  // Every measured storage.seq_read_mb_per_s figure, chunk bytes -> MB/s: the streaming cost
  // takes the one at the chunk the weight store's reader would pick (docs/COST_MODEL.md).
  // Empty: storage_read_mb_per_s stands for every chunk.
  std::map<int64_t, double> storage_seq_read_mb_per_s;
  // power.idle_watts / load_watts; nullopt when unavailable.
  std::optional<double> idle_watts;
  std::optional<double> load_watts;
  std::string power_boundary;  // "package", "module", "wall", "none" or ""

  bool has_power() const { return idle_watts.has_value() && load_watts.has_value(); }
};

// Reads the planner's figures out of a profile document. `name` overrides the profile's
// name when not empty; `mem_budget_bytes` (> 0) overrides memory.available_bytes. Returns
// kCorrupt for text that is not JSON, kInvalidArgument "device 'pi5' (pi5.json):
// memory.read_gb_per_s.threads_all is missing" for a missing figure the planner always needs
// (memory budget, memory bandwidth) and for a budget above memory.total_bytes. Compute
// figures are checked per weight type later (require_compute), storage and power are optional.
Result<DeviceCaps> device_caps_from_profile(std::string_view json_text, const std::string& source,
                                            const std::string& name, int64_t mem_budget_bytes);

// Parses a --device argument "NAME=PROFILE.json[,mem=BYTES]" or "PROFILE.json[,mem=BYTES]"
// and reads the profile. Returns kInvalidArgument for a malformed argument, or the errors of
// read_file and device_caps_from_profile.
Result<DeviceCaps> load_device(const std::string& spec);

// Checks that `device` has decode and prefill GFLOP/s for every type in `weight_types`.
// Returns kInvalidArgument "device 'pi5' (pi5.json): compute.gemv_gflops.q4_0.threads_all is
// missing (the model has q4_0 weights)" for the first gap, else ok.
Status require_compute(const DeviceCaps& device, const std::vector<std::string>& weight_types);

}  // namespace strata::partitioner
