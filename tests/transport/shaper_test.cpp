// Link emulation: order is kept and messages are not delivered before the emulated link could
// have delivered them. Lower bounds only, with slack (80%): a loaded machine may be slower,
// never faster.
#include <gtest/gtest.h>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::transport {
namespace {

using testing::make_context;
using testing::soon;

constexpr double kSlack = 0.8;

struct Pipe {
  Context ctx = make_context();
  DataReceiver rx;
  DataSender tx;
};

Pipe shaped_pipe(LinkShape link) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  EXPECT_TRUE(rx.ok()) << rx.status().to_string();
  ChannelOptions options;
  options.link = link;
  auto tx = DataSender::connect(ctx, rx->endpoint(), options);
  EXPECT_TRUE(tx.ok()) << tx.status().to_string();
  return {ctx, std::move(rx).value(), std::move(tx).value()};
}

DataHeader step(uint64_t i, int64_t n_floats) {
  DataHeader h;
  h.step_id = i;
  if (n_floats > 0) {
    h.dtype = DType::kF32;
    h.shape = {n_floats};
  }
  return h;
}

TEST(Shaper, DelayKeepsOrderAndIsNeverShortened) {
  constexpr double kDelayMs = 100;
  Pipe p = shaped_pipe({kDelayMs, 0});
  // Let the connection settle, so that connection setup is not mistaken for shaping.
  ASSERT_TRUE(p.tx.send(step(999, 0), {}, soon()).ok());
  ASSERT_TRUE(p.rx.recv(soon()).ok());

  constexpr int kN = 20;
  std::vector<int64_t> sent_ns(kN);
  for (int i = 0; i < kN; ++i) {
    sent_ns[i] = now_ns();
    const auto payload = SharedBytes::from_vector(std::vector<float>(2048, float(i)));
    ASSERT_TRUE(p.tx.send(step(i, 2048), payload, soon()).ok());
  }
  for (int i = 0; i < kN; ++i) {
    auto got = p.rx.recv(soon());
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    const int64_t arrived = now_ns();
    EXPECT_EQ(got->header.step_id, static_cast<uint64_t>(i));
    EXPECT_GE(static_cast<double>(arrived - sent_ns[i]) * 1e-6, kSlack * kDelayMs) << "msg " << i;
    EXPECT_EQ(got->payload.size_bytes(), 2048u * 4);
  }
}

TEST(Shaper, RateSpacesMessagesOut) {
  // 40 messages of 64 KiB at 80 Mbit/s: 40 * 65536 * 8 / 80e6 = 262 ms on the wire.
  constexpr double kRate = 80;
  constexpr int kN = 40;
  constexpr int64_t kFloats = 16384;
  Pipe p = shaped_pipe({0, kRate});
  ASSERT_TRUE(p.tx.send(step(999, 0), {}, soon()).ok());
  ASSERT_TRUE(p.rx.recv(soon()).ok());

  const int64_t t0 = now_ns();
  for (int i = 0; i < kN; ++i) {
    const auto payload = SharedBytes::from_vector(std::vector<float>(kFloats, 1.0f));
    ASSERT_TRUE(p.tx.send(step(i, kFloats), payload, soon()).ok());
  }
  uint64_t bytes = 0;
  for (int i = 0; i < kN; ++i) {
    auto got = p.rx.recv(soon());
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got->header.step_id, static_cast<uint64_t>(i));
    bytes += got->payload.size_bytes();
  }
  const double elapsed_s = static_cast<double>(now_ns() - t0) * 1e-9;
  const double wire_s = static_cast<double>(bytes) * 8 / (kRate * 1e6);
  EXPECT_GE(elapsed_s, kSlack * wire_s)
      << "delivered at " << bytes * 8 / elapsed_s / 1e6 << " Mbit/s, link is " << kRate;
  EXPECT_EQ(p.tx.counters().shaper_dropped, 0u);
}

TEST(Shaper, ShapedControlServerDelaysItsReplies) {
  // The agent's side of a slow link: its replies (pongs) wait, the requests do not.
  constexpr double kDelayMs = 60;
  Context ctx = make_context();
  ChannelOptions options;
  options.link = {kDelayMs, 0};
  testing::Responder agent(ctx, "slow-agent", options);
  auto client = ControlClient::connect(ctx, agent.endpoint());
  ASSERT_TRUE(client.ok());
  for (uint64_t i = 0; i < 5; ++i) {
    const int64_t t0 = now_ns();
    ASSERT_TRUE(client->send(Ping{i, t0, 1000}, soon()).ok());
    auto pong = client->recv(soon());
    ASSERT_TRUE(pong.ok()) << pong.status().to_string();
    ASSERT_TRUE(std::holds_alternative<Pong>(pong->message));
    EXPECT_EQ(std::get<Pong>(pong->message).seq, i);
    EXPECT_EQ(pong->payload.size_bytes(), 1000u);
    EXPECT_GE(static_cast<double>(now_ns() - t0) * 1e-6, kSlack * kDelayMs);
  }
}

TEST(Shaper, ShapedClientStillReceives) {
  // With a shaper the client's socket is the shaper's; replies must still come through.
  Context ctx = make_context();
  testing::Responder agent(ctx);
  ChannelOptions options;
  options.link = {5, 100};
  auto client = ControlClient::connect(ctx, agent.endpoint(), options);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->send(Hello{}, soon()).ok());
  auto hello = client->recv(soon());
  ASSERT_TRUE(hello.ok()) << hello.status().to_string();
  ASSERT_TRUE(std::holds_alternative<Hello>(hello->message));
  EXPECT_EQ(std::get<Hello>(hello->message).agent_name, "test-agent");
  EXPECT_EQ(client->counters().received_messages, 1u);
}

TEST(Shaper, PayloadIsNotCopiedThroughTheShaper) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "inproc://shaped-zero-copy");
  ASSERT_TRUE(rx.ok());
  ChannelOptions options;
  options.link = {1, 0};
  auto tx = DataSender::connect(ctx, "inproc://shaped-zero-copy", options);
  ASSERT_TRUE(tx.ok()) << tx.status().to_string();
  const SharedBytes sent = SharedBytes::from_vector(std::vector<float>(2048, 2.5f));
  ASSERT_TRUE(tx->send(step(1, 2048), sent, soon()).ok());
  auto got = rx->recv(soon());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->payload.data(), sent.data());
}

TEST(Shaper, ClosingWithMessagesInFlightDoesNotHang) {
  Pipe p = shaped_pipe({10000, 0});  // nothing will be delivered before we close
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        p.tx.send(step(i, 16), SharedBytes::from_vector(std::vector<float>(16)), soon()).ok());
  }
  EXPECT_EQ(p.rx.recv(Deadline::after_ms(50)).status().code(), StatusCode::kDeadlineExceeded);
  // Destruction of p (and its shaper thread) must return; ctest's timeout catches a hang.
}

}  // namespace
}  // namespace strata::transport
