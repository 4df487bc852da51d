#include "strata/transport/heartbeat.h"

#include <gtest/gtest.h>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::transport {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(Heartbeat, SenderIsDueEveryInterval) {
  HeartbeatSender s(100);
  auto first = s.due(5 * kMs);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->seq, 0u);
  EXPECT_EQ(first->sent_ns, 5 * kMs);
  EXPECT_FALSE(s.due(50 * kMs).has_value());
  EXPECT_EQ(s.next_due_ns(), 105 * kMs);
  auto second = s.due(105 * kMs);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->seq, 1u);
  // A late caller gets one heartbeat, not a backlog.
  ASSERT_TRUE(s.due(1000 * kMs).has_value());
  EXPECT_FALSE(s.due(1001 * kMs).has_value());
}

TEST(Heartbeat, TrackerDeclaresLossAfterTheDeadlineAndKeepsIt) {
  HeartbeatTracker t(300, 0);
  EXPECT_FALSE(t.lost(100 * kMs));
  t.heard(200 * kMs);
  EXPECT_FALSE(t.lost(450 * kMs));  // 250 ms of silence
  EXPECT_EQ(t.deadline_ns(), 500 * kMs);
  EXPECT_FALSE(t.lost(500 * kMs));
  EXPECT_TRUE(t.lost(501 * kMs));
  t.heard(502 * kMs);  // too late: the decision stands
  EXPECT_TRUE(t.lost(503 * kMs));
  t.reset(600 * kMs);
  EXPECT_FALSE(t.lost(700 * kMs));
  EXPECT_DOUBLE_EQ(t.silence_ms(700 * kMs), 100.0);
}

TEST(Heartbeat, TrackerIgnoresOutOfOrderTimes) {
  HeartbeatTracker t(100, 1000 * kMs);
  t.heard(900 * kMs);  // an older timestamp must not move the deadline back
  EXPECT_EQ(t.deadline_ns(), 1100 * kMs);
}

TEST(Heartbeat, PeerLossIsDetectedOverSockets) {
  // The coordinator sends heartbeats to an agent that echoes them, then the agent dies.
  Context ctx = testing::make_context();
  auto agent = std::make_unique<testing::Responder>(ctx);
  auto client = ControlClient::connect(ctx, agent->endpoint());
  ASSERT_TRUE(client.ok());

  constexpr double kIntervalMs = 20;
  constexpr double kTimeoutMs = 1500;  // generous: sanitizers and a shared 2-core machine
  HeartbeatSender sender(kIntervalMs);
  HeartbeatTracker tracker(kTimeoutMs, now_ns());
  const auto pump = [&](int64_t until_ns) {
    while (now_ns() < until_ns && !tracker.lost(now_ns())) {
      if (auto hb = sender.due(now_ns())) (void)client->send(*hb, Deadline::after_ms(100));
      auto r = client->recv(Deadline::at_ns(std::min(sender.next_due_ns(), until_ns)));
      if (r.ok() && std::holds_alternative<Heartbeat>(r->message)) tracker.heard(now_ns());
    }
  };

  pump(now_ns() + 300 * kMs);
  EXPECT_FALSE(tracker.lost(now_ns())) << "alive agent declared lost";
  EXPECT_GT(agent->handled(), 3u);

  agent.reset();  // the agent process dies
  const int64_t died = now_ns();
  pump(died + 20'000 * kMs);
  EXPECT_TRUE(tracker.lost(now_ns())) << "dead agent never declared lost";
  EXPECT_GE(static_cast<double>(now_ns() - died) * 1e-6, 0.8 * kTimeoutMs);
}

}  // namespace
}  // namespace strata::transport
