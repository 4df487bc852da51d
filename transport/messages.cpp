#include "strata/transport/messages.h"

#include <cmath>
#include <string>
#include <type_traits>

#include "checks.h"

namespace strata::transport {
namespace {

template <class>
inline constexpr bool kAlwaysFalse = false;

std::string n(uint64_t v) { return std::to_string(v); }

Status check_string(const char* what, const std::string& s, size_t max_bytes = kMaxStringBytes) {
  if (s.size() > max_bytes) {
    return invalid_argument(std::string(what) + " has " + n(s.size()) + " bytes, at most " +
                            n(max_bytes) + " allowed");
  }
  return {};
}

Status check_time(const char* what, double ms) {
  if (!std::isfinite(ms) || ms < 0) {
    return invalid_argument(std::string(what) + " is " + std::to_string(ms) +
                            ", not a finite non-negative time");
  }
  return {};
}

bool valid_error_code(StatusCode code) {
  const auto v = static_cast<int>(code);
  return v > static_cast<int>(StatusCode::kOk) && v <= static_cast<int>(StatusCode::kInternal);
}

Status check_fields(const Hello& m) {
  STRATA_RETURN_IF_ERROR(check_string("hello.agent_id", m.agent_id));
  STRATA_RETURN_IF_ERROR(check_string("hello.agent_name", m.agent_name));
  STRATA_RETURN_IF_ERROR(check_string("hello.data_endpoint", m.data_endpoint));
  STRATA_RETURN_IF_ERROR(check_string("hello.profile_json", m.profile_json, kMaxProfileJsonBytes));
  if (m.cached_slices.size() > kMaxCachedSlices) {
    return invalid_argument("hello.cached_slices has " + n(m.cached_slices.size()) +
                            " entries, at most " + n(kMaxCachedSlices) + " allowed");
  }
  for (const std::string& s : m.cached_slices) {
    STRATA_RETURN_IF_ERROR(check_string("hello.cached_slices entry", s));
  }
  return {};
}

Status check_fields(const Assign& m) {
  STRATA_RETURN_IF_ERROR(check_string("assign.model_id", m.model_id));
  STRATA_RETURN_IF_ERROR(check_string("assign.model_hash", m.model_hash));
  STRATA_RETURN_IF_ERROR(check_string("assign.slice_hash", m.slice_hash));
  STRATA_RETURN_IF_ERROR(check_string("assign.downstream_endpoint", m.downstream_endpoint));
  STRATA_RETURN_IF_ERROR(check_string("assign.upstream_name", m.upstream_name));
  if (m.n_stages == 0 || m.stage_index >= m.n_stages) {
    return invalid_argument("assign: stage_index " + n(m.stage_index) + " is not below n_stages " +
                            n(m.n_stages));
  }
  if (m.unit_begin >= m.unit_end) {
    return invalid_argument("assign: unit range [" + n(m.unit_begin) + ", " + n(m.unit_end) +
                            ") is empty");
  }
  if (!(m.temperature >= 0.0f && m.temperature <= 100.0f) || m.top_k < 0 ||
      !(m.top_p > 0.0f && m.top_p <= 1.0f)) {
    return invalid_argument("assign: sampler temperature/top_k/top_p out of range");
  }
  return {};
}

Status check_fields(const ShipSlice& m) {
  STRATA_RETURN_IF_ERROR(check_string("ship_slice.slice_hash", m.slice_hash));
  if (m.slice_hash.empty()) return invalid_argument("ship_slice.slice_hash is empty");
  if (m.total_bytes > kMaxSliceBytes) {
    return invalid_argument("ship_slice.total_bytes " + n(m.total_bytes) + " exceeds " +
                            n(kMaxSliceBytes));
  }
  if (m.chunk_bytes > kMaxPayloadBytes || m.offset_bytes > m.total_bytes ||
      m.chunk_bytes > m.total_bytes - m.offset_bytes) {
    return invalid_argument("ship_slice: chunk [" + n(m.offset_bytes) + ", +" + n(m.chunk_bytes) +
                            ") does not fit in total_bytes " + n(m.total_bytes));
  }
  return {};
}

Status check_fields(const Ready& m) { return check_time("ready.load_ms", m.load_ms); }
Status check_fields(const Heartbeat&) { return {}; }

Status check_fields(const Stats& m) {
  if (m.steps.size() > kMaxStatsSteps) {
    return invalid_argument("stats.steps has " + n(m.steps.size()) + " entries, at most " +
                            n(kMaxStatsSteps) + " allowed");
  }
  for (const StepStats& s : m.steps) {
    STRATA_RETURN_IF_ERROR(check_time("stats.compute_ms", s.compute_ms));
    STRATA_RETURN_IF_ERROR(check_time("stats.wait_ms", s.wait_ms));
    STRATA_RETURN_IF_ERROR(check_time("stats.link_ms", s.link_ms));
    STRATA_RETURN_IF_ERROR(check_time("stats.local_ms", s.local_ms));
    STRATA_RETURN_IF_ERROR(check_time("stats.paced_ms", s.paced_ms));
  }
  return {};
}

Status check_fields(const ErrorMessage& m) {
  if (!valid_error_code(m.code)) {
    return invalid_argument("error.code " + n(static_cast<uint64_t>(m.code)) +
                            " is not a failure StatusCode");
  }
  return check_string("error.message", m.message);
}

Status check_fields(const Shutdown& m) { return check_string("shutdown.reason", m.reason); }

Status check_fields(const Ping& m) {
  if (m.reply_bytes > kMaxProbeReplyBytes) {
    return invalid_argument("ping.reply_bytes " + n(m.reply_bytes) + " exceeds " +
                            n(kMaxProbeReplyBytes));
  }
  return {};
}

Status check_fields(const Pong&) { return {}; }

}  // namespace

const char* control_message_name(const ControlMessage& message) {
  return std::visit(
      [](const auto& m) -> const char* {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>)
          return "hello";
        else if constexpr (std::is_same_v<T, Assign>)
          return "assign";
        else if constexpr (std::is_same_v<T, ShipSlice>)
          return "ship_slice";
        else if constexpr (std::is_same_v<T, Ready>)
          return "ready";
        else if constexpr (std::is_same_v<T, Heartbeat>)
          return "heartbeat";
        else if constexpr (std::is_same_v<T, Stats>)
          return "stats";
        else if constexpr (std::is_same_v<T, ErrorMessage>)
          return "error";
        else if constexpr (std::is_same_v<T, Shutdown>)
          return "shutdown";
        else if constexpr (std::is_same_v<T, Ping>)
          return "ping";
        else if constexpr (std::is_same_v<T, Pong>)
          return "pong";
        else
          static_assert(kAlwaysFalse<T>, "name every control message");
      },
      message);
}

