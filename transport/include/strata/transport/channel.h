// ZeroMQ channels carrying strata's messages, as RAII objects that speak Status, never
// exceptions. docs/WIRE.md describes the frames, the socket types and why.
//
//   control: ControlClient (coordinator, DEALER, connects) <-> ControlServer (agent, ROUTER, binds)
//   data:    DataSender (upstream stage, PUSH, connects) -> DataReceiver (next stage, PULL, binds)
//
// Threads: a channel (its socket) belongs to one thread at a time. It may be moved to another
// thread before use, with the usual happens-before of handing over any object. counters() and
// endpoint() may be called from any thread. Closing a channel drops what it has not yet sent
// (linger 0), so a dead peer never blocks shutdown.
//
// Every receive checks frames and header (codec.h) before returning anything; a refused
// message bumps a counter and comes back as a Status, and the channel stays usable.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "strata/base/status.h"
#include "strata/transport/bytes.h"
#include "strata/transport/codec.h"
#include "strata/transport/curve.h"
#include "strata/transport/messages.h"

namespace strata::transport {

namespace internal {
struct ContextImpl;
struct SocketImpl;
}  // namespace internal

// A point in time on the steady clock (strata::now_ns) by which a wait gives up.
class Deadline {
 public:
  static Deadline never() { return Deadline(INT64_MAX); }
  static Deadline at_ns(int64_t at_ns) { return Deadline(at_ns); }
  // now + ms; a negative or zero ms means "do not wait".
  static Deadline after_ms(double ms);
  int64_t at_ns() const { return at_ns_; }
  bool is_never() const { return at_ns_ == INT64_MAX; }

 private:
  explicit Deadline(int64_t at_ns) : at_ns_(at_ns) {}
  int64_t at_ns_;
};

// The ZeroMQ context: its I/O threads serve every channel made from it. A cheap shared handle;
// channels keep it alive, so it may be dropped before them. Thread-safe.
class Context {
 public:
  // Returns a context with `io_threads` I/O threads, or kResourceExhausted when the OS refuses.
  static Result<Context> create(int io_threads = 1);

 private:
  friend class Channel;
  explicit Context(std::shared_ptr<internal::ContextImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<internal::ContextImpl> impl_;
};

// Outgoing link emulation (the sender's side of a slow link): each message leaves after
// waiting for the link to be free, then bytes * 8 / rate of serialization, then delay_ms.
// FIFO; payloads are not copied. Both zero = no shaping (the default, and the fast path).
struct LinkShape {
  double delay_ms = 0;         // one-way propagation delay
  double rate_mbit_per_s = 0;  // 0 = unlimited
  bool enabled() const { return delay_ms > 0 || rate_mbit_per_s > 0; }
};

// CurveZMQ on a channel: binding channels (ControlServer, DataReceiver) act as CURVE servers
// with `keys`; connecting ones (ControlClient, DataSender) as clients with their own `keys` and
// the server's public key. A peer without the right keys never connects: its sends end in
// kUnavailable at their deadline. Empty keys = plaintext (the default).
struct CurveOptions {
  CurveKeyPair keys;
  std::string server_public_z85;  // connecting channels only
  bool enabled() const { return !keys.secret_z85.empty(); }
};

struct ChannelOptions {
  CurveOptions curve;
  LinkShape link;       // only for channels that send (not DataReceiver)
  int send_hwm = 1000;  // messages queued per peer before send waits
  int recv_hwm = 1000;
};

// Counters of one channel (a snapshot). Bytes count header and payload frames.
struct ChannelCounters {
  uint64_t sent_messages = 0;
  uint64_t sent_bytes = 0;
  uint64_t received_messages = 0;  // accepted ones only
  uint64_t received_bytes = 0;
  uint64_t reject_replies = 0;  // Error replies a ControlServer sent for refused messages
  uint64_t shaper_dropped = 0;  // messages a shaped link could not deliver (peer gone)
  RejectCounters rejected;
};

// Base of the four channel kinds: owns the socket (and, with a LinkShape, the shaper thread).
class Channel {
 public:
  Channel(Channel&&) noexcept;
  Channel& operator=(Channel&&) noexcept;
  ~Channel();

  // The endpoint as bound or connected, with the real port after binding "tcp://host:*".
  const std::string& endpoint() const;
  ChannelCounters counters() const;

