// The bounds checks behind check_data_header / check_control_message, split so that the
// decoder can tell a payload-size mismatch (RejectReason::kPayloadSize) from a bad field.
#pragma once

#include <cstdint>

#include "strata/base/status.h"
#include "strata/transport/messages.h"

namespace strata::transport::internal {

// Every bound on the header's own fields. kInvalidArgument naming the field.
Status check_data_fields(const DataHeader& header);
// payload_bytes against the shape and dtype. kCorrupt with both sizes.
Status check_data_payload(const DataHeader& header, uint64_t payload_bytes);

Status check_control_fields(const ControlMessage& message);
Status check_control_payload(const ControlMessage& message, bool has_payload,
                             uint64_t payload_bytes);

}  // namespace strata::transport::internal