PayloadRule payload_rule(const ControlMessage& message) {
  if (std::holds_alternative<ShipSlice>(message)) return PayloadRule::kRequired;
  if (std::holds_alternative<Ping>(message) || std::holds_alternative<Pong>(message)) {
    return PayloadRule::kOptional;
  }
  return PayloadRule::kNone;
}

size_t dtype_size_bytes(DType dtype) {
  switch (dtype) {
    case DType::kNone: return 0;
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
  }
  return 0;
}

Result<uint64_t> expected_payload_bytes(const DataHeader& header) {
  if (header.shape.empty()) return uint64_t{0};
  const size_t elem = dtype_size_bytes(header.dtype);
  if (elem == 0) {
    return invalid_argument("data.dtype " + n(static_cast<uint64_t>(header.dtype)) +
                            " is not a tensor type but a shape is given");
  }
  if (header.shape.size() > kMaxShapeDims) {
    return invalid_argument("data.shape has " + n(header.shape.size()) + " dims, at most " +
                            n(kMaxShapeDims) + " allowed");
  }
  uint64_t bytes = elem;
  for (const int64_t dim : header.shape) {
    if (dim <= 0 || dim > kMaxShapeDim) {
      return invalid_argument("data.shape has a dim of " + std::to_string(dim) +
                              ", dims must be in [1, " + n(kMaxShapeDim) + "]");
    }
    // Both factors are below 2^32 here as long as bytes stays below kMaxPayloadBytes.
    bytes *= static_cast<uint64_t>(dim);
    if (bytes > kMaxPayloadBytes) {
      return invalid_argument("data.shape describes more than " + n(kMaxPayloadBytes) + " bytes");
    }
  }
  return bytes;
}

