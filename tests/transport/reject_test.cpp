// A misbehaving peer (a raw ZeroMQ socket sending whatever it likes) against the channels:
// every bad message is refused with a Status and a counter, a control server tells the peer
// why, and a good message after the bad ones still gets through.
#include <cstring>
#include <random>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "strata/transport/channel.h"
#include "strata/transport/codec.h"
#include "test_util.h"
#include "wire_generated.h"

namespace strata::transport {
namespace {

using testing::make_context;
using testing::sample_data_header;
using testing::soon;

using Frames = std::vector<std::vector<uint8_t>>;

std::vector<uint8_t> garbage(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::vector<uint8_t> unknown_type_message() {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateHeartbeat(fbb, 1, 2);
  wire::FinishMessageBuffer(
      fbb, wire::CreateMessage(fbb, kProtocolVersion, static_cast<wire::Body>(99), body.Union()));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// A raw peer: sends arbitrary frames, reads whole messages back.
class RawPeer {
 public:
  RawPeer(zmq::socket_type type, const std::string& endpoint) : socket_(ctx_, type) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::rcvtimeo, 10000);
    socket_.connect(endpoint);
  }
  void send(const Frames& frames) {
    for (size_t i = 0; i < frames.size(); ++i) {
      zmq::message_t m(frames[i].data(), frames[i].size());
      socket_.send(m, i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
  // The next message's frames (empty when none came within 10 s).
  Frames recv() {
    Frames out;
    zmq::message_t m;
    while (socket_.recv(m)) {
      out.emplace_back(static_cast<const uint8_t*>(m.data()),
                       static_cast<const uint8_t*>(m.data()) + m.size());
      if (!m.more()) break;
    }
    return out;
  }

 private:
  zmq::context_t ctx_;
  zmq::socket_t socket_;
};

struct BadCase {
  const char* name;
  Frames frames;
  StatusCode code;
  uint64_t RejectCounters::*counter;
};

std::vector<BadCase> bad_control_cases() {
  const std::vector<uint8_t> hello = encode_control(testing::sample_hello());
  std::vector<uint8_t> bad_offsets = hello;
  bad_offsets[0] = 0xff;
  bad_offsets[1] = 0xff;
  return {
      {"garbage", {garbage(64, 1)}, StatusCode::kCorrupt, &RejectCounters::verify},
      {"empty frame", {{}}, StatusCode::kCorrupt, &RejectCounters::header_size},
      {"truncated header",
       {std::vector<uint8_t>(hello.begin(), hello.begin() + static_cast<long>(hello.size() / 2))},
       StatusCode::kCorrupt,
       &RejectCounters::verify},
      {"bad offsets", {bad_offsets}, StatusCode::kCorrupt, &RejectCounters::verify},
      {"version mismatch",
       {encode_control(testing::sample_hello(), kProtocolVersion + 1)},
       StatusCode::kUnsupported,
       &RejectCounters::version},
      {"unknown type",
       {unknown_type_message()},
       StatusCode::kUnsupported,
       &RejectCounters::unknown_type},
      {"data on control",
       {encode_data(DataHeader{}), {}},
       StatusCode::kInvalidArgument,
       &RejectCounters::unexpected_type},
      {"wrong payload size",
       {encode_control(ShipSlice{"sha256:1", 0, 100, 100}), std::vector<uint8_t>(99)},
       StatusCode::kCorrupt,
       &RejectCounters::payload_size},
      {"payload where none belongs",
       {encode_control(Heartbeat{}), std::vector<uint8_t>(8)},
       StatusCode::kCorrupt,
       &RejectCounters::payload_size},
      {"too many frames",
       {encode_control(Heartbeat{}), {}, {}, {}},
       StatusCode::kCorrupt,
       &RejectCounters::frames},
      {"field out of bounds",
       {encode_control(Ping{1, 1, kMaxProbeReplyBytes * 2})},
       StatusCode::kInvalidArgument,
       &RejectCounters::fields},
  };
}

TEST(Reject, ControlServerRefusesEachBadMessageAndKeepsServing) {
  Context ctx = make_context();
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  RawPeer peer(zmq::socket_type::dealer, server->endpoint());

  uint64_t refused = 0;
  for (const BadCase& c : bad_control_cases()) {
    SCOPED_TRACE(c.name);
    const uint64_t before = server->counters().rejected.*(c.counter);
    peer.send(c.frames);
    auto r = server->recv(soon());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_NE(r.status().message().find("control server"), std::string::npos);
    const ChannelCounters counters = server->counters();
    EXPECT_EQ(counters.rejected.*(c.counter), before + 1);
    EXPECT_EQ(counters.rejected.total(), ++refused);

    // The peer hears why, in a message it can decode (same version here).
    const Frames reply = peer.recv();
    ASSERT_EQ(reply.size(), 1u);
    auto decoded = decode_control(reply[0], false, 0);
    ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
    const auto* error = std::get_if<ErrorMessage>(&*decoded);
    ASSERT_NE(error, nullptr);
    EXPECT_EQ(error->code, c.code);
    EXPECT_FALSE(error->message.empty());
    EXPECT_NE(r.status().message().find(error->message), std::string::npos);
  }
  EXPECT_EQ(server->counters().reject_replies, refused);
  EXPECT_EQ(server->counters().received_messages, 0u);

  // Still serving: a good hello from the same peer is received as sent.
  peer.send({encode_control(testing::sample_hello())});
  auto good = server->recv(soon());
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_TRUE(good->message == ControlMessage(testing::sample_hello()));
  EXPECT_EQ(server->counters().received_messages, 1u);
}

TEST(Reject, HelloOfAnotherVersionGetsAnErrorReply) {
  // A coordinator of a later version says hello. The agent refuses it, and its refusal names
  // both versions; the coordinator, reading an envelope of the agent's version, reports a
  // version mismatch in turn (ClientRefusesRepliesOfAnotherVersion).
  Context ctx = make_context();
  auto server = ControlServer::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(server.ok());
  RawPeer future_coordinator(zmq::socket_type::dealer, server->endpoint());
  future_coordinator.send({encode_control(testing::sample_hello(), kProtocolVersion + 3)});
  auto refused = server->recv(soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnsupported);
  const std::string want = "version " + std::to_string(kProtocolVersion + 3) +
                           ", this build speaks " + std::to_string(kProtocolVersion);
  EXPECT_NE(refused.status().message().find(want), std::string::npos) << refused.status().message();
  EXPECT_EQ(server->counters().rejected.version, 1u);

  const Frames reply = future_coordinator.recv();
  ASSERT_EQ(reply.size(), 1u);
  auto decoded = decode_control(reply[0], false, 0);
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  ASSERT_TRUE(std::holds_alternative<ErrorMessage>(*decoded));
  EXPECT_EQ(std::get<ErrorMessage>(*decoded).code, StatusCode::kUnsupported);
  EXPECT_NE(std::get<ErrorMessage>(*decoded).message.find(want), std::string::npos);
}

TEST(Reject, ClientRefusesRepliesOfAnotherVersion) {
  Context ctx = make_context();
  // The "agent" is a raw ROUTER answering in a version this build does not speak.
  zmq::context_t raw_ctx;
  zmq::socket_t router(raw_ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::rcvtimeo, 10000);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);

  auto client = ControlClient::connect(ctx, endpoint);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(client->send(Hello{}, soon()).ok());
  zmq::message_t id_frame, body;
  ASSERT_TRUE(router.recv(id_frame));
  ASSERT_TRUE(router.recv(body));
  const std::string id = id_frame.to_string();  // sending a frame empties it; keep the bytes
  const std::vector<uint8_t> future = encode_control(Hello{}, kProtocolVersion + 1);
  router.send(zmq::buffer(id), zmq::send_flags::sndmore);
  router.send(zmq::buffer(future));
  auto r = client->recv(soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << r.status().to_string();
  EXPECT_EQ(client->counters().rejected.version, 1u);

  // And keeps working: a good reply after the bad one.
  const std::vector<uint8_t> good = encode_control(Hello{});
  router.send(zmq::buffer(id), zmq::send_flags::sndmore);
  router.send(zmq::buffer(good));
  auto ok = client->recv(soon());
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
}

TEST(Reject, DataReceiverRefusesEachBadMessageAndKeepsServing) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok()) << rx.status().to_string();
  RawPeer peer(zmq::socket_type::push, rx->endpoint());

  const std::vector<uint8_t> header = encode_data(sample_data_header());  // wants 192 bytes
  DataHeader many_dims = sample_data_header();
  many_dims.shape = {1, 1, 1, 1, 3 * 16};
  DataHeader mismatch = sample_data_header();
  mismatch.positions = {1};
  const std::vector<BadCase> cases = {
      {"garbage header",
       {garbage(100, 2), std::vector<uint8_t>(192)},
       StatusCode::kCorrupt,
       &RejectCounters::verify},
      {"header only", {header}, StatusCode::kCorrupt, &RejectCounters::frames},
      {"three frames",
       {header, std::vector<uint8_t>(192), {}},
       StatusCode::kCorrupt,
       &RejectCounters::frames},
      {"short payload",
       {header, std::vector<uint8_t>(191)},
       StatusCode::kCorrupt,
       &RejectCounters::payload_size},
      {"long payload",
       {header, std::vector<uint8_t>(4096)},
       StatusCode::kCorrupt,
       &RejectCounters::payload_size},
      {"five dims",
       {encode_data(many_dims), std::vector<uint8_t>(192)},
       StatusCode::kInvalidArgument,
       &RejectCounters::fields},
      {"positions short",
       {encode_data(mismatch), std::vector<uint8_t>(192)},
       StatusCode::kInvalidArgument,
       &RejectCounters::fields},
      {"version",
       {encode_data(sample_data_header(), 0), std::vector<uint8_t>(192)},
       StatusCode::kUnsupported,
       &RejectCounters::version},
      {"control on data",
       {encode_control(Heartbeat{}), {}},
       StatusCode::kInvalidArgument,
       &RejectCounters::unexpected_type},
      {"unknown type",
       {unknown_type_message(), {}},
       StatusCode::kUnsupported,
       &RejectCounters::unknown_type},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t before = rx->counters().rejected.*(c.counter);
    peer.send(c.frames);
    auto r = rx->recv(soon());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), c.code) << r.status().to_string();
    EXPECT_EQ(rx->counters().rejected.*(c.counter), before + 1);
  }
  EXPECT_EQ(rx->counters().rejected.total(), cases.size());

