#include "strata/transport/channel.h"

#include <cerrno>
#include <cmath>

#include "codec_internal.h"
#include "shaper.h"
#include "socket.h"
#include "strata/base/io.h"

namespace strata::transport {
namespace {

using internal::SocketImpl;

zmq::message_t header_frame(const flatbuffers::FlatBufferBuilder& fbb) {
  return zmq::message_t(fbb.GetBufferPointer(), fbb.GetSize());
}

// Sends [routing id] + header + [payload] from the owning thread. With a shaper, a timestamp
// frame goes first (the shaper strips it).
Status send_message(SocketImpl& s, const std::string* peer, zmq::message_t header,
                    bool payload_frame, const SharedBytes& payload, Deadline deadline,
                    bool unavailable_on_timeout, const std::string& what) {
  try {
    std::vector<zmq::message_t> frames;
    frames.reserve(4);
    if (s.shaper != nullptr) frames.push_back(internal::Shaper::stamp_frame());
    if (peer != nullptr) frames.emplace_back(peer->data(), peer->size());
    const size_t bytes = header.size() + payload.size_bytes();
    frames.push_back(std::move(header));
    if (payload_frame) {
      STRATA_ASSIGN_OR_RETURN(zmq::message_t body, internal::share_into_message(payload));
      frames.push_back(std::move(body));
    }
    internal::tsan_release(&s.context->tsan_sync);
    STRATA_RETURN_IF_ERROR(
        internal::send_frames(s.socket, frames, deadline, unavailable_on_timeout, what));
    s.counters.sent_messages.fetch_add(1, std::memory_order_relaxed);
    s.counters.sent_bytes.fetch_add(bytes, std::memory_order_relaxed);
    return {};
  } catch (const zmq::error_t& e) {
    return internal::zmq_status(e.num(), what);
  }
}

template <class T>
Result<T> reject(SocketImpl& s, const Status& status, RejectReason reason) {
  s.counters.reject(reason);
  return status.with_context(s.kind + " " + s.endpoint);
}

void count_received(SocketImpl& s, const std::vector<zmq::message_t>& frames) {
  size_t bytes = 0;
  for (const zmq::message_t& f : frames) bytes += f.size();
  s.counters.received_messages.fetch_add(1, std::memory_order_relaxed);
  s.counters.received_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

std::span<const uint8_t> bytes_of(const zmq::message_t& frame) {
  return {static_cast<const uint8_t*>(frame.data()), frame.size()};
}

std::string what(const SocketImpl& s, const char* action) {
  return s.kind + " " + s.endpoint + ": " + action;
}

}  // namespace

Deadline Deadline::after_ms(double ms) {
  if (!std::isfinite(ms)) return ms > 0 ? never() : Deadline(now_ns());
  return Deadline(now_ns() + static_cast<int64_t>(std::max(ms, 0.0) * 1e6));
}

Result<Context> Context::create(int io_threads) {
  if (io_threads < 1) return invalid_argument("a context needs at least 1 I/O thread");
  try {
    return Context(std::make_shared<internal::ContextImpl>(io_threads));
  } catch (const zmq::error_t& e) {
    return internal::zmq_status(e.num(), "zmq context");
  }
}

Channel::Channel(std::unique_ptr<SocketImpl> impl) : impl_(std::move(impl)) {}
Channel::Channel(Channel&&) noexcept = default;
Channel& Channel::operator=(Channel&&) noexcept = default;
Channel::~Channel() = default;

const std::string& Channel::endpoint() const { return impl_->endpoint; }
ChannelCounters Channel::counters() const { return impl_->counters.snapshot(); }

Result<uint32_t> wait_readable(std::span<Channel* const> channels, Deadline deadline) {
  STRATA_CHECK(!channels.empty() && channels.size() <= 32);
  std::vector<zmq_pollitem_t> items;
  items.reserve(channels.size());
  for (Channel* c : channels) items.push_back({c->impl_->socket.handle(), 0, ZMQ_POLLIN, 0});
  for (;;) {
    const long timeout = internal::poll_timeout_ms(deadline);
    const int n = zmq_poll(items.data(), static_cast<int>(items.size()), timeout);
    if (n < 0) {
      if (zmq_errno() == EINTR) continue;
      return internal::zmq_status(zmq_errno(), "wait for channels");
    }
    if (n > 0) {
      uint32_t ready = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if ((items[i].revents & ZMQ_POLLIN) != 0) ready |= 1u << i;
      }
      return ready;
    }
    if (timeout == 0) return deadline_exceeded("no channel became readable before the deadline");
  }
}

// ---- control client ----

Result<ControlClient> ControlClient::connect(const Context& context, const std::string& endpoint,
                                             const ChannelOptions& options) {
  STRATA_ASSIGN_OR_RETURN(
      auto impl, internal::make_socket(context_of(context), "control client",
                                       zmq::socket_type::dealer, false, endpoint, options));
  return ControlClient(std::move(impl));
}

Status ControlClient::send(const ControlMessage& message, Deadline deadline, SharedBytes payload) {
  SocketImpl& s = *impl_;
  const bool payload_frame = !payload.empty() || payload_rule(message) == PayloadRule::kRequired;
  STRATA_RETURN_IF_ERROR(check_control_message(message, payload_frame, payload.size_bytes())
                             .with_context(what(s, "send")));
  internal::build_control(s.fbb, message, kProtocolVersion);
  return send_message(s, nullptr, header_frame(s.fbb), payload_frame, payload, deadline,
                      /*unavailable_on_timeout=*/true,
                      what(s, "send ") + control_message_name(message));
}

Result<ControlReply> ControlClient::recv(Deadline deadline) {
  SocketImpl& s = *impl_;
  size_t n_frames = 0;
  STRATA_RETURN_IF_ERROR(
      internal::recv_frames(s.socket, s.frames, 2, n_frames, deadline, what(s, "receive")));
  internal::tsan_acquire(&s.context->tsan_sync);
  if (n_frames > 2) {
    return reject<ControlReply>(
        s, corrupt("control message of " + std::to_string(n_frames) + " frames, expected 1 or 2"),
        RejectReason::kFrames);
  }
  const bool has_payload = n_frames == 2;
  RejectReason reason{};
  auto decoded = decode_control(bytes_of(s.frames[0]), has_payload,
                                has_payload ? s.frames[1].size() : 0, &reason);
  if (!decoded.ok()) return reject<ControlReply>(s, decoded.status(), reason);
  count_received(s, s.frames);
  ControlReply reply{std::move(decoded).value(), {}};
  if (has_payload) reply.payload = internal::share_message(std::move(s.frames[1]));
  return reply;
}

// ---- control server ----

Result<ControlServer> ControlServer::bind(const Context& context, const std::string& endpoint,
                                          const ChannelOptions& options) {
  STRATA_ASSIGN_OR_RETURN(auto impl,
                          internal::make_socket(context_of(context), "control server",
                                                zmq::socket_type::router, true, endpoint, options));
  return ControlServer(std::move(impl));
}

Result<ControlRequest> ControlServer::recv(Deadline deadline) {
  SocketImpl& s = *impl_;
  size_t n_frames = 0;
  STRATA_RETURN_IF_ERROR(
      internal::recv_frames(s.socket, s.frames, 3, n_frames, deadline, what(s, "receive")));
  internal::tsan_acquire(&s.context->tsan_sync);
  // frames[0] is the routing id ROUTER prepends; it is always there.
  std::string peer(static_cast<const char*>(s.frames[0].data()), s.frames[0].size());
  Status refused;
  RejectReason reason{};
  ControlRequest request;
  if (n_frames < 2 || n_frames > 3) {
    refused =
        corrupt("control message of " + std::to_string(n_frames - 1) + " frames, expected 1 or 2");
    reason = RejectReason::kFrames;
  } else {
    const bool has_payload = n_frames == 3;
    auto decoded = decode_control(bytes_of(s.frames[1]), has_payload,
                                  has_payload ? s.frames[2].size() : 0, &reason);
    if (decoded.ok()) {
      count_received(s, s.frames);
      request.peer = std::move(peer);
      request.message = std::move(decoded).value();
      if (has_payload) request.payload = internal::share_message(std::move(s.frames[2]));
      return request;
    }
    refused = decoded.status();
  }
  // Tell the sender why; best effort, never waiting (the peer may be gone or flooding us).
  const ErrorMessage error{refused.code(), refused.message().substr(0, kMaxStringBytes)};
  if (reply(peer, error, Deadline::at_ns(0)).ok()) {
    s.counters.reject_replies.fetch_add(1, std::memory_order_relaxed);
  }
  return reject<ControlRequest>(s, refused, reason);
}

Status ControlServer::reply(const std::string& peer, const ControlMessage& message,
                            Deadline deadline, SharedBytes payload) {
  SocketImpl& s = *impl_;
  const bool payload_frame = !payload.empty() || payload_rule(message) == PayloadRule::kRequired;
  STRATA_RETURN_IF_ERROR(check_control_message(message, payload_frame, payload.size_bytes())
                             .with_context(what(s, "reply")));
  internal::build_control(s.fbb, message, kProtocolVersion);
  Status st = send_message(s, &peer, header_frame(s.fbb), payload_frame, payload, deadline,
                           /*unavailable_on_timeout=*/false,
                           what(s, "reply ") + control_message_name(message));
  if (!st.ok() && st.code() == StatusCode::kUnavailable) {
    return unavailable(what(s, "reply") + ": the peer is gone (" + st.message() + ")");
  }
  return st;
}

// ---- data ----

Result<DataSender> DataSender::connect(const Context& context, const std::string& endpoint,
                                       const ChannelOptions& options) {
  STRATA_ASSIGN_OR_RETURN(
      auto impl, internal::make_socket(context_of(context), "data sender", zmq::socket_type::push,
                                       false, endpoint, options));
  return DataSender(std::move(impl));
}

Status DataSender::send(const DataHeader& header, SharedBytes payload, Deadline deadline) {
  SocketImpl& s = *impl_;
  STRATA_RETURN_IF_ERROR(
      check_data_header(header, payload.size_bytes()).with_context(what(s, "send")));
  internal::build_data(s.fbb, header, kProtocolVersion);
  return send_message(s, nullptr, header_frame(s.fbb), /*payload_frame=*/true, payload, deadline,
                      /*unavailable_on_timeout=*/true, what(s, "send data"));
}

Result<DataReceiver> DataReceiver::bind(const Context& context, const std::string& endpoint,
                                        const ChannelOptions& options) {
  if (options.link.enabled()) {
    return invalid_argument("data receiver " + endpoint +
                            ": link shaping applies to the sending side");
  }
  STRATA_ASSIGN_OR_RETURN(
      auto impl, internal::make_socket(context_of(context), "data receiver", zmq::socket_type::pull,
                                       true, endpoint, options));
  return DataReceiver(std::move(impl));
}

Result<DataMessage> DataReceiver::recv(Deadline deadline) {
  SocketImpl& s = *impl_;
  size_t n_frames = 0;
  STRATA_RETURN_IF_ERROR(
      internal::recv_frames(s.socket, s.frames, 2, n_frames, deadline, what(s, "receive")));
  internal::tsan_acquire(&s.context->tsan_sync);
  if (n_frames != 2) {
    return reject<DataMessage>(
        s, corrupt("data message of " + std::to_string(n_frames) + " frames, expected 2"),
        RejectReason::kFrames);
  }
  RejectReason reason{};
  auto decoded = decode_data(bytes_of(s.frames[0]), s.frames[1].size(), &reason);
  if (!decoded.ok()) return reject<DataMessage>(s, decoded.status(), reason);
  count_received(s, s.frames);
  return DataMessage{std::move(decoded).value(), internal::share_message(std::move(s.frames[1]))};
}

}  // namespace strata::transport
