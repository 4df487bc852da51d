#include "strata/transport/codec.h"

#include <cstring>
#include <string>
#include <type_traits>

#include "checks.h"
#include "codec_internal.h"
#include "wire_generated.h"

namespace strata::transport {
namespace {

namespace fb = flatbuffers;
using Fbb = fb::FlatBufferBuilder;

template <class>
inline constexpr bool kAlwaysFalse = false;

fb::Offset<fb::String> str(Fbb& fbb, const std::string& s) {
  return s.empty() ? 0 : fbb.CreateString(s);
}

template <class T>
fb::Offset<fb::Vector<T>> vec(Fbb& fbb, const std::vector<T>& v) {
  return v.empty() ? 0 : fbb.CreateVector(v);
}

fb::Offset<void> build_body(Fbb& fbb, const Hello& m) {
  std::vector<fb::Offset<fb::String>> slices;
  slices.reserve(m.cached_slices.size());
  for (const std::string& s : m.cached_slices) slices.push_back(fbb.CreateString(s));
  return wire::CreateHello(fbb, str(fbb, m.agent_id), str(fbb, m.agent_name),
                           str(fbb, m.data_endpoint), m.n_threads, m.mem_bytes, m.capabilities,
                           slices.empty() ? 0 : fbb.CreateVector(slices), str(fbb, m.profile_json))
      .Union();
}

fb::Offset<void> build_body(Fbb& fbb, const Assign& m) {
  return wire::CreateAssign(fbb, str(fbb, m.model_id), str(fbb, m.model_hash),
                            str(fbb, m.slice_hash), m.stage_index, m.n_stages, m.unit_begin,
                            m.unit_end, m.mem_budget_bytes, m.n_threads,
                            str(fbb, m.downstream_endpoint), str(fbb, m.upstream_name), m.n_ctx,
                            m.n_seq_max, m.temperature, m.top_k, m.top_p, m.seed, m.epoch,
                            m.sampled_before.empty() ? 0 : fbb.CreateVector(m.sampled_before))
      .Union();
}

fb::Offset<void> build_body(Fbb& fbb, const ShipSlice& m) {
  return wire::CreateShipSlice(fbb, str(fbb, m.slice_hash), m.offset_bytes, m.chunk_bytes,
                               m.total_bytes)
      .Union();
}

fb::Offset<void> build_body(Fbb& fbb, const Ready& m) {
  return wire::CreateReady(fbb, m.stage_index, m.resident_bytes, m.load_ms).Union();
}

fb::Offset<void> build_body(Fbb& fbb, const Heartbeat& m) {
  return wire::CreateHeartbeat(fbb, m.seq, m.sent_ns).Union();
}

// A Stats of the most steps allowed must fit in one header frame, whatever StepStats grows to.
static_assert(sizeof(wire::StepStats) * kMaxStatsSteps + 4096 <= kMaxHeaderBytes);

fb::Offset<void> build_body(Fbb& fbb, const Stats& m) {
  std::vector<wire::StepStats> steps;
  steps.reserve(m.steps.size());
  for (const StepStats& s : m.steps) {
    steps.emplace_back(s.step_id, s.n_tokens, s.compute_ms, s.wait_ms, s.link_ms, s.bytes_in,
                       s.bytes_out, s.local_ms, s.paced_ms);
  }
  return wire::CreateStats(fbb, m.stage_index, steps.empty() ? 0 : fbb.CreateVectorOfStructs(steps))
      .Union();
}

fb::Offset<void> build_body(Fbb& fbb, const ErrorMessage& m) {
  return wire::CreateError(fbb, static_cast<uint8_t>(m.code), str(fbb, m.message)).Union();
}

fb::Offset<void> build_body(Fbb& fbb, const Shutdown& m) {
  return wire::CreateShutdown(fbb, str(fbb, m.reason)).Union();
}

fb::Offset<void> build_body(Fbb& fbb, const Ping& m) {
  return wire::CreatePing(fbb, m.seq, m.sent_ns, m.reply_bytes).Union();
}

fb::Offset<void> build_body(Fbb& fbb, const Pong& m) {
  return wire::CreatePong(fbb, m.seq, m.ping_sent_ns, m.received_bytes).Union();
}

template <class T>
wire::Body body_type() {
  if constexpr (std::is_same_v<T, Hello>)
    return wire::Body::Hello;
  else if constexpr (std::is_same_v<T, Assign>)
    return wire::Body::Assign;
  else if constexpr (std::is_same_v<T, ShipSlice>)
    return wire::Body::ShipSlice;
  else if constexpr (std::is_same_v<T, Ready>)
    return wire::Body::Ready;
  else if constexpr (std::is_same_v<T, Heartbeat>)
    return wire::Body::Heartbeat;
  else if constexpr (std::is_same_v<T, Stats>)
    return wire::Body::Stats;
  else if constexpr (std::is_same_v<T, ErrorMessage>)
    return wire::Body::Error;
  else if constexpr (std::is_same_v<T, Shutdown>)
    return wire::Body::Shutdown;
  else if constexpr (std::is_same_v<T, Ping>)
    return wire::Body::Ping;
  else if constexpr (std::is_same_v<T, Pong>)
    return wire::Body::Pong;
  else
    static_assert(kAlwaysFalse<T>, "every control message has a body type");
}

// ---- decoding: the buffer has passed the verifier, so every accessor stays in bounds ----

std::string str(const fb::String* s) { return s == nullptr ? std::string() : s->str(); }

template <class T>
std::vector<T> vec(const fb::Vector<T>* v) {
  return v == nullptr ? std::vector<T>() : std::vector<T>(v->begin(), v->end());
}

Hello read(const wire::Hello& w) {
  Hello m;
  m.agent_id = str(w.agent_id());
  m.agent_name = str(w.agent_name());
  m.data_endpoint = str(w.data_endpoint());
  m.n_threads = w.n_threads();
  m.mem_bytes = w.mem_bytes();
  m.capabilities = w.capabilities();
  if (const auto* slices = w.cached_slices(); slices != nullptr) {
    m.cached_slices.reserve(slices->size());
    for (const fb::String* s : *slices) m.cached_slices.push_back(str(s));
  }
  m.profile_json = str(w.profile_json());
  return m;
}

Assign read(const wire::Assign& w) {
  Assign m;
  m.model_id = str(w.model_id());
  m.model_hash = str(w.model_hash());
  m.slice_hash = str(w.slice_hash());
  m.stage_index = w.stage_index();
  m.n_stages = w.n_stages();
  m.unit_begin = w.unit_begin();
  m.unit_end = w.unit_end();
  m.mem_budget_bytes = w.mem_budget_bytes();
  m.n_threads = w.n_threads();
  m.downstream_endpoint = str(w.downstream_endpoint());
  m.upstream_name = str(w.upstream_name());
  m.n_ctx = w.n_ctx();
  m.n_seq_max = w.n_seq_max();
  m.temperature = w.temperature();
  m.top_k = w.top_k();
  m.top_p = w.top_p();
  m.seed = w.seed();
  m.epoch = w.epoch();
  if (w.sampled_before() != nullptr)
    m.sampled_before.assign(w.sampled_before()->begin(), w.sampled_before()->end());
  return m;
}

ShipSlice read(const wire::ShipSlice& w) {
  return {str(w.slice_hash()), w.offset_bytes(), w.chunk_bytes(), w.total_bytes()};
}

Ready read(const wire::Ready& w) { return {w.stage_index(), w.resident_bytes(), w.load_ms()}; }
Heartbeat read(const wire::Heartbeat& w) { return {w.seq(), w.sent_ns()}; }

Stats read(const wire::Stats& w) {
  Stats m;
  m.stage_index = w.stage_index();
  if (const auto* steps = w.steps(); steps != nullptr) {
    m.steps.reserve(steps->size());
    for (const wire::StepStats* s : *steps) {
      m.steps.push_back({s->step_id(), s->n_tokens(), s->compute_ms(), s->wait_ms(), s->link_ms(),
                         s->bytes_in(), s->bytes_out(), s->local_ms(), s->paced_ms()});
    }
  }
  return m;
}

ErrorMessage read(const wire::Error& w) {
  return {static_cast<StatusCode>(w.code()), str(w.message())};
}

Shutdown read(const wire::Shutdown& w) { return {str(w.reason())}; }
Ping read(const wire::Ping& w) { return {w.seq(), w.sent_ns(), w.reply_bytes()}; }
Pong read(const wire::Pong& w) { return {w.seq(), w.ping_sent_ns(), w.received_bytes()}; }

DataHeader read(const wire::Data& w) {
  DataHeader h;
  h.request_id = w.request_id();
  h.step_id = w.step_id();
  h.flags = w.flags();
  h.n_tokens = w.n_tokens();
  h.seq_ids = vec(w.seq_ids());
  h.positions = vec(w.positions());
  h.token_ids = vec(w.token_ids());
  h.sampled_tokens = vec(w.sampled_tokens());
  h.dtype = static_cast<DType>(w.dtype());
  h.shape = vec(w.shape());
  h.status_code = static_cast<StatusCode>(w.status_code());
  h.status_message = str(w.status_message());
  h.logit_rows = vec(w.logit_rows());
  return h;
}

// Vector lengths are bounded before anything is copied out of the frame: the verifier only
// promises that they lie inside it.
template <class V>
Status check_count(const char* what, const V* v, size_t max) {
  if (v == nullptr || v->size() <= max) return {};
  return invalid_argument(std::string(what) + " has " + std::to_string(v->size()) +
                          " entries, at most " + std::to_string(max) + " allowed");
}

Status check_counts(const wire::Message& m) {
  switch (m.body_type()) {
    case wire::Body::Hello:
      return check_count("hello.cached_slices", m.body_as_Hello()->cached_slices(),
                         kMaxCachedSlices);
    case wire::Body::Stats:
      return check_count("stats.steps", m.body_as_Stats()->steps(), kMaxStatsSteps);
    case wire::Body::Data: {
      const wire::Data& d = *m.body_as_Data();
      STRATA_RETURN_IF_ERROR(check_count("data.seq_ids", d.seq_ids(), kMaxTokens));
      STRATA_RETURN_IF_ERROR(check_count("data.positions", d.positions(), kMaxTokens));
      STRATA_RETURN_IF_ERROR(check_count("data.token_ids", d.token_ids(), kMaxTokens));
      STRATA_RETURN_IF_ERROR(
          check_count("data.sampled_tokens", d.sampled_tokens(), kMaxSampledTokens));
      STRATA_RETURN_IF_ERROR(check_count("data.logit_rows", d.logit_rows(), kMaxTokens));
      return check_count("data.shape", d.shape(), kMaxShapeDims);
    }
    default: return {};
  }
}

struct Failure {
  Status status;
  RejectReason reason;
};

// Size bound, alignment, verifier, version. On success returns the root table; the caller
// keeps `scratch` alive while it reads from it.
const wire::Message* open_envelope(std::span<const uint8_t> bytes, std::vector<uint64_t>& scratch,
                                   Failure& failure) {
  if (bytes.empty() || bytes.size() > kMaxHeaderBytes) {
    failure = {corrupt("header frame has " + std::to_string(bytes.size()) +
                       " bytes, expected 1 to " + std::to_string(kMaxHeaderBytes)),
               RejectReason::kHeaderSize};
    return nullptr;
  }
  // ZeroMQ delivers frames at any alignment; FlatBuffers reads scalars in place and wants them
  // aligned. A header is a few hundred bytes, so copying it is cheap (the payload never is).
  const uint8_t* data = bytes.data();
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    scratch.resize((bytes.size() + 7) / 8);
    std::memcpy(scratch.data(), bytes.data(), bytes.size());
    data = reinterpret_cast<const uint8_t*>(scratch.data());
  }
  fb::Verifier verifier(data, bytes.size(), /*max_depth=*/16, /*max_tables=*/16384);
  if (!wire::VerifyMessageBuffer(verifier)) {
    failure = {corrupt("header frame of " + std::to_string(bytes.size()) +
                       " bytes fails the FlatBuffers verifier (garbage, truncated or bad offsets)"),
               RejectReason::kVerify};
    return nullptr;
  }
  const wire::Message* message = wire::GetMessage(data);
  if (message->version() != kProtocolVersion) {
    failure = {unsupported("peer speaks protocol version " + std::to_string(message->version()) +
                           ", this build speaks " + std::to_string(kProtocolVersion)),
               RejectReason::kVersion};
    return nullptr;
  }
  const auto type = message->body_type();
  if (type == wire::Body::NONE || static_cast<int>(type) > static_cast<int>(wire::Body::MAX)) {
    failure = {unsupported("message body type " + std::to_string(static_cast<int>(type)) +
                           " is unknown to this build"),
               RejectReason::kUnknownType};
    return nullptr;
  }
  if (message->body() == nullptr) {
    failure = {
        corrupt("message of body type " + std::to_string(static_cast<int>(type)) + " has no body"),
        RejectReason::kVerify};
    return nullptr;
  }
  return message;
}

template <class T>
Result<T> fail(const Failure& f, RejectReason* reason) {
  if (reason != nullptr) *reason = f.reason;
  return f.status;
}

ControlMessage read_control(const wire::Message& m) {
  switch (m.body_type()) {
    case wire::Body::Hello: return read(*m.body_as_Hello());
    case wire::Body::Assign: return read(*m.body_as_Assign());
    case wire::Body::ShipSlice: return read(*m.body_as_ShipSlice());
    case wire::Body::Ready: return read(*m.body_as_Ready());
    case wire::Body::Heartbeat: return read(*m.body_as_Heartbeat());
    case wire::Body::Stats: return read(*m.body_as_Stats());
    case wire::Body::Error: return read(*m.body_as_Error());
    case wire::Body::Shutdown: return read(*m.body_as_Shutdown());
    case wire::Body::Ping: return read(*m.body_as_Ping());
    case wire::Body::Pong: return read(*m.body_as_Pong());
    case wire::Body::Data:
    case wire::Body::NONE: break;
  }
  check_failed(__FILE__, __LINE__, "control body", "read_control called on a non-control body");
}

}  // namespace

