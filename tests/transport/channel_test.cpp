// Channels over tcp loopback: every message round-trips, payloads are not copied, and the
// errors a user meets (bad endpoints, an agent that is not there, a quiet peer) come back as
// Status values within their deadlines.
#include "strata/transport/channel.h"

#include <cstring>

#include <gtest/gtest.h>

#include "strata/base/io.h"
#include "test_util.h"

namespace strata::transport {
namespace {

using testing::make_context;
using testing::sample_activations;
using testing::sample_control_messages;
using testing::sample_data_header;
using testing::soon;

SharedBytes payload_for(const ControlMessage& m) {
  if (const auto* s = std::get_if<ShipSlice>(&m)) {
    std::vector<uint8_t> chunk(s->chunk_bytes);
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<uint8_t>(i * 7);
    return SharedBytes::from_vector(std::move(chunk));
  }
  if (std::holds_alternative<Ping>(m)) return SharedBytes::copy_of(std::vector<uint8_t>(300, 9));
  return {};
}

TEST(Channel, EveryControlMessageBothWaysOverTcp) {
  Context ctx = make_context();
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  EXPECT_NE(server->endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  EXPECT_EQ(server->endpoint().find('*'), std::string::npos) << server->endpoint();
  auto client = ControlClient::connect(ctx, server->endpoint());
  ASSERT_TRUE(client.ok()) << client.status().to_string();

  for (const ControlMessage& m : sample_control_messages()) {
    const SharedBytes payload = payload_for(m);
    ASSERT_TRUE(client->send(m, soon(), payload).ok()) << control_message_name(m);
    auto req = server->recv(soon());
    ASSERT_TRUE(req.ok()) << control_message_name(m) << ": " << req.status().to_string();
    EXPECT_TRUE(req->message == m) << control_message_name(m);
    ASSERT_EQ(req->payload.size_bytes(), payload.size_bytes()) << control_message_name(m);
    EXPECT_TRUE(
        std::equal(payload.span().begin(), payload.span().end(), req->payload.span().begin()));

    ASSERT_TRUE(server->reply(req->peer, m, soon(), payload).ok()) << control_message_name(m);
    auto back = client->recv(soon());
    ASSERT_TRUE(back.ok()) << control_message_name(m) << ": " << back.status().to_string();
    EXPECT_TRUE(back->message == m) << control_message_name(m);
    EXPECT_EQ(back->payload.size_bytes(), payload.size_bytes());
  }
  const ChannelCounters sc = server->counters();
  EXPECT_EQ(sc.received_messages, sample_control_messages().size());
  EXPECT_EQ(sc.sent_messages, sample_control_messages().size());
  EXPECT_EQ(sc.rejected.total(), 0u);
  EXPECT_GT(client->counters().sent_bytes, 0u);
}

TEST(Channel, DataMessagesOverTcp) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok()) << rx.status().to_string();
  auto tx = DataSender::connect(ctx, rx->endpoint());
  ASSERT_TRUE(tx.ok()) << tx.status().to_string();

  const std::vector<float> acts = sample_activations(3 * 16);
  ASSERT_TRUE(tx->send(sample_data_header(), SharedBytes::from_vector(acts), soon()).ok());
  auto got = rx->recv(soon());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->header, sample_data_header());
  ASSERT_EQ(got->payload.size_bytes(), acts.size() * sizeof(float));
  std::vector<float> back(acts.size());
  std::memcpy(back.data(), got->payload.data(), got->payload.size_bytes());
  EXPECT_EQ(back, acts);

  // Tokens only (the last stage's answer): no tensor, an empty payload frame.
  DataHeader tokens;
  tokens.request_id = 3;
  tokens.sampled_tokens = {42, 43};
  tokens.flags = kDataFinal;
  ASSERT_TRUE(tx->send(tokens, {}, soon()).ok());
  got = rx->recv(soon());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->header, tokens);
  EXPECT_TRUE(got->payload.empty());
}

