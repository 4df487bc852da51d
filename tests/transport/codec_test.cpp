// Header frames without sockets: every message round-trips, and every kind of bad frame is
// refused with the right Status and reason.
#include "strata/transport/codec.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "test_util.h"
#include "wire_generated.h"

namespace strata::transport {
namespace {

using testing::sample_control_messages;
using testing::sample_data_header;

uint64_t payload_for(const ControlMessage& m) {
  if (const auto* s = std::get_if<ShipSlice>(&m)) return s->chunk_bytes;
  return 0;
}

TEST(Codec, EveryControlMessageRoundTrips) {
  for (const ControlMessage& m : sample_control_messages()) {
    const bool has_payload = payload_rule(m) == PayloadRule::kRequired;
    const std::vector<uint8_t> bytes = encode_control(m);
    auto back = decode_control(bytes, has_payload, payload_for(m));
    ASSERT_TRUE(back.ok()) << control_message_name(m) << ": " << back.status().to_string();
    EXPECT_EQ(back->index(), m.index());
    EXPECT_TRUE(*back == m) << control_message_name(m);
  }
}

TEST(Codec, DataHeaderRoundTrips) {
  DataHeader h = sample_data_header();
  h.sampled_tokens = {5, 6};
  h.logit_rows = {0, 2};
  h.flags |= kDataWantLogits;
  h.status_code = StatusCode::kResourceExhausted;
  h.status_message = "kv cache full";
  const auto bytes = encode_data(h);
  auto back = decode_data(bytes, 3 * 16 * 4);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, h);
}

TEST(Codec, LogitRowsMustBeIncreasingTokenIndices) {
  DataHeader h = sample_data_header();
  h.logit_rows = {2, 1};
  EXPECT_EQ(check_data_header(h, 3 * 16 * 4).code(), StatusCode::kInvalidArgument);
  h.logit_rows = {h.n_tokens};
  EXPECT_EQ(check_data_header(h, 3 * 16 * 4).code(), StatusCode::kInvalidArgument);
  h.logit_rows = {0, 1};
  EXPECT_TRUE(check_data_header(h, 3 * 16 * 4).ok());
}

TEST(Codec, FullStatsFitTheHeaderBoundAndKeepEveryField) {
  // The most steps a Stats may carry, every field distinct, must fit in one header frame.
  Stats m;
  m.stage_index = 3;
  m.steps.resize(kMaxStatsSteps);
  for (size_t i = 0; i < m.steps.size(); ++i) {
    const double x = static_cast<double>(i);
    StepStats& s = m.steps[i];
    s.step_id = i;
    s.n_tokens = static_cast<uint32_t>(i % 7);
    s.compute_ms = x + 0.5;
    s.wait_ms = x + 0.25;
    s.link_ms = x + 0.125;
    s.bytes_in = 3 * i;
    s.bytes_out = 5 * i;
    s.local_ms = x + 0.375;
    s.paced_ms = x + 0.625;
  }
  const std::vector<uint8_t> bytes = encode_control(m);
  EXPECT_LE(bytes.size(), kMaxHeaderBytes);
  auto back = decode_control(bytes, false, 0);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(*back == ControlMessage(m));
}

TEST(Codec, EmptyFieldsRoundTrip) {
  // Defaults everywhere: absent strings and vectors must read back as empty, not fail.
  for (ControlMessage m : {ControlMessage(Hello{}), ControlMessage(Stats{}),
                           ControlMessage(Shutdown{}), ControlMessage(Heartbeat{})}) {
    auto back = decode_control(encode_control(m), false, 0);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_TRUE(*back == m);
  }
  DataHeader none;  // no tokens, no tensor
  auto back = decode_data(encode_data(none), 0);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, none);
}

struct Refusal {
  StatusCode code;
  RejectReason reason;
};

Refusal refuse_control(std::span<const uint8_t> bytes, bool has_payload = false,
                       uint64_t payload = 0) {
  RejectReason reason{};
  auto r = decode_control(bytes, has_payload, payload, &reason);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return {StatusCode::kOk, reason};
  EXPECT_FALSE(r.status().message().empty());
  return {r.status().code(), reason};
}

TEST(Codec, GarbageIsRefusedByTheVerifier) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<uint8_t> junk(1 + rng() % 300);
    for (uint8_t& b : junk) b = static_cast<uint8_t>(rng());
    RejectReason reason{};
    auto r = decode_control(junk, false, 0, &reason);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kCorrupt);
    EXPECT_EQ(reason, RejectReason::kVerify);
  }
}

