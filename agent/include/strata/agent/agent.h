// The agent: one long-running process per device that serves one pipeline stage at a time.
// It binds a control socket (the coordinator's DEALER connects to it) and a data socket
// (the previous stage pushes activations to it), loads the model slice it is assigned (from
// its cache on local flash, or shipped by the coordinator and hash-checked), runs its layers
// for every step, keeps the KV cache of its layers per sequence, and pushes the result to the
// next stage (or, as the last stage, the sampled tokens back to the coordinator).
//
// It keeps serving after any bad message: a refused control message is answered with an
// Error and counted; a data step that fails is passed downstream with its Status so the
// coordinator learns why.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "strata/base/status.h"

namespace strata::agent {

struct AgentOptions {
  std::string bind = "tcp://127.0.0.1:7100";  // control endpoint ("tcp://127.0.0.1:*" picks a port)
  std::string data_bind;                      // data endpoint; default: the control host, port *
  std::string name;                           // shown to the coordinator; default: host name
  std::string cache_dir = "strata-cache";     // slices shipped to this agent live here
  int n_threads = 1;
  // 0 = no cap. A stage whose weights and KV cache exceed it keeps a pinned resident set and
  // streams the other layers from the slice on flash (docs/STREAMING.md); below the streaming
  // minimum the assignment is refused.
  int64_t mem_budget_bytes = 0;
  // storage.seq_read_mb_per_s of this machine's profile (chunk bytes -> MB/s): picks the
  // streaming read size. Empty: 4 MiB reads.
  std::map<int64_t, double> storage_seq_read_mb_per_s;
  std::string emulate_profile;  // reference device profile JSON to pace compute to
  double link_delay_ms = 0;     // outgoing data link emulation
  double link_mbit_per_s = 0;
  bool quiet = false;
};

// Counters an agent exposes (tests, logs). Snapshot values.
struct AgentCounters {
  uint64_t control_messages = 0;
  uint64_t control_rejected = 0;  // refused by the transport's checks (bad frames, version, ...)
  uint64_t data_steps = 0;
  uint64_t data_rejected = 0;
  uint64_t step_errors = 0;  // steps that failed in the engine (reported downstream)
  uint64_t stale_steps = 0;  // steps of an earlier epoch (before a re-plan), dropped
  uint64_t slices_received = 0;
};

class Agent {
 public:
  // Binds the sockets. kUnavailable when an address is taken, kInvalidArgument for bad options.
  static Result<std::unique_ptr<Agent>> start(const AgentOptions& options);
  ~Agent();

  const std::string& control_endpoint() const;
  const std::string& data_endpoint() const;

  // Serves until `stop` becomes true or a Shutdown with reason "exit" arrives. Returns ok then;
  // an error only when a socket itself fails.
  Status serve(const std::atomic<bool>& stop);
  AgentCounters counters() const;

 private:
  struct Impl;
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::agent
