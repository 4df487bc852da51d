// Encoding into a caller's FlatBufferBuilder, so that a channel can reuse one builder per
// socket and copy the finished header straight into a ZeroMQ frame.
#pragma once

#include <cstdint>

#include <flatbuffers/flatbuffers.h>

#include "strata/transport/messages.h"

namespace strata::transport::internal {

// Clears `fbb` and leaves the finished, identified buffer in it.
void build_control(flatbuffers::FlatBufferBuilder& fbb, const ControlMessage& message,
                   uint16_t version);
void build_data(flatbuffers::FlatBufferBuilder& fbb, const DataHeader& header, uint16_t version);

}  // namespace strata::transport::internal