namespace internal {

void build_control(Fbb& fbb, const ControlMessage& message, uint16_t version) {
  fbb.Clear();
  const auto [type, body] = std::visit(
      [&fbb](const auto& m) {
        return std::pair{body_type<std::decay_t<decltype(m)>>(), build_body(fbb, m)};
      },
      message);
  wire::FinishMessageBuffer(fbb, wire::CreateMessage(fbb, version, type, body));
}

void build_data(Fbb& fbb, const DataHeader& h, uint16_t version) {
  fbb.Clear();
  const auto body = wire::CreateData(
      fbb, h.request_id, h.step_id, h.flags, h.n_tokens, vec(fbb, h.seq_ids), vec(fbb, h.positions),
      vec(fbb, h.token_ids), vec(fbb, h.sampled_tokens), static_cast<wire::DType>(h.dtype),
      vec(fbb, h.shape), static_cast<uint8_t>(h.status_code), str(fbb, h.status_message),
      vec(fbb, h.logit_rows));
  wire::FinishMessageBuffer(fbb, wire::CreateMessage(fbb, version, wire::Body::Data, body.Union()));
}

}  // namespace internal

const char* reject_reason_name(RejectReason reason) {
  switch (reason) {
    case RejectReason::kFrames: return "frames";
    case RejectReason::kHeaderSize: return "header size";
    case RejectReason::kVerify: return "verify";
    case RejectReason::kVersion: return "version";
    case RejectReason::kUnknownType: return "unknown type";
    case RejectReason::kUnexpectedType: return "unexpected type";
    case RejectReason::kFields: return "fields";
    case RejectReason::kPayloadSize: return "payload size";
  }
  return "unknown";
}