TEST(Channel, SendRefusesHeadersThatDoNotMatchThePayload) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok());
  auto tx = DataSender::connect(ctx, rx->endpoint());
  ASSERT_TRUE(tx.ok());
  const Status s =
      tx->send(sample_data_header(), SharedBytes::from_vector(sample_activations(5)), soon());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.to_string();
  EXPECT_EQ(tx->counters().sent_messages, 0u);

  auto client = ControlClient::connect(ctx, "tcp://127.0.0.1:1");
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(client->send(Heartbeat{}, soon(), SharedBytes::copy_of(std::vector<uint8_t>(4))).code(),
            StatusCode::kCorrupt);
  EXPECT_EQ(client->send(ErrorMessage{StatusCode::kOk, ""}, soon()).code(),
            StatusCode::kInvalidArgument);
}

TEST(Channel, PayloadIsSharedNotCopiedInProcess) {
  // Over inproc ZeroMQ hands the very message across: if neither our send nor our receive
  // copied, the receiver sees the sender's buffer at the same address.
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "inproc://zero-copy");
  ASSERT_TRUE(rx.ok()) << rx.status().to_string();
  auto tx = DataSender::connect(ctx, "inproc://zero-copy");
  ASSERT_TRUE(tx.ok()) << tx.status().to_string();

  DataHeader h = sample_data_header();
  h.shape = {3, 2048};
  const SharedBytes sent = SharedBytes::from_vector(sample_activations(3 * 2048));
  ASSERT_TRUE(tx->send(h, sent, soon()).ok());
  auto got = rx->recv(soon());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->payload.data(), sent.data());
  EXPECT_EQ(got->payload.size_bytes(), 3u * 2048 * sizeof(float));
  auto floats = got->payload.view_as<float>();
  ASSERT_TRUE(floats.ok()) << floats.status().to_string();
  EXPECT_EQ((*floats)[5], sample_activations(6)[5]);
}

TEST(Channel, ReceivedPayloadsOfAnySizeCanBeViewedAsFloats) {
  // ZeroMQ places small received frames at any address; aligned_to() makes a view possible
  // for every size, copying only when the address is off.
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok());
  auto tx = DataSender::connect(ctx, rx->endpoint());
  ASSERT_TRUE(tx.ok());
  for (int64_t n : {1, 3, 16, 100, 333, 2048, 70000}) {
    DataHeader h;
    h.dtype = DType::kF32;
    h.shape = {n};
    const std::vector<float> sent = sample_activations(static_cast<size_t>(n));
    ASSERT_TRUE(tx->send(h, SharedBytes::from_vector(sent), soon()).ok());
    auto got = rx->recv(soon());
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    const SharedBytes aligned = got->payload.aligned_to(alignof(float));
    auto floats = aligned.view_as<float>();
    ASSERT_TRUE(floats.ok()) << n << ": " << floats.status().to_string();
    EXPECT_TRUE(std::equal(sent.begin(), sent.end(), floats->begin())) << n;
  }
}

TEST(Channel, AlignedToCopiesOnlyWhenNeeded) {
  const SharedBytes whole = SharedBytes::from_vector(std::vector<uint64_t>{1, 2, 3, 4});
  EXPECT_EQ(whole.aligned_to(8).data(), whole.data());
  const SharedBytes odd(whole.owner(), whole.data() + 1, 16);
  EXPECT_FALSE(odd.view_as<uint32_t>().ok());
  const SharedBytes fixed = odd.aligned_to(64);
  EXPECT_NE(fixed.data(), odd.data());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(fixed.data()) % 64, 0u);
  EXPECT_EQ(fixed.size_bytes(), 16u);
  EXPECT_EQ(std::memcmp(fixed.data(), odd.data(), 16), 0);
  EXPECT_TRUE(fixed.view_as<uint32_t>().ok());
}

