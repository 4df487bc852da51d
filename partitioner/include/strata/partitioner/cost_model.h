// The cost model of a pipeline plan (docs/COST_MODEL.md gives every formula and the profile
// figure behind each term). A plan is an ordered list of stages, each a contiguous unit range
// on a distinct device. Its objectives: per-token decode latency, the period between tokens
// with `sequences` in flight (1 / throughput), energy per token, and peak memory pressure.
//
// The objectives are built by folding stages left to right through start / add_stage /
// add_link / finish. The exact search and the brute-force reference use these same functions,
// so equal plans get bit-identical objective vectors.
//
// Thread-safety: a built CostModel is immutable; any number of threads may read it.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/partitioner/device_caps.h"
#include "strata/partitioner/layer_table.h"
#include "strata/partitioner/links.h"

namespace strata::partitioner {

struct PlanSettings {
  int64_t sequences = 4;  // N: sequences in flight
  // B: sequences batched into one pipeline step (a micro-batch); the runtime runs N / B groups,
  // each with one step in flight. B must divide N. 0: chosen by the model (resolved_micro_batch).
  int64_t micro_batch = 0;
  int64_t prompt_len = 256;  // P: prompt tokens prefilled as one chunk
  int64_t context = 2048;    // C: KV positions reserved per sequence (P <= C)
  bool allow_streaming = false;
  // Where the coordinator sits: none (its hops are left out), on one of the devices, or on
  // another host reached over `coordinator_link`.
  enum class Coordinator { kNone, kDevice, kExternal } coordinator = Coordinator::kNone;
  int coordinator_device = -1;
  Link coordinator_link;
};

// The micro-batch the runtime will use for `settings` over `n_devices` devices: the setting
// when given, else the largest divisor of N not above ceil(N / min(N, n_devices)), so that
// there are about as many groups as stages can use and every group is the same size.
int64_t resolved_micro_batch(const PlanSettings& settings, int n_devices);

// Tokens at most in a step costed at decode (GEMV) rates; larger steps use GEMM rates. The
// engine switches kernels by the same rule of thumb; the emulating agent paces by it too.
inline constexpr int64_t kGemvMaxTokens = 8;

// Seconds for `device` to run unit `u` over one step of `n_tokens` tokens whose attention
// spans `ctx_positions` cached positions in all (decode: n_tokens * position; a prompt chunk of
// P tokens from position 0: P (P - 1) / 2) and which reads `kv_rows` rows of KV cache from
// memory (decode: each token its own sequence's `position` rows; a prompt chunk: its rows once,
// as they stay in cache while the chunk attends to them): the roofline max of its FLOPs at the
// device's GEMV (small steps) or GEMM rate for each weight type, and the bytes it reads (its
// weights once per step, the KV rows) at the device's memory bandwidth. Pure.
double unit_step_s(const LayerUnit& u, const DeviceCaps& device, int64_t n_tokens,
                   double ctx_positions, double kv_rows);

// One stage's costs on one device (per decode step of B tokens unless named otherwise).
struct StageCost {
  bool feasible = false;
  int64_t weight_bytes = 0;    // all weights of the range
  int64_t resident_bytes = 0;  // weights kept in memory
  int64_t streamed_bytes = 0;  // weights read from storage for every token
  int64_t kv_bytes = 0;        // KV cache for C positions x N sequences
  int64_t buffer_bytes = 0;    // activation scratch (+ the streaming ring when streaming)
  int64_t used_bytes = 0;      // resident + kv + buffers
  int64_t short_bytes = 0;     // when infeasible: how far over the budget
  double compute_s = 0;        // decode roofline of a B-token step, summed over the units
  double stream_s = 0;         // streamed bytes over storage bandwidth, per step
  double decode_s = 0;         // max(compute_s, stream_s): one B-token decode step
  double prefill_s = 0;        // the whole P-token prompt
  double mem_pressure = 0;     // used / budget
};

struct Stage {
  int device = 0;
  int unit_begin = 0;  // [unit_begin, unit_end) in table units
  int unit_end = 0;
};

// A complete plan's objectives. All are "lower is better": throughput is 1 / period_s.
struct Objectives {
  double latency_s = 0;     // one decode step (B tokens) through every stage and link
  double period_s = 0;      // steady-state time between tokens with N sequences in flight
  double energy_j = NAN;    // per token; NaN when a device of the plan has no power figures
  double mem_pressure = 0;  // max over the plan's devices of used / budget
  double throughput_tok_per_s() const { return 1.0 / period_s; }
};

// What the search carries for a plan prefix (see docs/COST_MODEL.md "Why the search is
// exact"): every final objective is non-decreasing in each of these.
struct Partial {
  double latency_s = 0;     // sum of stages and links so far (one B-token step)
  double bottleneck_s = 0;  // max of stage times and link serialization times so far (a step)
  double energy_dyn_j = 0;  // sum of (load - idle) watts x stage time so far (a step)
  double mem_pressure = 0;  // max so far
};

class CostModel {
 public:
  // Checks the inputs and precomputes every stage (device, unit range). Returns
  // kInvalidArgument when a device lacks a compute figure the model's weight types need,
  // for settings out of range (N, P, C < 1, P > C), a coordinator index out of range, more
  // than 16 devices, or a link table over other devices.
  static Result<CostModel> build(LayerTable table, std::vector<DeviceCaps> devices, LinkTable links,
                                 PlanSettings settings);

