// Link emulation on the sending side. The kernel here has no netem, so a channel with a
// LinkShape routes its outgoing messages through a shaper thread that holds each one until the
// emulated link would have delivered it:
//
//   user thread --inproc PAIR--> shaper thread (FIFO, timestamps) --TCP socket--> peer
//
// The shaper thread owns the TCP socket; received messages are forwarded to the user's side of
// the pair untouched, so the user thread keeps a single socket to send and receive on.
// ZeroMQ passes messages over inproc by reference: payloads are never copied.
#pragma once

#include <memory>
#include <thread>

#include <zmq.hpp>

#include "socket.h"

namespace strata::transport::internal {

class Shaper {
 public:
  // Takes over `tcp` (already bound or connected), starts the thread, and sets `user_side` to
  // the socket the owning thread sends and receives on. Every outgoing message on user_side
  // must start with a frame holding the int64 now_ns() of the send (stamp_frame()), so that a
  // late wake-up of the shaper thread never stretches the emulated delay.
  static Result<std::unique_ptr<Shaper>> start(ContextImpl& context, zmq::socket_t tcp,
                                               LinkShape link, AtomicCounters* counters,
                                               zmq::socket_t& user_side);
  // Stops the thread; messages not yet delivered are dropped (linger 0 semantics).
  ~Shaper();

  Shaper(const Shaper&) = delete;
  Shaper& operator=(const Shaper&) = delete;

  static zmq::message_t stamp_frame();

 private:
  Shaper(zmq::socket_t tcp, zmq::socket_t inner, zmq::socket_t stop_rx, zmq::socket_t stop_tx,
         LinkShape link, AtomicCounters* counters);
  void run();

  zmq::socket_t tcp_;      // shaper thread
  zmq::socket_t inner_;    // shaper thread
  zmq::socket_t stop_rx_;  // shaper thread
  zmq::socket_t stop_tx_;  // owning thread (destructor)
  LinkShape link_;
  AtomicCounters* counters_;
  std::thread thread_;
};

}  // namespace strata::transport::internal