TEST(Channel, PayloadHandedToAnotherThreadInProcess) {
  // Stages in one process (tests, a coordinator beside an agent) pass buffers by reference;
  // what the producing thread wrote must be what the consumer reads (and TSan must agree).
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "inproc://handoff");
  ASSERT_TRUE(rx.ok());
  auto tx = DataSender::connect(ctx, "inproc://handoff");
  ASSERT_TRUE(tx.ok());
  std::thread producer([s = std::move(tx).value()]() mutable {
    for (int i = 0; i < 20; ++i) {
      std::vector<float> acts(2048);
      for (size_t k = 0; k < acts.size(); ++k) acts[k] = static_cast<float>(i * 10000 + k);
      DataHeader h;
      h.step_id = static_cast<uint64_t>(i);
      h.dtype = DType::kF32;
      h.shape = {2048};
      EXPECT_TRUE(s.send(h, SharedBytes::from_vector(std::move(acts)), soon()).ok());
    }
  });
  for (int i = 0; i < 20; ++i) {
    auto got = rx->recv(soon());
    if (!got.ok()) {
      ADD_FAILURE() << got.status().to_string();
      break;
    }
    auto floats = got->payload.aligned_to(alignof(float)).view_as<float>();
    EXPECT_TRUE(floats.ok() && (*floats)[7] == static_cast<float>(i * 10000 + 7)) << i;
  }
  producer.join();
}

TEST(Channel, SentPayloadIsReleasedAfterTheWire) {
  // The socket holds a reference to the payload, not a copy, and drops it once sent.
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok());
  auto tx = DataSender::connect(ctx, rx->endpoint());
  ASSERT_TRUE(tx.ok());

  auto released = std::make_shared<std::atomic<bool>>(false);
  DataHeader h = sample_data_header();
  h.shape = {3, 2048};
  {
    auto* raw = new std::vector<float>(sample_activations(3 * 2048));
    std::shared_ptr<const void> owner(raw, [released](const void* p) {
      delete static_cast<const std::vector<float>*>(p);
      released->store(true);
    });
    SharedBytes bytes(owner, raw->data(), raw->size() * sizeof(float));
    owner.reset();
    ASSERT_TRUE(tx->send(h, std::move(bytes), soon()).ok());
  }
  auto got = rx->recv(soon());
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->payload.size_bytes(), 3u * 2048 * sizeof(float));
  EXPECT_EQ(std::memcmp(got->payload.data(), sample_activations(3 * 2048).data(),
                        got->payload.size_bytes()),
            0);
  const int64_t give_up = now_ns() + 10'000'000'000;
  while (!released->load() && now_ns() < give_up) std::this_thread::yield();
  EXPECT_TRUE(released->load());
}

TEST(Channel, ReceivedPayloadOutlivesTheMessageAndCanBeForwarded) {
  Context ctx = make_context();
  auto rx1 = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  auto rx2 = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx1.ok() && rx2.ok());
  auto tx1 = DataSender::connect(ctx, rx1->endpoint());
  auto tx2 = DataSender::connect(ctx, rx2->endpoint());
  ASSERT_TRUE(tx1.ok() && tx2.ok());
  const std::vector<float> acts = sample_activations(3 * 16);
  ASSERT_TRUE(tx1->send(sample_data_header(), SharedBytes::from_vector(acts), soon()).ok());
  SharedBytes kept;
  {
    auto got = rx1->recv(soon());
    ASSERT_TRUE(got.ok());
    kept = got->payload;
    // A stage that does not touch the tensor passes the received bytes on as they are.
    ASSERT_TRUE(tx2->send(got->header, got->payload, soon()).ok());
  }
  auto got2 = rx2->recv(soon());
  ASSERT_TRUE(got2.ok()) << got2.status().to_string();
  EXPECT_EQ(std::memcmp(got2->payload.data(), acts.data(), kept.size_bytes()), 0);
  EXPECT_EQ(std::memcmp(kept.data(), acts.data(), kept.size_bytes()), 0);
}