  int n_units() const { return static_cast<int>(table_.units.size()); }
  int n_devices() const { return static_cast<int>(devices_.size()); }
  const LayerTable& table() const { return table_; }
  const std::vector<DeviceCaps>& devices() const { return devices_; }
  const LinkTable& links() const { return links_; }
  const PlanSettings& settings() const { return settings_; }
  // The decode position at which attention FLOPs and KV reads are costed: (P + C) / 2.
  double decode_position() const;
  // B (the resolved micro-batch) and G = N / B, the pipeline groups in flight.
  int64_t micro_batch() const { return micro_batch_; }
  int64_t n_groups() const { return settings_.sequences / micro_batch_; }
  // Period per token (s) from a step's latency L and the slowest stage or link's step time S
  // (non-decreasing in both, as the search's exactness needs; docs/COST_MODEL.md, "Throughput").
  // G groups cycle through the pipeline. With perfectly regular timing the period would be
  // max(L / G, S) / B, but groups bunch: any jitter leaves one waiting behind another at the
  // slowest stage. The wait is taken from approximate mean value analysis of G customers on a
  // closed cycle of one queueing station (S, deterministic service: a waiting group waits out
  // half a step of the one in service) and a delay of L - S, capped at the regular bound.
  double period_s(double latency_s, double bottleneck_s) const;
  // True when every device has power figures, so energy takes part in dominance.
  bool energy_in_dominance() const { return energy_in_dominance_; }

  // The stage [b, c) on `device` (0 <= b < c <= n_units).
  const StageCost& stage(int device, int b, int c) const {
    return stages_[stage_index(device, b, c)];
  }
  // Decode time of unit `unit` alone on `device` for a B-token step (s); a stage's compute_s is
  // the left-to-right
  // sum of these over its units.
  double unit_decode_s(int device, int unit) const {
    return unit_decode_s_[static_cast<size_t>(device) * table_.units.size() +
                          static_cast<size_t>(unit)];
  }
  // Bytes per token crossing the boundary before unit `b` (the activation out of unit b - 1).
  double boundary_bytes(int b) const;
  // The same for a whole B-token step.
  double step_boundary_bytes(int b) const {
    return boundary_bytes(b) * static_cast<double>(micro_batch_);
  }
  // One-way time and serialization of one step's activations crossing boundary `b` from
  // `from` to `to` (seconds).
  double link_s(int from, int to, int b) const {
    return links_.get(from, to).transfer_s(step_boundary_bytes(b));
  }
  double link_serialization_s(int from, int to, int b) const {
    return links_.get(from, to).serialization_s(step_boundary_bytes(b));
  }
  // The link between the coordinator and `device`, or null when the coordinator is not
  // modelled or sits on that device.
  const Link* coordinator_link(int device) const;
  // Coordinator hops: the token into the first stage and the sampled token out of the last.
  double coord_in_s(int device) const { return coord_in_s_[static_cast<size_t>(device)]; }
  double coord_out_s(int device) const { return coord_out_s_[static_cast<size_t>(device)]; }
  // Devices of lower index that are interchangeable with `device`: equal figures, equal
  // links to every other device, and neither hosts the coordinator. Swapping two of them
  // in any plan gives the same objectives, so the search uses them in index order only.
  uint32_t interchangeable_below(int device) const {
    return interchangeable_below_[static_cast<size_t>(device)];
  }
  // Sum of idle watts over the devices in `mask` (bit i = device i), in index order; NaN when
  // one of them has no power figures.
  double idle_watts(uint32_t mask) const { return idle_by_mask_[mask]; }

  // The folding steps. Callers keep the order start, add_stage, (add_link, add_stage)...,
  // finish; the stage given to add_stage must be feasible.
  Partial start(int device) const {
    return {coord_in_s_[static_cast<size_t>(device)], coord_in_ser_s_[static_cast<size_t>(device)],
            0.0, 0.0};
  }
  Partial add_stage(const Partial& p, int device, int b, int c) const {
    const StageCost& s = stages_[stage_index(device, b, c)];
    return {p.latency_s + s.decode_s, std::max(p.bottleneck_s, s.decode_s),
            p.energy_dyn_j + dyn_watts_[static_cast<size_t>(device)] * s.decode_s,
            std::max(p.mem_pressure, s.mem_pressure)};
  }
  Partial add_link(const Partial& p, int from, int to, int b) const {
    return {p.latency_s + link_s(from, to, b),
            std::max(p.bottleneck_s, link_serialization_s(from, to, b)), p.energy_dyn_j,
            p.mem_pressure};
  }
  Objectives finish(const Partial& p, int last_device, uint32_t mask) const;

  // Objectives of a whole plan through the folding steps above. Returns kInvalidArgument
  // naming the problem for a plan that does not cover the units in order, reuses a device,
  // or has an infeasible stage.
  Result<Objectives> evaluate(const std::vector<Stage>& stages) const;

 private:
  CostModel() = default;
  size_t stage_index(int device, int b, int c) const {
    const size_t n1 = table_.units.size() + 1;
    return (static_cast<size_t>(device) * n1 + static_cast<size_t>(b)) * n1 +
           static_cast<size_t>(c);
  }
  void compute_unit_times();
  bool interchangeable(int a, int b) const;
  StageCost compute_stage(int device, int b, int c) const;

  LayerTable table_;
  std::vector<DeviceCaps> devices_;
  LinkTable links_{{}, Link{}};
  PlanSettings settings_;
  int64_t micro_batch_ = 1;
  bool energy_in_dominance_ = false;
  std::vector<StageCost> stages_;
  std::vector<double> unit_decode_s_, unit_prefill_s_;  // device-major, one per unit
  std::vector<double> dyn_watts_;                       // load - idle, 0 without power figures
  std::vector<double> coord_in_s_, coord_in_ser_s_, coord_out_s_, coord_out_ser_s_;
  std::vector<double> idle_by_mask_;
  std::vector<uint32_t> interchangeable_below_;
};

}  // namespace strata::partitioner