void count_reject(RejectCounters& c, RejectReason reason) {
  switch (reason) {
    case RejectReason::kFrames: ++c.frames; return;
    case RejectReason::kHeaderSize: ++c.header_size; return;
    case RejectReason::kVerify: ++c.verify; return;
    case RejectReason::kVersion: ++c.version; return;
    case RejectReason::kUnknownType: ++c.unknown_type; return;
    case RejectReason::kUnexpectedType: ++c.unexpected_type; return;
    case RejectReason::kFields: ++c.fields; return;
    case RejectReason::kPayloadSize: ++c.payload_size; return;
  }
}

std::vector<uint8_t> encode_control(const ControlMessage& message, uint16_t version) {
  Fbb fbb(512);
  internal::build_control(fbb, message, version);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

std::vector<uint8_t> encode_data(const DataHeader& header, uint16_t version) {
  Fbb fbb(512);
  internal::build_data(fbb, header, version);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

Result<ControlMessage> decode_control(std::span<const uint8_t> header, bool has_payload,
                                      uint64_t payload_bytes, RejectReason* reason) {
  std::vector<uint64_t> scratch;
  Failure f;
  const wire::Message* m = open_envelope(header, scratch, f);
  if (m == nullptr) return fail<ControlMessage>(f, reason);
  if (m->body_type() == wire::Body::Data) {
    return fail<ControlMessage>({invalid_argument("a data message arrived on a control channel"),
                                 RejectReason::kUnexpectedType},
                                reason);
  }
  if (Status s = check_counts(*m); !s.ok()) {
    return fail<ControlMessage>({s, RejectReason::kFields}, reason);
  }
  ControlMessage message = read_control(*m);
  if (Status s = internal::check_control_fields(message); !s.ok()) {
    return fail<ControlMessage>({s, RejectReason::kFields}, reason);
  }
  if (Status s = internal::check_control_payload(message, has_payload, payload_bytes); !s.ok()) {
    return fail<ControlMessage>({s, RejectReason::kPayloadSize}, reason);
  }
  return message;
}

Result<DataHeader> decode_data(std::span<const uint8_t> header, uint64_t payload_bytes,
                               RejectReason* reason) {
  std::vector<uint64_t> scratch;
  Failure f;
  const wire::Message* m = open_envelope(header, scratch, f);
  if (m == nullptr) return fail<DataHeader>(f, reason);
  if (m->body_type() != wire::Body::Data) {
    return fail<DataHeader>({invalid_argument("a control message arrived on a data channel"),
                             RejectReason::kUnexpectedType},
                            reason);
  }
  if (Status s = check_counts(*m); !s.ok()) {
    return fail<DataHeader>({s, RejectReason::kFields}, reason);
  }
  DataHeader h = read(*m->body_as_Data());
  if (Status s = internal::check_data_fields(h); !s.ok()) {
    return fail<DataHeader>({s, RejectReason::kFields}, reason);
  }
  if (Status s = internal::check_data_payload(h, payload_bytes); !s.ok()) {
    return fail<DataHeader>({s, RejectReason::kPayloadSize}, reason);
  }
  return h;
}

}  // namespace strata::transport