TEST(Codec, EmptyAndOversizedHeadersAreRefusedUnread) {
  Refusal r = refuse_control({});
  EXPECT_EQ(r.code, StatusCode::kCorrupt);
  EXPECT_EQ(r.reason, RejectReason::kHeaderSize);
  std::vector<uint8_t> huge(kMaxHeaderBytes + 1, 0);
  r = refuse_control(huge);
  EXPECT_EQ(r.reason, RejectReason::kHeaderSize);
}

TEST(Codec, EveryTruncationIsRefused) {
  const std::vector<uint8_t> full = encode_control(testing::sample_hello());
  for (size_t n = 1; n < full.size(); ++n) {
    std::span<const uint8_t> cut(full.data(), n);
    RejectReason reason{};
    auto r = decode_control(cut, false, 0, &reason);
    ASSERT_FALSE(r.ok()) << "truncated to " << n << " of " << full.size();
    EXPECT_EQ(reason, RejectReason::kVerify);
  }
}

TEST(Codec, BadOffsetsFailVerification) {
  std::vector<uint8_t> bytes = encode_control(testing::sample_hello());
  // The root offset (first 4 bytes) pointing past the end.
  std::vector<uint8_t> bad_root = bytes;
  bad_root[0] = 0xf0;
  bad_root[1] = 0xff;
  EXPECT_EQ(refuse_control(bad_root).reason, RejectReason::kVerify);
  // A wrong file identifier (bytes 4..7) is a different protocol, not ours.
  std::vector<uint8_t> bad_id = bytes;
  bad_id[4] = 'X';
  EXPECT_EQ(refuse_control(bad_id).reason, RejectReason::kVerify);
}

