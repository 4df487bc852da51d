// Large anonymous buffers backed by transparent huge pages where the kernel offers them.
#pragma once

#include <cstdint>

#include "strata/base/status.h"

namespace strata {

// Anonymous page-aligned memory (mmap), zero-filled, released on destruction. Not copyable.
// Thread-safety: none of its own; the bytes are the caller's to share.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // `bytes` rounded up to 4096; kResourceExhausted when the OS refuses the memory. With
  // `huge_pages`, buffers of 2 MiB or more start on a 2 MiB boundary and ask for transparent
  // huge pages (MADV_HUGEPAGE), so that huge pages cover all of them but a tail under 2 MiB: an
  // O_DIRECT read into them is a few physically contiguous segments, and first touch faults
  // once per 2 MiB instead of once per 4 KiB (advisory: ordinary pages where THP is off).
  // Without, the buffer gets the system's default pages (4 KiB where THP is madvise-only).
  static Result<AlignedBuffer> allocate(int64_t bytes, bool huge_pages = true);
  uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  // mlock()s the buffer; false (and the buffer stays usable) when RLIMIT_MEMLOCK refuses.
  bool lock();

 private:
  uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  bool locked_ = false;
};

}  // namespace strata