  std::vector<uint8_t> payload(192);
  const std::vector<float> acts = testing::sample_activations(48);
  std::memcpy(payload.data(), acts.data(), payload.size());
  peer.send({header, payload});
  auto good = rx->recv(soon());
  ASSERT_TRUE(good.ok()) << good.status().to_string();
  EXPECT_EQ(good->header, sample_data_header());
  EXPECT_EQ(std::memcmp(good->payload.data(), acts.data(), 192), 0);
  EXPECT_EQ(rx->counters().received_messages, 1u);
}

TEST(Reject, FloodOfGarbageNeverStopsTheReceiver) {
  Context ctx = make_context();
  auto rx = DataReceiver::bind(ctx, "tcp://127.0.0.1:*");
  ASSERT_TRUE(rx.ok());
  RawPeer peer(zmq::socket_type::push, rx->endpoint());
  constexpr int kBad = 500;
  std::mt19937 rng(7);
  for (int i = 0; i < kBad; ++i) {
    Frames f;
    const size_t n_frames = rng() % 4;  // 0 frames means a single empty one
    for (size_t k = 0; k <= n_frames; ++k) f.push_back(garbage(rng() % 512, rng()));
    peer.send(f);
  }
  peer.send({encode_data(DataHeader{}), {}});
  int refused = 0;
  for (;;) {
    auto r = rx->recv(soon());
    if (r.ok()) break;
    ASSERT_NE(r.status().code(), StatusCode::kDeadlineExceeded) << "the good message never came";
    ++refused;
  }
  EXPECT_EQ(refused, kBad);
  EXPECT_EQ(rx->counters().rejected.total(), static_cast<uint64_t>(kBad));
}

}  // namespace
}  // namespace strata::transport
