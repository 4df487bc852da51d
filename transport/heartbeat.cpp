#include "strata/transport/heartbeat.h"

namespace strata::transport {

HeartbeatSender::HeartbeatSender(double interval_ms)
    : interval_ns_(static_cast<int64_t>(interval_ms * 1e6)) {
  STRATA_CHECK_MSG(interval_ns_ > 0, "heartbeat interval must be positive");
}

std::optional<Heartbeat> HeartbeatSender::due(int64_t now_ns) {
  if (now_ns < next_due_ns_) return std::nullopt;
  next_due_ns_ = now_ns + interval_ns_;
  return Heartbeat{next_seq_++, now_ns};
}

HeartbeatTracker::HeartbeatTracker(double timeout_ms, int64_t now_ns)
    : timeout_ns_(static_cast<int64_t>(timeout_ms * 1e6)), last_heard_ns_(now_ns) {
  STRATA_CHECK_MSG(timeout_ns_ > 0, "heartbeat timeout must be positive");
}

void HeartbeatTracker::heard(int64_t now_ns) {
  if (now_ns > last_heard_ns_) last_heard_ns_ = now_ns;
}

bool HeartbeatTracker::lost(int64_t now_ns) {
  if (!lost_ && now_ns - last_heard_ns_ > timeout_ns_) lost_ = true;
  return lost_;
}

void HeartbeatTracker::reset(int64_t now_ns) {
  last_heard_ns_ = now_ns;
  lost_ = false;
}

double HeartbeatTracker::silence_ms(int64_t now_ns) const {
  return static_cast<double>(now_ns - last_heard_ns_) * 1e-6;
}

}  // namespace strata::transport
