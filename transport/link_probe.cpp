#include "strata/transport/link_probe.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include "strata/base/io.h"

namespace strata::transport {
namespace {

// Zeros shared by every probe answer; replaced (never written) when a larger one is asked for.
SharedBytes zeros(uint64_t bytes) {
  static std::mutex mu;
  static std::shared_ptr<const std::vector<uint8_t>> buffer;
  if (bytes == 0) return {};
  std::lock_guard<std::mutex> lock(mu);
  if (buffer == nullptr || buffer->size() < bytes) {
    buffer = std::make_shared<const std::vector<uint8_t>>(bytes, uint8_t{0});
  }
  return SharedBytes(buffer, buffer->data(), bytes);
}

double percentile(const std::vector<double>& sorted, double q) {
  const double rank = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

// Receives until a message of type T arrives (skipping others, e.g. heartbeats). An
// ErrorMessage from the agent ends the wait with its code and text.
template <class T>
Result<ControlReply> recv_until(ControlClient& client, Deadline deadline, const char* waiting_for) {
  for (;;) {
    auto reply = client.recv(deadline);
    if (!reply.ok()) {
      if (reply.status().code() == StatusCode::kDeadlineExceeded) {
        return unavailable(client.endpoint() + ": no " + waiting_for +
                           " before the deadline (is an agent listening there?)");
      }
      return reply.status();
    }
    if (std::holds_alternative<T>(reply->message)) return reply;
    if (const auto* e = std::get_if<ErrorMessage>(&reply->message)) {
      return Status(e->code, client.endpoint() + " refused the probe: " + e->message);
    }
  }
}

}  // namespace

Spread spread_of(std::vector<double> samples) {
  Spread s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.median = percentile(samples, 0.5);
  s.p10 = percentile(samples, 0.1);
  s.p90 = percentile(samples, 0.9);
  s.n = static_cast<int>(samples.size());
  return s;
}

ProbeAnswer answer_ping(const Ping& ping, uint64_t received_bytes) {
  return {Pong{ping.seq, ping.sent_ns, received_bytes}, zeros(ping.reply_bytes)};
}

Result<LinkProbe> probe_link(const Context& context, const std::string& endpoint,
                             const LinkProbeOptions& options) {
  if (options.n_pings < 1 || options.n_bursts < 0 || options.burst_messages < 1 ||
      options.burst_message_bytes > kMaxProbeReplyBytes || options.reply_timeout_ms <= 0) {
    return invalid_argument("link probe of " + endpoint + ": options out of range");
  }
  STRATA_ASSIGN_OR_RETURN(ControlClient client, ControlClient::connect(context, endpoint));
  const double timeout_ms = options.reply_timeout_ms;

  Hello hello;
  hello.agent_name = options.local_name;
  STRATA_RETURN_IF_ERROR(client.send(hello, Deadline::after_ms(timeout_ms)));
  STRATA_ASSIGN_OR_RETURN(ControlReply hello_reply,
                          recv_until<Hello>(client, Deadline::after_ms(timeout_ms), "hello"));

  LinkProbe probe;
  probe.endpoint = client.endpoint();
  probe.local_name = options.local_name;
  probe.peer_name = std::get<Hello>(hello_reply.message).agent_name;

  uint64_t seq = 0;
  std::vector<double> rtts_ms;
  for (int i = 0; i < options.n_pings + 1; ++i) {  // the first one warms the path up
    const int64_t t0 = now_ns();
    STRATA_RETURN_IF_ERROR(client.send(Ping{seq, t0, 0}, Deadline::after_ms(timeout_ms)));
    for (;;) {
      STRATA_ASSIGN_OR_RETURN(ControlReply r,
                              recv_until<Pong>(client, Deadline::after_ms(timeout_ms), "pong"));
      if (std::get<Pong>(r.message).seq == seq) break;  // a stale answer otherwise
    }
    if (i > 0) rtts_ms.push_back(static_cast<double>(now_ns() - t0) * 1e-6);
    ++seq;
  }
  probe.rtt_ms = spread_of(rtts_ms);

  std::vector<double> rates;
  const auto burst_bytes =
      static_cast<uint64_t>(options.burst_messages) * options.burst_message_bytes;
  probe.burst_bytes = burst_bytes;
  for (int b = 0; b < options.n_bursts; ++b) {
    const uint64_t first_seq = seq;
    const int64_t t0 = now_ns();
    for (int i = 0; i < options.burst_messages; ++i) {
      STRATA_RETURN_IF_ERROR(client.send(Ping{seq++, now_ns(), options.burst_message_bytes},
                                         Deadline::after_ms(timeout_ms)));
    }
    uint64_t got_bytes = 0;
    for (int answered = 0; answered < options.burst_messages;) {
      STRATA_ASSIGN_OR_RETURN(ControlReply r,
                              recv_until<Pong>(client, Deadline::after_ms(timeout_ms), "pong"));
      if (std::get<Pong>(r.message).seq < first_seq) continue;
      got_bytes += r.payload.size_bytes();
      ++answered;
    }
    const double elapsed_s = static_cast<double>(now_ns() - t0) * 1e-9;
    if (got_bytes != burst_bytes) {
      return corrupt(endpoint + ": probe answers carried " + std::to_string(got_bytes) +
                     " bytes, asked for " + std::to_string(burst_bytes));
    }
    const double transfer_s = std::max(elapsed_s - probe.rtt_ms.p10 * 1e-3, elapsed_s * 0.5);
    rates.push_back(static_cast<double>(burst_bytes) * 8.0 / transfer_s / 1e6);
  }
  probe.mbit_per_s = spread_of(rates);
  return probe;
}

}  // namespace strata::transport
