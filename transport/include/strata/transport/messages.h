// The messages strata's coordinator and agents exchange, as plain C++ values. The wire form
// (FlatBuffers, transport/wire.fbs) never leaves the transport library; docs/WIRE.md is the
// contract in prose. Thread-safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "strata/base/status.h"

namespace strata::transport {

// Stamped into every message's envelope; a peer speaking another version is refused with
// kUnsupported (and, on a control server, an Error reply) before any field is read.
// 2: StepStats gained local_ms and paced_ms (a struct's layout is not extensible).
inline constexpr uint16_t kProtocolVersion = 2;

// Bounds every received header is checked against before use. A header frame larger than
// kMaxHeaderBytes is refused unread.
inline constexpr size_t kMaxHeaderBytes = 4u << 20;
inline constexpr size_t kMaxStringBytes = 4096;  // names, endpoints, hashes, messages
inline constexpr size_t kMaxProfileJsonBytes = 1u << 20;
inline constexpr size_t kMaxCachedSlices = 1024;
inline constexpr size_t kMaxStatsSteps = 4096;
inline constexpr uint32_t kMaxTokens = 65536;  // tokens in one data message
inline constexpr size_t kMaxSampledTokens = 65536;
inline constexpr size_t kMaxShapeDims = 4;
inline constexpr int64_t kMaxShapeDim = int64_t{1} << 31;
inline constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 31;  // one tensor or chunk frame
inline constexpr uint64_t kMaxSliceBytes = uint64_t{1} << 40;
inline constexpr uint64_t kMaxProbeReplyBytes = 64u << 20;

// ---- control messages (coordinator <-> agent, DEALER -> ROUTER) ----

// Capability bits in Hello::capabilities.
enum Capability : uint64_t {
  kCapStreaming = 1u << 0,  // can stream weights from flash (budget below the slice size)
  kCapEmulation = 1u << 1,  // paces itself to a reference profile (--emulate)
};

struct Hello {
  std::string agent_id;
  std::string agent_name;
  std::string data_endpoint;
  uint32_t n_threads = 0;
  uint64_t mem_bytes = 0;
  uint64_t capabilities = 0;
  std::vector<std::string> cached_slices;  // slice hashes already on the agent's flash
  std::string profile_json;                // may be empty
  bool operator==(const Hello&) const = default;
};

struct Assign {
  std::string model_id;
  std::string model_hash;
  std::string slice_hash;
  uint32_t stage_index = 0;
  uint32_t n_stages = 0;
  uint32_t unit_begin = 0;  // first unit (layer) of the stage
  uint32_t unit_end = 0;    // one past the last; unit_begin < unit_end
  uint64_t mem_budget_bytes = 0;
  uint32_t n_threads = 0;
  std::string downstream_endpoint;
  std::string upstream_name;
  uint32_t n_ctx = 0;
  uint32_t n_seq_max = 0;
  // The last stage's sampler (model::SamplerOptions); sequence s draws with seed + s.
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  // Data steps with another request_id are from before a re-plan: dropped (0: accept all).
  uint32_t epoch = 0;
  // Per sequence id: tokens sampled before this assignment; the sampler skips that many draws.
  std::vector<uint32_t> sampled_before;
  bool operator==(const Assign&) const = default;
};

// One chunk of a model slice; its bytes are the message's payload (chunk_bytes of them).
struct ShipSlice {
  std::string slice_hash;
  uint64_t offset_bytes = 0;
  uint64_t chunk_bytes = 0;
  uint64_t total_bytes = 0;  // offset_bytes + chunk_bytes <= total_bytes <= kMaxSliceBytes
  bool operator==(const ShipSlice&) const = default;
};

struct Ready {
  uint32_t stage_index = 0;
  uint64_t resident_bytes = 0;
  double load_ms = 0;
  bool operator==(const Ready&) const = default;
};

struct Heartbeat {
  uint64_t seq = 0;
  int64_t sent_ns = 0;  // sender's steady clock (strata::now_ns)
  bool operator==(const Heartbeat&) const = default;
};

struct StepStats {
  uint64_t step_id = 0;
  uint32_t n_tokens = 0;
  double compute_ms = 0;  // the step as the pipeline saw it: paced when emulating
  double wait_ms = 0;
  double link_ms = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Emulation headroom: the compute this host took before pacing, and the reference device's
  // time the step was paced to (0 when not emulating). local_ms > paced_ms is an overrun: the
  // step took compute_ms = local_ms, longer than the reference device would have.
  double local_ms = 0;
  double paced_ms = 0;
  bool operator==(const StepStats&) const = default;
};

struct Stats {
  uint32_t stage_index = 0;
  std::vector<StepStats> steps;
  bool operator==(const Stats&) const = default;
};

// A refusal or a failure, carrying a strata::StatusCode (never kOk).
struct ErrorMessage {
  StatusCode code = StatusCode::kInternal;
  std::string message;
  bool operator==(const ErrorMessage&) const = default;
};

struct Shutdown {
  std::string reason;
  bool operator==(const Shutdown&) const = default;
};

// Link probe. The answer (Pong) carries reply_bytes of payload.
struct Ping {
  uint64_t seq = 0;
  int64_t sent_ns = 0;
  uint64_t reply_bytes = 0;  // <= kMaxProbeReplyBytes
  bool operator==(const Ping&) const = default;
};

struct Pong {
  uint64_t seq = 0;
  int64_t ping_sent_ns = 0;
  uint64_t received_bytes = 0;
  bool operator==(const Pong&) const = default;
};

using ControlMessage = std::variant<Hello, Assign, ShipSlice, Ready, Heartbeat, Stats, ErrorMessage,
                                    Shutdown, Ping, Pong>;

// "hello", "assign", ...: for messages and logs. Never null.
const char* control_message_name(const ControlMessage& message);

// Whether messages of this kind travel with a payload frame: ShipSlice always, Ping/Pong
// optionally, every other kind never.
enum class PayloadRule { kNone, kOptional, kRequired };
PayloadRule payload_rule(const ControlMessage& message);

// ---- data messages (stage -> stage, PUSH -> PULL) ----

enum class DType : uint8_t { kNone = 0, kF32 = 1, kF16 = 2, kBF16 = 3, kI32 = 4 };

// Bytes per element of `dtype`; 0 for kNone.
size_t dtype_size_bytes(DType dtype);

// Bits in DataHeader::flags; other bits are refused.
enum DataFlag : uint32_t {
  kDataPrefill = 1u << 0,     // the tokens are (a chunk of) a prompt
  kDataDecode = 1u << 1,      // one generated token per sequence
  kDataFinal = 1u << 2,       // last chunk of this step: the receiver produces output for it
  kDataWantLogits = 1u << 3,  // the last stage returns the logits of logit_rows as payload
};
inline constexpr uint32_t kDataFlagsKnown =
    kDataPrefill | kDataDecode | kDataFinal | kDataWantLogits;

// The header of one activation message; the tensor (dtype, shape) is the payload frame.
// Tokens are listed one per entry: token i belongs to seq_ids[i] at positions[i], so a batch
// may mix decode tokens of many sequences with a prefill chunk of one (SARATHI).
struct DataHeader {
  uint64_t request_id = 0;
  uint64_t step_id = 0;
  uint32_t flags = 0;
  uint32_t n_tokens = 0;                // <= kMaxTokens
  std::vector<int32_t> seq_ids;         // n_tokens entries, each >= 0
  std::vector<int32_t> positions;       // n_tokens entries, each >= 0
  std::vector<int32_t> token_ids;       // empty or n_tokens entries
  std::vector<int32_t> sampled_tokens;  // empty or up to kMaxSampledTokens
  DType dtype = DType::kNone;
  std::vector<int64_t> shape;  // empty = no tensor (payload must be empty); else 1..4 dims > 0
  StatusCode status_code = StatusCode::kOk;  // a stage that failed says why here
  std::string status_message;
  // Indices (< n_tokens, increasing) of the tokens whose logits the last stage turns into a
  // sampled token: a decode token, or the last prompt token of a finished prefill.
  std::vector<uint32_t> logit_rows;
  bool operator==(const DataHeader&) const = default;
};

// Bytes the payload of `header` must have: product(shape) * dtype size, 0 without a shape.
// Returns kInvalidArgument when the shape or dtype is out of bounds.
Result<uint64_t> expected_payload_bytes(const DataHeader& header);

// The checks every data header passes before use (both before sending and after receiving):
// bounds on counts, strings, shape and dtype, and payload_bytes == expected_payload_bytes.
// Returns ok, or kInvalidArgument / kCorrupt naming the field.
Status check_data_header(const DataHeader& header, uint64_t payload_bytes);

// The same for a control message with `payload_bytes` of payload (`has_payload` says whether
// a payload frame came at all). Returns ok, or kInvalidArgument / kCorrupt naming the field.
Status check_control_message(const ControlMessage& message, bool has_payload,
                             uint64_t payload_bytes);

}  // namespace strata::transport
