#include "strata/base/aligned_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace strata {

AlignedBuffer::~AlignedBuffer() {
  if (data_ != nullptr) ::munmap(data_, static_cast<size_t>(size_));
}

AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept
    : data_(o.data_), size_(o.size_), locked_(o.locked_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) ::munmap(data_, static_cast<size_t>(size_));
    data_ = o.data_;
    size_ = o.size_;
    locked_ = o.locked_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Result<AlignedBuffer> AlignedBuffer::allocate(int64_t bytes, bool huge_pages) {
  AlignedBuffer b;
  b.size_ = (std::max<int64_t>(bytes, 1) + 4095) / 4096 * 4096;
  constexpr int64_t kHuge = int64_t{2} << 20;
  // Reserve a huge page more than needed and give back what lies outside the aligned range
  // (address space only: nothing was touched).
  const int64_t reserve = huge_pages && b.size_ >= kHuge ? b.size_ + kHuge : b.size_;
  void* p = ::mmap(nullptr, static_cast<size_t>(reserve), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return resource_exhausted("cannot allocate a " + std::to_string(b.size_) +
                              "-byte buffer: " + std::strerror(errno));
  }
  auto* base = static_cast<uint8_t*>(p);
  if (reserve > b.size_) {
    const auto at = reinterpret_cast<uintptr_t>(base);
    const auto aligned = (at + static_cast<uintptr_t>(kHuge) - 1) / kHuge * kHuge;
    const auto head = static_cast<size_t>(aligned - at);
    if (head > 0) ::munmap(base, head);
    const size_t tail = static_cast<size_t>(reserve - b.size_) - head;
    if (tail > 0) ::munmap(base + head + b.size_, tail);
    base += head;
  }
  b.data_ = base;
  p = base;
  // Huge pages make a read's buffer a few physically contiguous segments instead of one per
  // 4 KiB page: a virtio or NVMe queue takes a bounded number of segments per request (254 on
  // this machine's virtio disk), so a 4 MiB O_DIRECT read into 4 KiB pages is split into five
  // requests, into 2 MiB pages it stays one. Advisory: ignored where THP is off.
  if (huge_pages && b.size_ >= kHuge) ::madvise(p, static_cast<size_t>(b.size_), MADV_HUGEPAGE);
  return b;
}

bool AlignedBuffer::lock() {
  if (!locked_) locked_ = ::mlock(data_, static_cast<size_t>(size_)) == 0;
  return locked_;
}

}  // namespace strata