namespace internal {

Status check_data_fields(const DataHeader& h) {
  if (h.n_tokens > kMaxTokens) {
    return invalid_argument("data.n_tokens " + n(h.n_tokens) + " exceeds " + n(kMaxTokens));
  }
  if (h.seq_ids.size() != h.n_tokens || h.positions.size() != h.n_tokens) {
    return invalid_argument("data: n_tokens is " + n(h.n_tokens) + " but seq_ids has " +
                            n(h.seq_ids.size()) + " and positions " + n(h.positions.size()) +
                            " entries");
  }
  if (!h.token_ids.empty() && h.token_ids.size() != h.n_tokens) {
    return invalid_argument("data: token_ids has " + n(h.token_ids.size()) +
                            " entries, n_tokens is " + n(h.n_tokens));
  }
  if (h.sampled_tokens.size() > kMaxSampledTokens) {
    return invalid_argument("data.sampled_tokens has " + n(h.sampled_tokens.size()) +
                            " entries, at most " + n(kMaxSampledTokens) + " allowed");
  }
  for (uint32_t i = 0; i < h.n_tokens; ++i) {
    if (h.seq_ids[i] < 0 || h.positions[i] < 0) {
      return invalid_argument("data: token " + n(i) + " has seq_id " +
                              std::to_string(h.seq_ids[i]) + " position " +
                              std::to_string(h.positions[i]) + ", both must be >= 0");
    }
  }
  if (h.logit_rows.size() > h.n_tokens) {
    return invalid_argument("data.logit_rows has " + n(h.logit_rows.size()) +
                            " entries, more than the " + n(h.n_tokens) + " tokens");
  }
  for (size_t i = 0; i < h.logit_rows.size(); ++i) {
    if (h.logit_rows[i] >= h.n_tokens || (i > 0 && h.logit_rows[i] <= h.logit_rows[i - 1])) {
      return invalid_argument("data.logit_rows must be increasing token indices below n_tokens");
    }
  }
  if ((h.flags & ~kDataFlagsKnown) != 0) {
    return invalid_argument("data.flags has unknown bits " + n(h.flags & ~kDataFlagsKnown));
  }
  if (static_cast<int>(h.dtype) > static_cast<int>(DType::kI32)) {
    return invalid_argument("data.dtype " + n(static_cast<uint64_t>(h.dtype)) + " is unknown");
  }
  if (h.status_code != StatusCode::kOk && !valid_error_code(h.status_code)) {
    return invalid_argument("data.status_code " + n(static_cast<uint64_t>(h.status_code)) +
                            " is unknown");
  }
  STRATA_RETURN_IF_ERROR(check_string("data.status_message", h.status_message));
  return expected_payload_bytes(h).status();
}

Status check_data_payload(const DataHeader& h, uint64_t payload_bytes) {
  STRATA_ASSIGN_OR_RETURN(const uint64_t expected, expected_payload_bytes(h));
  if (payload_bytes != expected) {
    return corrupt("data payload has " + n(payload_bytes) + " bytes, header (dtype " +
                   n(static_cast<uint64_t>(h.dtype)) + ", " + n(h.shape.size()) + " dims) says " +
                   n(expected));
  }
  return {};
}

Status check_control_fields(const ControlMessage& message) {
  return std::visit([](const auto& m) { return check_fields(m); }, message);
}

Status check_control_payload(const ControlMessage& message, bool has_payload,
                             uint64_t payload_bytes) {
  const PayloadRule rule = payload_rule(message);
  const char* name = control_message_name(message);
  if (rule == PayloadRule::kNone && has_payload) {
    return corrupt(std::string(name) + " came with a payload frame of " + n(payload_bytes) +
                   " bytes; it takes none");
  }
  if (rule == PayloadRule::kRequired && !has_payload) {
    return corrupt(std::string(name) + " came without its payload frame");
  }
  if (payload_bytes > kMaxPayloadBytes) {
    return corrupt(std::string(name) + " payload of " + n(payload_bytes) + " bytes exceeds " +
                   n(kMaxPayloadBytes));
  }
  if (const auto* ship = std::get_if<ShipSlice>(&message);
      ship != nullptr && ship->chunk_bytes != payload_bytes) {
    return corrupt("ship_slice says chunk_bytes " + n(ship->chunk_bytes) + " but the payload has " +
                   n(payload_bytes));
  }
  return {};
}

}  // namespace internal

Status check_data_header(const DataHeader& header, uint64_t payload_bytes) {
  STRATA_RETURN_IF_ERROR(internal::check_data_fields(header));
  return internal::check_data_payload(header, payload_bytes);
}

Status check_control_message(const ControlMessage& message, bool has_payload,
                             uint64_t payload_bytes) {
  STRATA_RETURN_IF_ERROR(internal::check_control_fields(message));
  return internal::check_control_payload(message, has_payload, payload_bytes);
}

}  // namespace strata::transport
