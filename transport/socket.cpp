#include "socket.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "shaper.h"
#include "strata/base/io.h"

#ifdef STRATA_TSAN
// libzmq (and libsodium, its CURVE crypto) is not built with ThreadSanitizer, so TSan cannot see
// how its lock-free queues order memory between our threads and its I/O thread: every frame handed
// over looks like a race. called_from_lib makes TSan skip the interceptors libzmq calls (malloc,
// memcpy, send, recv), which also keeps it from symbolizing thousands of reports (that alone slowed
// a shaped link tenfold); race: sets aside the few reports left with libzmq on a stack. Races
// between strata's own threads (a channel's owner and its shaper thread, counters) are still
// reported. Linked into every binary that uses channels, so the agent's tests get it too.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libzmq.so\n"
         "called_from_lib:libsodium.so\n"  // CurveZMQ decrypts frames in place through it
         "race:libzmq.so\n"
         "race:libsodium.so\n";
}
#endif

namespace strata::transport::internal {
namespace {

Status set_key(zmq::socket_t& socket, int option, const std::string& z85, const char* which) {
  if (z85.size() != 40 || zmq_setsockopt(socket.handle(), option, z85.data(), z85.size()) != 0) {
    return invalid_argument(std::string("CURVE ") + which + " is not a 40-character Z85 key");
  }
  return {};
}

Status set_curve(zmq::socket_t& socket, bool server, const CurveOptions& curve) {
  if (zmq_has("curve") == 0) return unsupported("this libzmq was built without CURVE");
  if (server) {
    const int on = 1;
    if (zmq_setsockopt(socket.handle(), ZMQ_CURVE_SERVER, &on, sizeof on) != 0) {
      return zmq_status(zmq_errno(), "CURVE server");
    }
    return set_key(socket, ZMQ_CURVE_SECRETKEY, curve.keys.secret_z85, "secret key");
  }
  STRATA_RETURN_IF_ERROR(
      set_key(socket, ZMQ_CURVE_SERVERKEY, curve.server_public_z85, "server public key"));
  STRATA_RETURN_IF_ERROR(set_key(socket, ZMQ_CURVE_PUBLICKEY, curve.keys.public_z85, "public key"));
  return set_key(socket, ZMQ_CURVE_SECRETKEY, curve.keys.secret_z85, "secret key");
}

void release_shared(void* /*data*/, void* hint) {
  tsan_acquire(hint);  // runs on ZeroMQ's I/O thread; the hint was made on the sender's
  delete static_cast<std::shared_ptr<const void>*>(hint);
}

}  // namespace

ChannelCounters AtomicCounters::snapshot() const {
  const auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  ChannelCounters c;
  c.sent_messages = get(sent_messages);
  c.sent_bytes = get(sent_bytes);
  c.received_messages = get(received_messages);
  c.received_bytes = get(received_bytes);
  c.reject_replies = get(reject_replies);
  c.shaper_dropped = get(shaper_dropped);
  const auto rejects = [&](RejectReason r) { return get(rejected[static_cast<size_t>(r)]); };
  c.rejected.frames = rejects(RejectReason::kFrames);
  c.rejected.header_size = rejects(RejectReason::kHeaderSize);
  c.rejected.verify = rejects(RejectReason::kVerify);
  c.rejected.version = rejects(RejectReason::kVersion);
  c.rejected.unknown_type = rejects(RejectReason::kUnknownType);
  c.rejected.unexpected_type = rejects(RejectReason::kUnexpectedType);
  c.rejected.fields = rejects(RejectReason::kFields);
  c.rejected.payload_size = rejects(RejectReason::kPayloadSize);
  return c;
}

SocketImpl::~SocketImpl() {
  // The shaper thread owns the TCP socket; stop it before this side of its pair closes.
  shaper.reset();
}

Status zmq_status(int err, const std::string& what) {
  const std::string msg = what + ": " + zmq_strerror(err);
  switch (err) {
    case EAGAIN: return deadline_exceeded(msg);
    case EINVAL:
    case EPROTONOSUPPORT:
    case ENOCOMPATPROTO: return invalid_argument(msg);
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case ENODEV:
    case EHOSTUNREACH:
    case ETERM:
    case ENOTSOCK: return unavailable(msg);
    case EMFILE:
    case ENOMEM: return resource_exhausted(msg);
    default: return io_error(msg);
  }
}

long poll_timeout_ms(Deadline deadline) {
  if (deadline.is_never()) return -1;
  const int64_t left_ns = deadline.at_ns() - now_ns();
  if (left_ns <= 0) return 0;
  return static_cast<long>((left_ns + 999'999) / 1'000'000);
}

Result<zmq::socket_t> open_socket(ContextImpl& context, zmq::socket_type type, bool bind,
                                  const std::string& endpoint, const ChannelOptions& options,
                                  std::string& resolved_endpoint) {
  const std::string what = std::string(bind ? "bind " : "connect ") + endpoint;
  try {
    zmq::socket_t socket(context.context, type);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    socket.set(zmq::sockopt::rcvhwm, options.recv_hwm);
    if (type == zmq::socket_type::dealer || type == zmq::socket_type::push) {
      // Queue nothing for a peer that is not connected: send() then reports an unreachable
      // agent when its deadline passes instead of buffering forever.
      socket.set(zmq::sockopt::immediate, 1);
    }
    if (type == zmq::socket_type::router) {
      // A reply to a vanished peer is an error (EHOSTUNREACH), not a silent drop.
      socket.set(zmq::sockopt::router_mandatory, 1);
    }
    if (options.curve.enabled()) {
      STRATA_RETURN_IF_ERROR(set_curve(socket, bind, options.curve).with_context(what));
    }
    if (bind) {
      socket.bind(endpoint);
      resolved_endpoint = socket.get(zmq::sockopt::last_endpoint);
    } else {
      socket.connect(endpoint);
      resolved_endpoint = endpoint;
    }
    return socket;
  } catch (const zmq::error_t& e) {
    return zmq_status(e.num(), what);
  }
}

Result<std::unique_ptr<SocketImpl>> make_socket(const std::shared_ptr<ContextImpl>& context,
                                                const char* kind, zmq::socket_type type, bool bind,
                                                const std::string& endpoint,
                                                const ChannelOptions& options) {
  STRATA_CHECK(context != nullptr);
  if (!std::isfinite(options.link.delay_ms) || !std::isfinite(options.link.rate_mbit_per_s) ||
      options.link.delay_ms < 0 || options.link.rate_mbit_per_s < 0) {
    return invalid_argument(std::string(kind) + " " + endpoint +
                            ": link delay and rate must be finite and >= 0");
  }
  auto impl = std::make_unique<SocketImpl>();
  impl->context = context;
  impl->kind = kind;
  std::string resolved;
  STRATA_ASSIGN_OR_RETURN(zmq::socket_t socket,
                          open_socket(*context, type, bind, endpoint, options, resolved));
  impl->endpoint = resolved;
  if (!options.link.enabled()) {
    impl->socket = std::move(socket);
    return impl;
  }
  STRATA_ASSIGN_OR_RETURN(impl->shaper, Shaper::start(*context, std::move(socket), options.link,
                                                      &impl->counters, impl->socket));
  return impl;
}

Result<zmq::message_t> share_into_message(const SharedBytes& bytes) {
  if (bytes.empty()) return zmq::message_t();
  auto* hint = new std::shared_ptr<const void>(bytes.owner());
  tsan_release(hint);
  zmq::message_t msg;
  // ZeroMQ never writes to the buffer; it only needs a non-const pointer for its C API.
  if (zmq_msg_init_data(msg.handle(), const_cast<uint8_t*>(bytes.data()), bytes.size_bytes(),
                        release_shared, hint) != 0) {
    const int err = zmq_errno();
    delete hint;
    return zmq_status(err, "payload of " + std::to_string(bytes.size_bytes()) + " bytes");
  }
  return msg;
}

SharedBytes share_message(zmq::message_t&& frame) {
  if (frame.size() == 0) return {};
  // Small frames live inside the zmq_msg_t itself, so take the address after the move.
  auto owner = std::make_shared<zmq::message_t>(std::move(frame));
  const void* data = owner->data();
  const size_t size = owner->size();
  return SharedBytes(std::move(owner), data, size);
}

Status send_frames(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, Deadline deadline,
                   bool unavailable_on_timeout, const std::string& what) {
  STRATA_CHECK(!frames.empty());
  bool polled_writable = false;
  for (size_t i = 0; i < frames.size(); ++i) {
    const bool more = i + 1 < frames.size();
    for (;;) {
      // Only the first frame can find the queue full; once it is in, the rest go in at once.
      const int flags = (more ? ZMQ_SNDMORE : 0) | (i == 0 ? ZMQ_DONTWAIT : 0);
      if (zmq_msg_send(frames[i].handle(), socket.handle(), flags) >= 0) break;
      const int err = zmq_errno();
      if (err == EINTR) continue;
      if (err != EAGAIN) return zmq_status(err, what);
      const long timeout = poll_timeout_ms(deadline);
      if (timeout == 0) {
        if (unavailable_on_timeout) {
          return unavailable(what +
                             ": no peer took the message before the deadline (is it "
                             "running and reachable?)");
        }
        return deadline_exceeded(what + ": the peer's queue stayed full past the deadline");
      }
      if (polled_writable) {
        // ROUTER reports POLLOUT even when the one peer we address is full; back off a little
        // instead of spinning until the deadline.
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      zmq_pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
      const int n = zmq_poll(&item, 1, timeout);
      if (n < 0 && zmq_errno() != EINTR) return zmq_status(zmq_errno(), what);
      polled_writable = n > 0;
    }
  }
  return {};
}

Status recv_frames(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, size_t max_frames,
                   size_t& n_frames, Deadline deadline, const std::string& what) {
  frames.clear();
  n_frames = 0;
  zmq::message_t frame;
  for (;;) {
    if (zmq_msg_recv(frame.handle(), socket.handle(), ZMQ_DONTWAIT) >= 0) break;
    const int err = zmq_errno();
    if (err == EINTR) continue;
    if (err != EAGAIN) return zmq_status(err, what);
    const long timeout = poll_timeout_ms(deadline);
    if (timeout == 0) return deadline_exceeded(what + ": nothing arrived before the deadline");
    zmq_pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout) < 0 && zmq_errno() != EINTR) {
      return zmq_status(zmq_errno(), what);
    }
  }
  // The rest of a multipart message is already here: ZeroMQ delivers it whole or not at all.
  for (;;) {
    ++n_frames;
    const bool more = frame.more();
    if (frames.size() < max_frames) frames.push_back(std::move(frame));
    if (!more) return {};
    frame = zmq::message_t();
    while (zmq_msg_recv(frame.handle(), socket.handle(), 0) < 0) {
      if (zmq_errno() != EINTR) return zmq_status(zmq_errno(), what);
    }
  }
}

}  // namespace strata::transport::internal
