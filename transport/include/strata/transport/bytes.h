// SharedBytes: an immutable byte range kept alive by a shared owner. It is how tensor payloads
// cross the transport without copies: on send, the socket holds a reference until the bytes
// are on the wire; on receive, the range points into the received ZeroMQ message.
// Thread-safety: a value type; copies may be used and dropped from any thread (the owner's
// reference count is atomic). The bytes themselves must not be written while shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "strata/base/status.h"

namespace strata::transport {

class SharedBytes {
 public:
  SharedBytes() = default;  // empty: no payload
  // `data` .. `data + size_bytes` stays valid while `owner` lives. owner may be null only when
  // size_bytes is 0.
  SharedBytes(std::shared_ptr<const void> owner, const void* data, size_t size_bytes);

  // Takes the vector (no copy of its elements); it is freed when the last reference goes.
  template <class T>
  static SharedBytes from_vector(std::vector<T> values) {
    auto owner = std::make_shared<const std::vector<T>>(std::move(values));
    return SharedBytes(owner, owner->data(), owner->size() * sizeof(T));
  }
  // Copies `bytes` into a new owner (for small messages and tests).
  static SharedBytes copy_of(std::span<const uint8_t> bytes);

  const uint8_t* data() const { return data_; }
  size_t size_bytes() const { return size_bytes_; }
  bool empty() const { return size_bytes_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_bytes_}; }
  const std::shared_ptr<const void>& owner() const { return owner_; }

  // This range when data() is a multiple of `alignment` (a power of two, at most 4096), else a
  // copy into a new buffer that is. Received payloads of a few hundred bytes can sit at any
  // address (ZeroMQ decodes small frames in place in its receive batch); see docs/WIRE.md.
  SharedBytes aligned_to(size_t alignment) const;

  // The bytes as elements of T without a copy. Received payloads sit wherever ZeroMQ put them,
  // so this can fail: returns kInvalidArgument when data() is not aligned for T or the size is
  // not a multiple of sizeof(T) (aligned_to(alignof(T)) first makes the alignment hold). The view
  // lives while this object does.
  template <class T>
  Result<std::span<const T>> view_as() const {
    if (reinterpret_cast<uintptr_t>(data_) % alignof(T) != 0 || size_bytes_ % sizeof(T) != 0) {
      return invalid_argument("payload of " + std::to_string(size_bytes_) +
                              " bytes is not an aligned array of " + std::to_string(sizeof(T)) +
                              "-byte elements");
    }
    return std::span<const T>(reinterpret_cast<const T*>(data_), size_bytes_ / sizeof(T));
  }

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_bytes_ = 0;
};

}  // namespace strata::transport
