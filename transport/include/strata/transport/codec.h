// Header frames to bytes and back. The channels (channel.h) use these; they are public so that
// tests and fuzz targets can feed arbitrary bytes to the same checks a socket applies.
// Thread-safety: every function is reentrant.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "strata/base/status.h"
#include "strata/transport/messages.h"

namespace strata::transport {

// Why a received message was refused; each has a counter in RejectCounters.
enum class RejectReason : uint8_t {
  kFrames,          // wrong number of frames (or a missing routing id)
  kHeaderSize,      // header frame empty or larger than kMaxHeaderBytes
  kVerify,          // not a FlatBuffer of ours: garbage, truncated, bad offsets
  kVersion,         // another protocol version
  kUnknownType,     // a body type this build does not know
  kUnexpectedType,  // a data message on a control channel or the reverse
  kFields,          // a field out of bounds (counts, strings, shape, dtype, flags, codes)
  kPayloadSize,     // payload frame size differs from what the header says
};

// "frames", "header size", ...; never null.
const char* reject_reason_name(RejectReason reason);

// Rejected-message counts by reason. Plain snapshot values.
struct RejectCounters {
  uint64_t frames = 0;
  uint64_t header_size = 0;
  uint64_t verify = 0;
  uint64_t version = 0;
  uint64_t unknown_type = 0;
  uint64_t unexpected_type = 0;
  uint64_t fields = 0;
  uint64_t payload_size = 0;
  uint64_t total() const {
    return frames + header_size + verify + version + unknown_type + unexpected_type + fields +
           payload_size;
  }
};

// Serializes `message` into a header frame stamped with `version` (tests pass another version
// to provoke a mismatch). Does not check bounds: the channels run check_control_message first.
std::vector<uint8_t> encode_control(const ControlMessage& message,
                                    uint16_t version = kProtocolVersion);
std::vector<uint8_t> encode_data(const DataHeader& header, uint16_t version = kProtocolVersion);

// Parses a header frame that arrived with `payload_bytes` of payload (`has_payload`: whether a
// payload frame came at all). Runs, in order: size bound, FlatBuffers verifier (with its
// identifier), version, type, then every bound of check_control_message / check_data_header.
// Returns the message, or kCorrupt (frames, size, verifier, payload size), kUnsupported
// (version, unknown type), kInvalidArgument (fields, unexpected type); `reason`, when not
// null, receives the counter to bump. Never reads past `header`; never throws.
Result<ControlMessage> decode_control(std::span<const uint8_t> header, bool has_payload,
                                      uint64_t payload_bytes, RejectReason* reason = nullptr);
Result<DataHeader> decode_data(std::span<const uint8_t> header, uint64_t payload_bytes,
                               RejectReason* reason = nullptr);

// Adds one to the counter of `reason` in `counters`.
void count_reject(RejectCounters& counters, RejectReason reason);

}  // namespace strata::transport
