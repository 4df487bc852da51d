#include "strata/transport/link_probe.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata::transport {
namespace {

using testing::make_context;

TEST(LinkProbe, SpreadOfSamples) {
  const Spread s = spread_of({5, 1, 4, 2, 3});
  EXPECT_DOUBLE_EQ(s.median, 3);
  EXPECT_DOUBLE_EQ(s.p10, 1.4);
  EXPECT_DOUBLE_EQ(s.p90, 4.6);
  EXPECT_EQ(s.n, 5);
  EXPECT_EQ(spread_of({}).n, 0);
}

TEST(LinkProbe, AnswerCarriesTheAskedBytes) {
  const ProbeAnswer a = answer_ping(Ping{3, 77, 5000}, 12);
  EXPECT_EQ(a.pong.seq, 3u);
  EXPECT_EQ(a.pong.ping_sent_ns, 77);
  EXPECT_EQ(a.pong.received_bytes, 12u);
  EXPECT_EQ(a.payload.size_bytes(), 5000u);
  EXPECT_TRUE(answer_ping(Ping{}, 0).payload.empty());
}

TEST(LinkProbe, MeasuresALoopbackAgent) {
  Context ctx = make_context();
  testing::Responder agent(ctx, "loopback-agent");
  LinkProbeOptions options;
  options.n_pings = 20;
  options.n_bursts = 2;
  options.burst_messages = 4;
  options.burst_message_bytes = 256 << 10;
  auto probe = probe_link(ctx, agent.endpoint(), options);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  EXPECT_EQ(probe->peer_name, "loopback-agent");
  EXPECT_EQ(probe->local_name, "coordinator");
  EXPECT_EQ(probe->rtt_ms.n, 20);
  EXPECT_EQ(probe->mbit_per_s.n, 2);
  EXPECT_GT(probe->rtt_ms.median, 0);
  EXPECT_LE(probe->rtt_ms.p10, probe->rtt_ms.median);
  EXPECT_LE(probe->rtt_ms.median, probe->rtt_ms.p90);
  EXPECT_GT(probe->mbit_per_s.median, 0);
  EXPECT_EQ(probe->burst_bytes, 4u * (256 << 10));
}

TEST(LinkProbe, SeesAnEmulatedLink) {
  // An agent whose outgoing link is 20 ms and 50 Mbit/s: the probe must not see better.
  constexpr double kDelayMs = 20;
  constexpr double kRate = 50;
  Context ctx = make_context();
  ChannelOptions shaped;
  shaped.link = {kDelayMs, kRate};
  testing::Responder agent(ctx, "emulated", shaped);
  LinkProbeOptions options;
  options.n_pings = 5;
  options.n_bursts = 1;
  options.burst_messages = 4;
  options.burst_message_bytes = 128 << 10;  // 4 Mbit: 84 ms at 50 Mbit/s
  auto probe = probe_link(ctx, agent.endpoint(), options);
  ASSERT_TRUE(probe.ok()) << probe.status().to_string();
  EXPECT_GE(probe->rtt_ms.p10, 0.8 * kDelayMs);
  // The estimate subtracts one RTT from the burst time; allow it generous room above the
  // link rate, but not the gigabits of unshaped loopback.
  EXPECT_LE(probe->mbit_per_s.median, 2 * kRate);
}

TEST(LinkProbe, NobodyThereIsUnavailable) {
  Context ctx = make_context();
  std::string endpoint;
  {
    auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
    ASSERT_TRUE(rx.ok());
    endpoint = rx->endpoint();
  }
  LinkProbeOptions options;
  options.reply_timeout_ms = 200;
  auto probe = probe_link(ctx, endpoint, options);
  ASSERT_FALSE(probe.ok());
  EXPECT_EQ(probe.status().code(), StatusCode::kUnavailable) << probe.status().to_string();
  EXPECT_NE(probe.status().message().find(endpoint), std::string::npos);
}

TEST(LinkProbe, BadOptionsAreRefused) {
  Context ctx = make_context();
  LinkProbeOptions options;
  options.n_pings = 0;
  EXPECT_EQ(probe_link(ctx, "tcp://127.0.0.1:1", options).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::transport
