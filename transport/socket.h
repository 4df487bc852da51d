// Internals shared by the channels: the context and socket state, ZeroMQ errors as Status,
// multipart send/receive with deadlines. The only place besides shaper.h that sees zmq.hpp.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>

#include "strata/transport/bytes.h"
#include "strata/transport/channel.h"

#if defined(__SANITIZE_THREAD__)
#define STRATA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRATA_TSAN 1
#endif
#endif

#ifdef STRATA_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace strata::transport::internal {

// ThreadSanitizer cannot see ZeroMQ's own ordering (libzmq is not instrumented). These tell it
// what a message queue promises: what a thread wrote before a send happens before what the
// receiver reads after the receive. No-ops outside TSan builds.
inline void tsan_release([[maybe_unused]] void* sync) {
#ifdef STRATA_TSAN
  __tsan_release(sync);
#endif
}
inline void tsan_acquire([[maybe_unused]] void* sync) {
#ifdef STRATA_TSAN
  __tsan_acquire(sync);
#endif
}

struct ContextImpl {
  explicit ContextImpl(int io_threads) : context(io_threads) {}
  zmq::context_t context;
  std::atomic<uint64_t> next_inproc_id{0};
  char tsan_sync = 0;  // only its address is used: the sync object for tsan_release/acquire
};

class Shaper;

// Counters written by the owning thread (and a shaper thread), read from any.
struct AtomicCounters {
  std::atomic<uint64_t> sent_messages{0}, sent_bytes{0}, received_messages{0}, received_bytes{0},
      reject_replies{0}, shaper_dropped{0};
  std::atomic<uint64_t> rejected[8] = {};
  void reject(RejectReason reason) {
    rejected[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
  ChannelCounters snapshot() const;
};

struct SocketImpl {
  ~SocketImpl();

  std::shared_ptr<ContextImpl> context;  // first: outlives the sockets below
  std::string kind;                      // "control client", ... for messages
  std::string endpoint;
  // With a shaper, `socket` is this side of an inproc pair and the shaper thread owns the
  // TCP socket; without one, `socket` is the TCP socket itself.
  zmq::socket_t socket;
  std::unique_ptr<Shaper> shaper;
  AtomicCounters counters;
  flatbuffers::FlatBufferBuilder fbb{1024};
  std::vector<zmq::message_t> frames;  // receive scratch
};

// errno of a failed ZeroMQ call as a Status naming `what`.
Status zmq_status(int err, const std::string& what);

// Creates a socket of `type` with linger 0 and the HWMs of `options`, then binds or connects
// it to `endpoint`. Returns the endpoint as ZeroMQ reports it (the real port after ":*").
Result<zmq::socket_t> open_socket(ContextImpl& context, zmq::socket_type type, bool bind,
                                  const std::string& endpoint, const ChannelOptions& options,
                                  std::string& resolved_endpoint);

// Builds a SocketImpl around a freshly opened socket, starting a shaper when options.link
// asks for one.
Result<std::unique_ptr<SocketImpl>> make_socket(const std::shared_ptr<ContextImpl>& context,
                                                const char* kind, zmq::socket_type type, bool bind,
                                                const std::string& endpoint,
                                                const ChannelOptions& options);

// A ZeroMQ message that shares `bytes` (no copy) and releases its reference once sent.
Result<zmq::message_t> share_into_message(const SharedBytes& bytes);
// A SharedBytes view of a received frame; the frame moves into the owner.
SharedBytes share_message(zmq::message_t&& frame);

// Sends `frames` as one multipart message. Waits for the first frame to be accepted until
// `deadline` (later frames of a multipart are then accepted at once). Returns ok,
// kDeadlineExceeded / kUnavailable (no peer), or the ZeroMQ error as a Status.
Status send_frames(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, Deadline deadline,
                   bool unavailable_on_timeout, const std::string& what);

// Receives one whole multipart message into `frames` (cleared first). Frames past `max_frames`
// are read and dropped, but counted in `n_frames`. Returns ok, kDeadlineExceeded, or the error.
Status recv_frames(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, size_t max_frames,
                   size_t& n_frames, Deadline deadline, const std::string& what);

// Milliseconds until `deadline` for zmq::poll: -1 for never, 0 when passed, else rounded up.
long poll_timeout_ms(Deadline deadline);

}  // namespace strata::transport::internal
