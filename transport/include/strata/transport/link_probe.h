// The link probe behind `strata profile link`: round-trip time and bandwidth to an agent's
// control endpoint, over the same ZeroMQ path the runtime uses. docs/WIRE.md gives the JSON
// form `strata plan --links` reads.
#pragma once

#include <cstdint>
#include <string>

#include "strata/base/status.h"
#include "strata/transport/bytes.h"
#include "strata/transport/channel.h"
#include "strata/transport/messages.h"

namespace strata::transport {

struct LinkProbeOptions {
  std::string local_name = "coordinator";   // sent in our hello; the "a" of the link
  int n_pings = 50;                         // RTT samples, one small ping at a time
  int n_bursts = 3;                         // bandwidth samples
  int burst_messages = 8;                   // pings per burst, all sent before any answer
  uint64_t burst_message_bytes = 1u << 20;  // the agent answers each with this many bytes
  double reply_timeout_ms = 5000;           // per answer; also the connect deadline
};

// A measured quantity's spread over n samples (linear interpolation between ranks).
struct Spread {
  double median = 0;
  double p10 = 0;
  double p90 = 0;
  int n = 0;
};

struct LinkProbe {
  std::string endpoint;
  std::string local_name;  // "a"
  std::string peer_name;   // "b": the agent's name from its hello
  Spread rtt_ms;           // small ping to pong
  Spread mbit_per_s;       // agent -> prober (the direction an agent's --link-* shapes)
  uint64_t burst_bytes = 0;
};

// Measures the link to the agent at `endpoint`: a hello (the agent's answer names it and
// proves the protocol version), n_pings round trips, then n_bursts bursts whose answers carry
// burst_messages * burst_message_bytes. Bandwidth per burst = bits / (burst time - p10 RTT),
// the RTT standing for the latency every burst pays once (never less than half the burst
// time). Returns the figures, or kUnavailable / kDeadlineExceeded naming the endpoint when
// the agent does not answer in time, kUnsupported on a protocol version mismatch, or the
// agent's own refusal. Thread-safe (uses its own socket).
Result<LinkProbe> probe_link(const Context& context, const std::string& endpoint,
                             const LinkProbeOptions& options = {});

// The agent's side: the pong for `ping` (which came with `received_bytes` of payload) and the
// ping.reply_bytes of payload to send with it (zeros, shared: no allocation per answer).
// Send both with ControlServer::reply. Thread-safe.
struct ProbeAnswer {
  Pong pong;
  SharedBytes payload;
};
ProbeAnswer answer_ping(const Ping& ping, uint64_t received_bytes);

// Spread of `samples` (unsorted; empty gives all zeros). Exposed for tests and benchmarks.
Spread spread_of(std::vector<double> samples);

}  // namespace strata::transport