TEST(Codec, UnalignedHeadersDecode) {
  // ZeroMQ hands over frames at any address; the decoder must not care.
  const std::vector<uint8_t> bytes = encode_control(testing::sample_hello());
  std::vector<uint8_t> shifted(bytes.size() + 3);
  std::copy(bytes.begin(), bytes.end(), shifted.begin() + 3);
  auto r = decode_control(std::span<const uint8_t>(shifted.data() + 3, bytes.size()), false, 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(*r == ControlMessage(testing::sample_hello()));
}

TEST(Codec, VersionMismatchIsUnsupported) {
  const auto bytes = encode_control(Heartbeat{1, 2}, kProtocolVersion + 1);
  RejectReason reason{};
  auto r = decode_control(bytes, false, 0, &reason);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_EQ(reason, RejectReason::kVersion);
  EXPECT_NE(r.status().message().find("version"), std::string::npos) << r.status().message();
}

std::vector<uint8_t> message_with_body_type(uint8_t type) {
  flatbuffers::FlatBufferBuilder fbb;
  auto body = wire::CreateShutdown(fbb, fbb.CreateString("from the future"));
  wire::FinishMessageBuffer(
      fbb, wire::CreateMessage(fbb, kProtocolVersion, static_cast<wire::Body>(type), body.Union()));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

TEST(Codec, UnknownBodyTypeIsUnsupported) {
  Refusal r = refuse_control(message_with_body_type(200));
  EXPECT_EQ(r.code, StatusCode::kUnsupported);
  EXPECT_EQ(r.reason, RejectReason::kUnknownType);
  r = refuse_control(message_with_body_type(0));  // NONE
  EXPECT_EQ(r.reason, RejectReason::kUnknownType);
}

TEST(Codec, DataAndControlDoNotMix) {
  Refusal r = refuse_control(encode_data(sample_data_header()), true, 3 * 16 * 4);
  EXPECT_EQ(r.reason, RejectReason::kUnexpectedType);
  RejectReason reason{};
  auto d = decode_data(encode_control(Heartbeat{}), 0, &reason);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(reason, RejectReason::kUnexpectedType);
}

TEST(Codec, PayloadRulesForControlMessages) {
  // A ship-slice chunk whose payload is not the size it claims.
  const auto ship = encode_control(ShipSlice{"sha256:1", 0, 100, 1000});
  EXPECT_EQ(refuse_control(ship, true, 50).reason, RejectReason::kPayloadSize);
  EXPECT_EQ(refuse_control(ship, false, 0).reason, RejectReason::kPayloadSize);
  EXPECT_TRUE(decode_control(ship, true, 100).ok());
  // A heartbeat takes no payload frame at all.
  EXPECT_EQ(refuse_control(encode_control(Heartbeat{}), true, 0).reason,
            RejectReason::kPayloadSize);
  // Pings may or may not carry one.
  EXPECT_TRUE(decode_control(encode_control(Ping{}), true, 4096).ok());
  EXPECT_TRUE(decode_control(encode_control(Ping{}), false, 0).ok());
}

TEST(Codec, ControlFieldBounds) {
  const auto refuse_fields = [](const ControlMessage& m) {
    const Refusal r = refuse_control(encode_control(m), payload_rule(m) == PayloadRule::kRequired,
                                     payload_for(m));
    EXPECT_EQ(r.code, StatusCode::kInvalidArgument) << control_message_name(m);
    EXPECT_EQ(r.reason, RejectReason::kFields) << control_message_name(m);
  };
  Hello long_name;
  long_name.agent_name = std::string(kMaxStringBytes + 1, 'x');
  refuse_fields(long_name);
  Hello many_slices;
  many_slices.cached_slices.assign(kMaxCachedSlices + 1, "h");
  refuse_fields(many_slices);
  Assign empty_range;
  empty_range.n_stages = 1;
  empty_range.unit_begin = 4;
  empty_range.unit_end = 4;
  refuse_fields(empty_range);
  Assign bad_stage;
  bad_stage.n_stages = 2;
  bad_stage.stage_index = 2;
  bad_stage.unit_end = 1;
  refuse_fields(bad_stage);
  refuse_fields(ShipSlice{"h", 900, 200, 1000});  // chunk runs past the slice
  refuse_fields(ShipSlice{"", 0, 1, 1});          // no hash
  refuse_fields(ErrorMessage{StatusCode::kOk, "not an error"});
  refuse_fields(ErrorMessage{static_cast<StatusCode>(200), "unknown code"});
  refuse_fields(Ping{1, 2, kMaxProbeReplyBytes + 1});
  Stats too_many;
  too_many.steps.resize(kMaxStatsSteps + 1);
  refuse_fields(too_many);
  Stats negative;
  negative.steps = {{1, 1, -1.0, 0, 0, 0, 0}};
  refuse_fields(negative);
  Stats negative_paced;
  negative_paced.steps = {{1, 1, 1.0, 0, 0, 0, 0, 1.0, -0.5}};
  refuse_fields(negative_paced);
  Stats nan_local;
  nan_local.steps = {{1, 1, 1.0, 0, 0, 0, 0, std::nan(""), 1.0}};
  refuse_fields(nan_local);
}

TEST(Codec, DataBoundsAndPayloadSize) {
  const uint64_t good = 3 * 16 * 4;
  const auto refuse = [](const DataHeader& h, uint64_t payload, RejectReason want) {
    RejectReason reason{};
    auto r = decode_data(encode_data(h), payload, &reason);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(reason, want) << r.status().to_string();
    EXPECT_FALSE(check_data_header(h, payload).ok());  // the send side refuses it too
  };
  refuse(sample_data_header(), good - 4, RejectReason::kPayloadSize);
  refuse(sample_data_header(), good + 1, RejectReason::kPayloadSize);
  refuse(sample_data_header(), 0, RejectReason::kPayloadSize);

  DataHeader h = sample_data_header();
  h.shape = {1, 1, 1, 1, 1};  // too many dims
  refuse(h, 4, RejectReason::kFields);
  h = sample_data_header();
  h.shape = {3, 0};
  refuse(h, 0, RejectReason::kFields);
  h = sample_data_header();
  h.shape = {3, -16};
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.shape = {kMaxShapeDim, kMaxShapeDim};  // product overflows the payload bound
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.dtype = DType::kNone;  // a shape without a type
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.dtype = static_cast<DType>(9);
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.positions.pop_back();  // n_tokens says 3
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.token_ids = {1};
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.seq_ids[1] = -1;
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.flags |= 1u << 20;
  refuse(h, good, RejectReason::kFields);
  h = sample_data_header();
  h.n_tokens = kMaxTokens + 1;
  h.seq_ids.assign(kMaxTokens + 1, 0);
  h.positions.assign(kMaxTokens + 1, 0);
  refuse(h, good, RejectReason::kFields);
}

TEST(Codec, ExpectedPayloadBytes) {
  DataHeader h = sample_data_header();
  EXPECT_EQ(*expected_payload_bytes(h), 3u * 16 * 4);
  h.dtype = DType::kF16;
  EXPECT_EQ(*expected_payload_bytes(h), 3u * 16 * 2);
  h.shape.clear();
  EXPECT_EQ(*expected_payload_bytes(h), 0u);
}

TEST(Codec, RejectCountersCountByReason) {
  RejectCounters c;
  count_reject(c, RejectReason::kVerify);
  count_reject(c, RejectReason::kVerify);
  count_reject(c, RejectReason::kVersion);
  EXPECT_EQ(c.verify, 2u);
  EXPECT_EQ(c.version, 1u);
  EXPECT_EQ(c.total(), 3u);
  EXPECT_STREQ(reject_reason_name(RejectReason::kPayloadSize), "payload size");
}

}  // namespace
}  // namespace strata::transport
