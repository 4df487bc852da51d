// Heartbeats: a sender that says when the next one is due, and a tracker that declares a peer
// lost once it has been silent past a deadline. Pure logic over a clock the caller passes in
// (strata::now_ns in production, made-up times in tests); the caller sends and receives the
// Heartbeat messages on its own channels. Thread-safety: plain objects, one thread at a time.
#pragma once

#include <cstdint>
#include <optional>

#include "strata/transport/messages.h"

namespace strata::transport {

class HeartbeatSender {
 public:
  // One heartbeat every `interval_ms` (> 0), the first due at once.
  explicit HeartbeatSender(double interval_ms);

  // Returns the heartbeat to send when one is due at `now_ns` (numbered 0, 1, ...; stamped
  // with now_ns), else nothing. A late call sends one, not a backlog.
  std::optional<Heartbeat> due(int64_t now_ns);
  // When the next heartbeat is due, for the caller's wait deadline.
  int64_t next_due_ns() const { return next_due_ns_; }

 private:
  int64_t interval_ns_;
  int64_t next_due_ns_ = INT64_MIN;
  uint64_t next_seq_ = 0;
};

class HeartbeatTracker {
 public:
  // A peer heard from at `now_ns` (the start counts as hearing it), lost when silent for more
  // than `timeout_ms` (> 0).
  HeartbeatTracker(double timeout_ms, int64_t now_ns);

  // Any message from the peer counts as a sign of life. Does not revive a lost peer.
  void heard(int64_t now_ns);
  // Whether the peer is lost at `now_ns`. Once lost, it stays lost until reset(): a late
  // heartbeat must not undo a decision the caller may already have acted on (re-planning).
  bool lost(int64_t now_ns);
  // Starts over as if the peer had just been heard (a new session with it).
  void reset(int64_t now_ns);
  // When the peer will be declared lost unless heard from before.
  int64_t deadline_ns() const { return last_heard_ns_ + timeout_ns_; }
  double silence_ms(int64_t now_ns) const;

 private:
  int64_t timeout_ns_;
  int64_t last_heard_ns_;
  bool lost_ = false;
};

}  // namespace strata::transport
