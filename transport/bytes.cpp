#include "strata/transport/bytes.h"

#include <cstring>

namespace strata::transport {

SharedBytes::SharedBytes(std::shared_ptr<const void> owner, const void* data, size_t size_bytes)
    : owner_(std::move(owner)), data_(static_cast<const uint8_t*>(data)), size_bytes_(size_bytes) {
  STRATA_CHECK_MSG(size_bytes == 0 || (owner_ != nullptr && data != nullptr),
                   "SharedBytes needs an owner and data for a non-empty range");
}

SharedBytes SharedBytes::copy_of(std::span<const uint8_t> bytes) {
  return from_vector(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

}  // namespace strata::transport