TEST(Channel, RecvWithNothingToReadReturnsDeadlineExceeded) {
  Context ctx = make_context();
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(server.ok());
  auto r = server->recv(Deadline::after_ms(30));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok());
  EXPECT_EQ(rx->recv(Deadline::after_ms(0)).status().code(), StatusCode::kDeadlineExceeded);
}

// A port nobody listens on: bind one, read its number, close it.
std::string dead_endpoint(const Context& ctx) {
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  EXPECT_TRUE(rx.ok());
  return rx->endpoint();
}

TEST(Channel, UnreachableAgentIsAClearErrorWithinTheDeadline) {
  Context ctx = make_context();
  const std::string endpoint = dead_endpoint(ctx);
  auto client = ControlClient::connect(ctx, endpoint);
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  const Status s = client->send(Hello{}, Deadline::after_ms(200));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_NE(s.message().find(endpoint), std::string::npos) << s.message();

  auto tx = DataSender::connect(ctx, endpoint);
  ASSERT_TRUE(tx.ok());
  const Status d = tx->send(DataHeader{}, {}, Deadline::after_ms(200));
  EXPECT_EQ(d.code(), StatusCode::kUnavailable) << d.to_string();
}

TEST(Channel, BadEndpointsAreRefused) {
  Context ctx = make_context();
  auto bad = ControlServer::bind(ctx, "not-an-endpoint");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status().to_string();
  EXPECT_NE(bad.status().message().find("not-an-endpoint"), std::string::npos);
  auto bad_connect = ControlClient::connect(ctx, "tcp://");
  EXPECT_FALSE(bad_connect.ok());

  auto first = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(first.ok());
  auto taken = DataReceiver::bind(ctx, first->endpoint());
  ASSERT_FALSE(taken.ok());
  EXPECT_EQ(taken.status().code(), StatusCode::kUnavailable) << taken.status().to_string();

  ChannelOptions shaped;
  shaped.link.delay_ms = 5;
  EXPECT_EQ(DataReceiver::bind(ctx, "tcp://127.0.0.1:*", shaped).status().code(),
            StatusCode::kInvalidArgument);
  shaped.link.delay_ms = -1;
  EXPECT_EQ(DataSender::connect(ctx, "tcp://127.0.0.1:1", shaped).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Channel, ReplyToAVanishedPeerIsUnavailable) {
  Context ctx = make_context();
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(server->reply("no-such-peer", Heartbeat{}, soon()).code(), StatusCode::kUnavailable);
}

TEST(Channel, WaitReadableSaysWhichChannelHasMail) {
  Context ctx = make_context();
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(server.ok() && rx.ok());
  auto tx = DataSender::connect(ctx, rx->endpoint());
  ASSERT_TRUE(tx.ok());
  Channel* channels[] = {&*server, &*rx};
  auto none = wait_readable(channels, Deadline::after_ms(20));
  EXPECT_EQ(none.status().code(), StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(tx->send(DataHeader{}, {}, soon()).ok());
  auto ready = wait_readable(channels, soon());
  ASSERT_TRUE(ready.ok()) << ready.status().to_string();
  EXPECT_EQ(*ready, 2u);
  EXPECT_TRUE(rx->recv(soon()).ok());
}

TEST(Channel, ChannelsMoveAcrossThreads) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok());
  auto tx = DataSender::connect(ctx, rx->endpoint());
  ASSERT_TRUE(tx.ok());
  std::thread sender([s = std::move(tx).value()]() mutable {
    for (uint64_t i = 0; i < 100; ++i) {
      DataHeader h;
      h.step_id = i;
      EXPECT_TRUE(s.send(h, {}, soon()).ok());
    }
  });
  for (uint64_t i = 0; i < 100; ++i) {
    auto got = rx->recv(soon());
    if (!got.ok()) {
      ADD_FAILURE() << got.status().to_string();
      break;
    }
    EXPECT_EQ(got->header.step_id, i);  // one PUSH to one PULL keeps the order
  }
  sender.join();
}

}  // namespace
}  // namespace strata::transport