 protected:
  explicit Channel(std::unique_ptr<internal::SocketImpl> impl);
  static const std::shared_ptr<internal::ContextImpl>& context_of(const Context& context) {
    return context.impl_;
  }
  std::unique_ptr<internal::SocketImpl> impl_;

  friend Result<uint32_t> wait_readable(std::span<Channel* const> channels, Deadline deadline);
};

// Waits until at least one of `channels` has a message to receive. Returns a bit set (bit i for
// channels[i], at most 32), or kDeadlineExceeded, or kUnavailable when the context is gone.
// Call from the thread that owns all of the channels.
Result<uint32_t> wait_readable(std::span<Channel* const> channels, Deadline deadline);

struct ControlReply {
  ControlMessage message;
  SharedBytes payload;
};

struct ControlRequest {
  std::string peer;  // the sender's routing id: pass it to ControlServer::reply
  ControlMessage message;
  SharedBytes payload;
};

struct DataMessage {
  DataHeader header;
  SharedBytes payload;  // points into the received message; no copy was made
};

// Coordinator side of a control link to one agent.
class ControlClient : public Channel {
 public:
  // Connects to `endpoint` ("tcp://host:port"). The TCP connection is made in the background
  // and retried; an agent that is not there shows up as kUnavailable from send() once its
  // deadline passes. Returns kInvalidArgument for a malformed endpoint.
  static Result<ControlClient> connect(const Context& context, const std::string& endpoint,
                                       const ChannelOptions& options = {});

  // Sends `message` (with `payload` as its payload frame when given; the bytes are not copied
  // and are held until sent). Returns kInvalidArgument when the message fails its own bounds,
  // kUnavailable when no connection to the agent exists by `deadline`.
  Status send(const ControlMessage& message, Deadline deadline, SharedBytes payload = {});
  // Returns the next accepted message, kDeadlineExceeded, or the Status of a refused one.
  Result<ControlReply> recv(Deadline deadline);

 private:
  using Channel::Channel;
};

// Agent side: one ROUTER that serves any number of coordinators and probes.
class ControlServer : public Channel {
 public:
  // Binds `endpoint` ("tcp://127.0.0.1:*" picks a free port; endpoint() tells which).
  // Returns kUnavailable when the address is taken, kInvalidArgument when malformed.
  static Result<ControlServer> bind(const Context& context, const std::string& endpoint,
                                    const ChannelOptions& options = {});

  // Returns the next accepted message with its sender, kDeadlineExceeded, or the Status of a
  // refused one. A refused message from an identifiable peer is answered with an ErrorMessage
  // carrying the same code and text (a version mismatch, a bad header, ...), so the sender
  // learns why; the reply is best-effort and never blocks.
  Result<ControlRequest> recv(Deadline deadline);
  // Sends `message` to `peer`. Returns kUnavailable when the peer is gone, kDeadlineExceeded
  // when its queue stays full past `deadline`, kInvalidArgument for an out-of-bounds message.
  Status reply(const std::string& peer, const ControlMessage& message, Deadline deadline,
               SharedBytes payload = {});

 private:
  using Channel::Channel;
};

// Upstream end of an activation link.
class DataSender : public Channel {
 public:
  // Connects to a DataReceiver's endpoint; as ControlClient::connect.
  static Result<DataSender> connect(const Context& context, const std::string& endpoint,
                                    const ChannelOptions& options = {});
  // Sends header + payload (the payload is not copied). Returns kInvalidArgument when the
  // header fails check_data_header for this payload, kUnavailable when no receiver is
  // connected by `deadline`, kDeadlineExceeded when the receiver's queue stays full.
  Status send(const DataHeader& header, SharedBytes payload, Deadline deadline);

 private:
  using Channel::Channel;
};

// Downstream end: binds, and takes messages from any number of senders (fair-queued).
class DataReceiver : public Channel {
 public:
  // As ControlServer::bind. options.link must be off (shaping is the sender's side):
  // kInvalidArgument otherwise.
  static Result<DataReceiver> bind(const Context& context, const std::string& endpoint,
                                   const ChannelOptions& options = {});
  // Returns the next accepted message, kDeadlineExceeded, or the Status of a refused one.
  Result<DataMessage> recv(Deadline deadline);

 private:
  using Channel::Channel;
};

}  // namespace strata::transport
