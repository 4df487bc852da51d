#include "shaper.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <vector>

#include "strata/base/io.h"

namespace strata::transport::internal {
namespace {

struct Pending {
  std::vector<zmq::message_t> frames;
  int64_t due_ns = 0;
};

// Receives one multipart message without waiting; false when none is there (or on error).
bool try_recv_all(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  frames.clear();
  zmq::message_t frame;
  if (zmq_msg_recv(frame.handle(), socket.handle(), ZMQ_DONTWAIT) < 0) return false;
  for (;;) {
    const bool more = frame.more();
    frames.push_back(std::move(frame));
    if (!more) return true;
    frame = zmq::message_t();
    while (zmq_msg_recv(frame.handle(), socket.handle(), 0) < 0) {
      if (zmq_errno() != EINTR) return !frames.empty();
    }
  }
}

enum class SendResult { kSent, kWouldBlock, kFailed };

SendResult try_send_all(zmq::socket_t& socket, std::vector<zmq::message_t>& frames, size_t first) {
  for (size_t i = first; i < frames.size(); ++i) {
    const bool more = i + 1 < frames.size();
    const int flags = (more ? ZMQ_SNDMORE : 0) | (i == first ? ZMQ_DONTWAIT : 0);
    while (zmq_msg_send(frames[i].handle(), socket.handle(), flags) < 0) {
      const int err = zmq_errno();
      if (err == EINTR) continue;
      if (err == EAGAIN && i == first) return SendResult::kWouldBlock;
      return SendResult::kFailed;
    }
  }
  return SendResult::kSent;
}

Result<zmq::socket_t> pair_socket(ContextImpl& context, const std::string& endpoint, bool bind) {
  try {
    zmq::socket_t socket(context.context, zmq::socket_type::pair);
    socket.set(zmq::sockopt::linger, 0);
    // Unbounded: back pressure belongs to the emulated link and the TCP socket behind it.
    socket.set(zmq::sockopt::sndhwm, 0);
    socket.set(zmq::sockopt::rcvhwm, 0);
    if (bind)
      socket.bind(endpoint);
    else
      socket.connect(endpoint);
    return socket;
  } catch (const zmq::error_t& e) {
    return zmq_status(e.num(), "shaper pair " + endpoint);
  }
}

// The emulated wire's last stretch is waited for without polling: the kernel's default timer
// slack (50 us) plus a VM's wake-up made a 1 ms wait here end 70-90 us late, where a 1 us slack
// ends it about 20 us late. What is left is spun in the loop (zmq_poll without waiting).
constexpr int64_t kSpinNs = 30'000;

// Waits until `deadline_ns` or until one of `sockets` may have input, whichever is first.
// ZMQ_FD only signals a change of state, so input already queued (ZMQ_EVENTS) returns at once.
// Unlike zmq_poll (whole milliseconds) this waits to the microsecond, and unlike a sleep it
// never leaves received traffic waiting behind an outgoing message's delay.
void wait_input_until(std::initializer_list<zmq::socket_t*> sockets, int64_t deadline_ns) {
  pollfd fds[4];
  nfds_t n = 0;
  for (zmq::socket_t* s : sockets) {
    if ((s->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) return;
    STRATA_CHECK(n < std::size(fds));
    fds[n++] = {static_cast<int>(s->get(zmq::sockopt::fd)), POLLIN, 0};
  }
  const int64_t left_ns = deadline_ns - now_ns();
  if (left_ns <= 0) return;
  const timespec ts{static_cast<time_t>(left_ns / 1'000'000'000),
                    static_cast<long>(left_ns % 1'000'000'000)};
  ppoll(fds, n, &ts, nullptr);  // EINTR or an error: the caller's loop looks again
}

}  // namespace

Result<std::unique_ptr<Shaper>> Shaper::start(ContextImpl& context, zmq::socket_t tcp,
                                              LinkShape link, AtomicCounters* counters,
                                              zmq::socket_t& user_side) {
  const uint64_t id = context.next_inproc_id.fetch_add(1);
  const std::string inner_ep = "inproc://strata-shaper-" + std::to_string(id);
  const std::string stop_ep = inner_ep + "-stop";
  STRATA_ASSIGN_OR_RETURN(zmq::socket_t inner, pair_socket(context, inner_ep, true));
  STRATA_ASSIGN_OR_RETURN(zmq::socket_t stop_rx, pair_socket(context, stop_ep, true));
  STRATA_ASSIGN_OR_RETURN(zmq::socket_t user, pair_socket(context, inner_ep, false));
  STRATA_ASSIGN_OR_RETURN(zmq::socket_t stop_tx, pair_socket(context, stop_ep, false));
  user_side = std::move(user);
  return std::unique_ptr<Shaper>(new Shaper(std::move(tcp), std::move(inner), std::move(stop_rx),
                                            std::move(stop_tx), link, counters));
}

Shaper::Shaper(zmq::socket_t tcp, zmq::socket_t inner, zmq::socket_t stop_rx, zmq::socket_t stop_tx,
               LinkShape link, AtomicCounters* counters)
    : tcp_(std::move(tcp)),
      inner_(std::move(inner)),
      stop_rx_(std::move(stop_rx)),
      stop_tx_(std::move(stop_tx)),
      link_(link),
      counters_(counters),
      thread_([this] { run(); }) {}

Shaper::~Shaper() {
  zmq::message_t stop;
  // An inproc PAIR with an unbounded queue takes this at once; if it somehow cannot, the
  // thread would never stop, which is a bug worth aborting on.
  STRATA_CHECK(zmq_msg_send(stop.handle(), stop_tx_.handle(), 0) >= 0);
  thread_.join();
}

zmq::message_t Shaper::stamp_frame() {
  const int64_t t = now_ns();
  return zmq::message_t(&t, sizeof t);
}

void Shaper::run() {
  // A byte takes 8 / (rate * 1e6) s = 8000 / rate ns on the emulated wire.
  const double ns_per_byte = link_.rate_mbit_per_s > 0 ? 8000.0 / link_.rate_mbit_per_s : 0.0;
  const auto delay_ns = static_cast<int64_t>(link_.delay_ms * 1e6);
  std::deque<Pending> queue;
  std::vector<zmq::message_t> frames;
  int64_t link_free_ns = 0;  // when the emulated wire finishes its current message
  request_prompt_wakeups();  // this thread only; advisory

  for (;;) {
    bool blocked = false;
    int64_t now = now_ns();
    while (!queue.empty() && queue.front().due_ns <= now) {
      // frames[0] is the timestamp; the message proper starts at 1.
      const SendResult r = try_send_all(tcp_, queue.front().frames, 1);
      if (r == SendResult::kWouldBlock) {
        blocked = true;
        break;
      }
      if (r == SendResult::kFailed) {
        counters_->shaper_dropped.fetch_add(1, std::memory_order_relaxed);
      }
      queue.pop_front();
    }

    long timeout_ms = -1;
    if (blocked) {
      timeout_ms = 50;  // wait for POLLOUT, but keep taking new messages meanwhile
    } else if (!queue.empty()) {
      const int64_t wait_ns = queue.front().due_ns - now;
      if (wait_ns < 2'000'000) {
        // zmq_poll counts in whole milliseconds: wait the short remainder to the microsecond,
        // waking for traffic either way (a reply coming in must not wait for this delay).
        if (wait_ns > kSpinNs) {
          wait_input_until({&stop_rx_, &inner_, &tcp_}, queue.front().due_ns - kSpinNs);
        }
        timeout_ms = 0;
      } else {
        timeout_ms = static_cast<long>(wait_ns / 1'000'000) - 1;
      }
    }

    zmq_pollitem_t items[3] = {
        {stop_rx_.handle(), 0, ZMQ_POLLIN, 0},
        {inner_.handle(), 0, ZMQ_POLLIN, 0},
        {tcp_.handle(), 0, static_cast<short>(ZMQ_POLLIN | (blocked ? ZMQ_POLLOUT : 0)), 0},
    };
    if (zmq_poll(items, 3, timeout_ms) < 0) {
      if (zmq_errno() == EINTR) continue;
      return;  // the context is going away
    }
    if ((items[0].revents & ZMQ_POLLIN) != 0) return;

    while (try_recv_all(inner_, frames)) {
      if (frames.size() < 2 || frames[0].size() != sizeof(int64_t)) {
        counters_->shaper_dropped.fetch_add(1, std::memory_order_relaxed);
        continue;  // not from our own send path; cannot happen unless a bug
      }
      int64_t sent_ns = 0;
      std::memcpy(&sent_ns, frames[0].data(), sizeof sent_ns);
      size_t bytes = 0;
      for (size_t i = 1; i < frames.size(); ++i) bytes += frames[i].size();
      const int64_t start_ns = std::max(sent_ns, link_free_ns);
      link_free_ns = start_ns + static_cast<int64_t>(static_cast<double>(bytes) * ns_per_byte);
      queue.push_back({std::move(frames), link_free_ns + delay_ns});
      frames = std::vector<zmq::message_t>();
    }
    while (try_recv_all(tcp_, frames)) {
      // Incoming traffic is shaped by its sender; hand it over as it came.
      try_send_all(inner_, frames, 0);
    }
  }
}

}  // namespace strata::transport::internal
