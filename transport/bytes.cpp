#include "strata/transport/bytes.h"

#include <cstring>
#include <new>

namespace strata::transport {

SharedBytes::SharedBytes(std::shared_ptr<const void> owner, const void* data, size_t size_bytes)
    : owner_(std::move(owner)), data_(static_cast<const uint8_t*>(data)), size_bytes_(size_bytes) {
  STRATA_CHECK_MSG(size_bytes == 0 || (owner_ != nullptr && data != nullptr),
                   "SharedBytes needs an owner and data for a non-empty range");
}

SharedBytes SharedBytes::copy_of(std::span<const uint8_t> bytes) {
  return from_vector(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

SharedBytes SharedBytes::aligned_to(size_t alignment) const {
  STRATA_CHECK_MSG(alignment > 0 && alignment <= 4096 && (alignment & (alignment - 1)) == 0,
                   "alignment must be a power of two up to 4096");
  if (reinterpret_cast<uintptr_t>(data_) % alignment == 0) return *this;
  const std::align_val_t align{alignment};
  auto* copy = static_cast<uint8_t*>(::operator new(size_bytes_, align));
  std::memcpy(copy, data_, size_bytes_);
  std::shared_ptr<const void> owner(
      copy, [align](const void* p) { ::operator delete(const_cast<void*>(p), align); });
  return SharedBytes(std::move(owner), copy, size_bytes_);
}

}  // namespace strata::transport
