// The coordinator behind `strata run`: drives a plan over running agents. It says hello to
// every agent (protocol version check), assigns each its stage, ships the model slice an agent
// lacks (hash-checked on arrival, cached on the agent's flash), then generates for many
// sequences at once: each pipeline group has one step in flight, so with as many groups as
// stages every stage is busy; steps mix decode tokens with prompt chunks (SARATHI). Tokens
// stream out as they are sampled. It ends with a report of what each stage spent its time on
// and of the plan's predictions beside the measured figures.
//
// Thread-safety: run_plan is self-contained (its own sockets); call it from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/engine.h"

namespace strata::agent {

struct StageSpec {
  std::string device;      // the agent that runs it (a --agent NAME)
  int64_t unit_begin = 0;  // plan units: 0 = embedding, 1..L = blocks, L+1 = head
  int64_t unit_end = 0;
  double predicted_decode_ms = 0;  // 0 when the plan did not say
  double predicted_prefill_ms = 0;
  double predicted_link_ms = 0;
};

struct PlanSpec {
  std::vector<StageSpec> stages;
  double predicted_latency_ms = 0;     // a decode step through the pipeline, alone
  double predicted_round_trip_ms = 0;  // a sequence's time between tokens with N in flight
                                       // (0 when the plan does not say)
  // What the run's measured latency (a decode step's round trip) is compared with.
  double predicted_token_interval_ms() const {
    return predicted_round_trip_ms > 0 ? predicted_round_trip_ms : predicted_latency_ms;
  }
  double predicted_throughput_tok_per_s = 0;
  int64_t predicted_sequences = 0;
  // Sequences per pipeline step the plan was costed with (its groups are N / micro_batch);
  // 0 when the plan does not say (the run then uses one group per stage).
  int64_t micro_batch = 0;
  std::string model_source;  // the model the plan was made for, if known
};

// Reads a "strata.plan/1" document (docs/COST_MODEL.md): its chosen plan. kNotFound/kIo for
// the file, kCorrupt naming what is missing or malformed.
Result<PlanSpec> load_plan(const std::string& path);
// A plan of one stage per device over contiguous unit ranges of a model with n_layers blocks,
// splitting the blocks as evenly as possible (tests, `strata run` without --plan).
PlanSpec even_plan(const std::vector<std::string>& devices, int64_t n_layers);

// A plan over `devices` (in that order) giving each a share of the blocks in proportion to its
// speed, 1 / ms_per_unit (0 = not measured: the median of the others). Each stage gets at least
// one block; when blocks are fewer than devices the slowest sit out. Used to re-plan after a
// device is lost, from the step times the agents measured.
PlanSpec speed_weighted_plan(const std::vector<std::string>& devices,
                             const std::vector<double>& ms_per_unit, int64_t n_layers);

struct RunOptions {
  std::string model_path;  // the whole GGUF; slices are cut from it
  PlanSpec plan;
  std::map<std::string, std::string> agents;  // device name -> control endpoint
  std::vector<std::vector<int32_t>> prompts;  // one per sequence
  int64_t n_gen = 16;                         // new tokens per sequence
  model::SamplerOptions sampler;              // sequence s samples with seed + s
  int threads_per_agent = 0;                  // 0: each agent's own --threads
  int64_t step_token_budget = 128;            // tokens per step at most (prompt chunking)
  // Pipeline groups; 0: ceil(sequences / the plan's micro_batch) when the plan has one, else
  // one per stage (at most one per sequence).
  int n_groups = 0;
  int64_t ctx = 0;  // 0: longest prompt + n_gen
  std::string result_bind = "tcp://127.0.0.1:*";
  std::string slice_dir = "strata-slices";  // where the coordinator keeps the slices it cuts
  bool want_logits = false;                 // return the logits of every sampled position
  double agent_timeout_ms = 15000;          // handshake, step and heartbeat deadlines
  uint64_t ship_chunk_bytes = 4u << 20;
  // When an agent is lost (its heartbeats stop for agent_timeout_ms), the run re-plans over
  // the agents left (those of the plan, then any other --agent given) and resumes every
  // sequence from its tokens so far, at most this many times; 0 fails the run instead.
  int max_replans = 2;
  // Shaping of the coordinator's own link to the first stage (emulation; 0 = off), as an
  // agent's --link-delay-ms / --link-mbps shape its outgoing link.
  double link_delay_ms = 0;
  double link_mbit_per_s = 0;
  // The re-plan; empty: speed_weighted_plan from the step times measured so far.
  std::function<Result<PlanSpec>(const std::vector<std::string>& devices_left)> replan;
  // Called as tokens arrive (may be empty): sequence, its token index, the token.
  std::function<void(int32_t seq, int64_t index, int32_t token)> on_token;
  // Progress lines (may be empty): handshake, shipping, ready.
  std::function<void(const std::string&)> on_progress;
};

// How much of the reference device's time an emulating agent's host needed (agent --emulate
// paces each step to the reference's roofline; docs/ARCHITECTURE.md). A step overruns when this
// host computes it slower than the reference would have: the step then takes the host's time,
// and the measured figures include the host's contention, not the reference device's speed.
struct EmulationHeadroom {
  int64_t paced_steps = 0;            // steps the agent paced; 0: the stage does not emulate
  int64_t overrun_steps = 0;          // of them, those whose local compute exceeded the paced time
  double overrun_ms = 0;              // local minus paced, summed over the overruns
  int64_t decode_steps = 0;           // decode-only paced steps, behind the two medians
  double decode_local_ms_median = 0;  // this host's compute per decode step, before pacing
  double decode_paced_ms_median = 0;  // the reference device's time per decode step
  bool emulating() const { return paced_steps > 0; }
  // decode_local_ms_median / decode_paced_ms_median: below 1 is headroom; 0 without decode steps.
  double local_to_paced() const {
    return decode_paced_ms_median > 0 ? decode_local_ms_median / decode_paced_ms_median : 0;
  }
};

struct StageReport {
  std::string device;
  std::string endpoint;
  int64_t unit_begin = 0, unit_end = 0;
  int64_t steps = 0;
  double compute_ms = 0, wait_ms = 0, link_ms = 0;  // summed over steps
  uint64_t bytes_in = 0, bytes_out = 0;
  double decode_compute_ms_median = 0;  // per decode-only step
  double predicted_decode_ms = 0;
  uint64_t shipped_bytes = 0;  // slice bytes sent to this agent (0 when cached)
  double load_ms = 0;
  // What the agent holds for the stage (its Ready): weights + KV cache, or, when the stage
  // streams, the resident set + KV cache.
  uint64_t resident_bytes = 0;
  EmulationHeadroom emulation;  // all zero when the agent does not emulate
};

struct ReplanEvent {
  std::string lost_device;
  std::string cause;
  double at_s = 0;                   // since generation began
  int64_t tokens_before = 0;         // tokens received before the loss
  double recovery_s = 0;             // re-plan, assignments and slices, until steps resume
  std::vector<std::string> devices;  // the new plan's stages, in order
};

struct RunReport {
  std::vector<std::vector<int32_t>> tokens;      // per sequence
  std::vector<std::vector<float>> first_logits;  // per sequence, after the prompt (want_logits)
  std::vector<std::vector<float>> last_logits;   // per sequence, at its last token (want_logits)
  std::vector<StageReport> stages;
  int n_groups = 0;
  double setup_s = 0;     // hello, slices, ready
  double generate_s = 0;  // first step sent to last token received
  double time_to_first_token_ms = 0;
  double decode_latency_ms = 0;  // median round trip of a step holding only decode tokens
  // Steady state: decode tokens received while every sequence was decoding (from the last
  // prompt's first token to the first sequence's last token) over that time; over the whole
  // decode phase when that window holds fewer than two steps.
  double throughput_tok_per_s = 0;
  int64_t total_tokens = 0;
  PlanSpec plan;       // the plan given
  PlanSpec plan_used;  // the plan that finished the run (differs after a re-plan)
  std::vector<ReplanEvent> replans;
};

// Runs the plan. Errors name the agent and the problem: kUnavailable / kDeadlineExceeded for
// an agent that does not answer within agent_timeout_ms (never a hang), the agent's own
// refusal (a stage that does not fit, a slice that arrives corrupt), a step that failed on a
// stage, kInvalidArgument for a plan naming an agent not given.
Result<RunReport> run_plan(const RunOptions& options);

// The report as a table a person reads, and as JSON.
std::string format_report(const RunReport& report);
std::string report_json(const RunReport& report);

}  // namespace strata::agent
