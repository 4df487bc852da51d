#include "direct_io.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace strata::model::stream {
namespace {

Status os_error(const std::string& path, const std::string& what, int err) {
  const std::string msg = path + ": " + what + ": " + std::strerror(err);
  if (err == ENOENT) return not_found(msg);
  if (err == EACCES || err == EPERM) return permission_denied(msg);
  return io_error(msg);
}

// A chunk of one ReadOp; `done` bytes of it are in place.
struct Piece {
  int64_t offset = 0;
  int64_t bytes = 0;
  uint8_t* dst = nullptr;
  int64_t need_end = 0;
  int64_t done = 0;
};

std::vector<Piece> split(std::span<const ReadOp> ops, int64_t chunk_bytes) {
  std::vector<Piece> pieces;
  for (const ReadOp& op : ops) {
    STRATA_CHECK(op.offset % kDirectAlign == 0 && op.bytes % kDirectAlign == 0);
    STRATA_CHECK(reinterpret_cast<uintptr_t>(op.dst) % kDirectAlign == 0);
    for (int64_t at = 0; at < op.bytes; at += chunk_bytes) {
      const int64_t n = std::min(chunk_bytes, op.bytes - at);
      pieces.push_back(Piece{op.offset + at, n, op.dst + at, op.need_end, 0});
    }
  }
  return pieces;
}

Status truncated(const StreamFile& f, int64_t at, int64_t need_end) {
  return io_error(f.path() + ": file ends at byte " + std::to_string(at) +
                  " but the weights need bytes up to " + std::to_string(need_end) +
                  " (file truncated or replaced while in use)");
}

// Accounts `got` bytes of a read of piece `p` (0 = end of file). Returns whether the piece is
// complete, or an error.
Result<bool> advance(const StreamFile& f, Piece& p, int64_t got) {
  const int64_t at = p.offset + p.done;
  if (got == 0 || (f.direct() && got % kDirectAlign != 0)) {
    // End of file (O_DIRECT returns a partial block only there): fine when only padding is
    // missing.
    const int64_t end = at + got;
    if (end < std::min(p.need_end, p.offset + p.bytes)) return truncated(f, end, p.need_end);
    p.done = p.bytes;
    return true;
  }
  p.done += got;
  return p.done == p.bytes;
}

void drop_cached(const StreamFile& f, const Piece& p) {
  if (!f.direct()) ::posix_fadvise(f.fd(), p.offset, p.bytes, POSIX_FADV_DONTNEED);
}

// Reads one piece with pread until complete.
Status pread_piece(const StreamFile& f, Piece& p) {
  while (true) {
    const ssize_t r =
        ::pread(f.fd(), p.dst + p.done, static_cast<size_t>(p.bytes - p.done), p.offset + p.done);
    if (r < 0) {
      if (errno == EINTR) continue;
      return os_error(f.path(),
                      "read of " + std::to_string(p.bytes - p.done) + " bytes at " +
                          std::to_string(p.offset + p.done) + " failed",
                      errno);
    }
    STRATA_ASSIGN_OR_RETURN(const bool complete, advance(f, p, r));
    if (complete) break;
  }
  drop_cached(f, p);
  return {};
}

// `depth` threads (the caller and depth-1 workers) take pieces from a shared counter.
class PreadEngine final : public IoEngine {
 public:
  PreadEngine(const StreamFile& f, int depth, int64_t chunk) : f_(f), chunk_(chunk) {
    for (int i = 1; i < depth; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~PreadEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  ReaderKind kind() const override { return ReaderKind::kPread; }

  Status read(std::span<const ReadOp> ops) override {
    std::vector<Piece> pieces = split(ops, chunk_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      pieces_ = &pieces;
      next_.store(0);
      error_ = {};
      busy_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return busy_ == 0; });
    pieces_ = nullptr;
    return error_;
  }

 private:
  void drain() {
    while (true) {
      const size_t i = next_.fetch_add(1);
      if (i >= pieces_->size()) return;
      Status st = pread_piece(f_, (*pieces_)[i]);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (error_.ok()) error_ = std::move(st);
        next_.store(pieces_->size());  // the others stop taking new pieces
      }
    }
  }

  void worker() {
    uint64_t seen = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      drain();
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_cv_.notify_all();
    }
  }

  const StreamFile& f_;
  int64_t chunk_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::vector<Piece>* pieces_ = nullptr;
  std::atomic<size_t> next_{0};
  Status error_;
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// One ring with up to `depth` reads submitted; a short read is resubmitted for its rest.
class UringEngine final : public IoEngine {
 public:
  UringEngine(const StreamFile& f, int depth, int64_t chunk)
      : f_(f), depth_(depth), chunk_(chunk) {}
  ~UringEngine() override { io_uring_queue_exit(&ring_); }

  Status init() {
    const int r = io_uring_queue_init(static_cast<unsigned>(depth_), &ring_, 0);
    if (r < 0) {
      return {StatusCode::kUnsupported, "io_uring is not available here (" +
                                            std::string(std::strerror(-r)) +
                                            "); use the pread reader"};
    }
    return {};
  }
  ReaderKind kind() const override { return ReaderKind::kUring; }

  Status read(std::span<const ReadOp> ops) override {
    std::vector<Piece> pieces = split(ops, chunk_);
    size_t next = 0;
    int in_flight = 0;
    Status error;
    // One completion: done, resubmitted for its rest, or an error (then nothing new is
    // submitted and the reads in flight drain).
    auto complete = [&](size_t index, int res) {
      --in_flight;
      Piece& p = pieces[index];
      if (res == -EINTR || res == -EAGAIN) {
        if (error.ok()) submit(p, index, &in_flight);
        return;
      }
      if (res < 0) {
        if (error.ok()) {
          error = os_error(f_.path(),
                           "read of " + std::to_string(p.bytes - p.done) + " bytes at " +
                               std::to_string(p.offset + p.done) + " failed",
                           -res);
        }
        return;
      }
      Result<bool> done = advance(f_, p, res);
      if (!done.ok()) {
        if (error.ok()) error = done.status();
      } else if (!*done) {
        if (error.ok()) submit(p, index, &in_flight);
      } else {
        drop_cached(f_, p);
      }
    };
    while (in_flight > 0 || (next < pieces.size() && error.ok())) {
      while (error.ok() && in_flight < depth_ && next < pieces.size()) {
        submit(pieces[next], next, &in_flight);
        ++next;
      }
      // Submitting and waiting in one call, then taking every completion that is there: one
      // system call per wake-up, however many reads finished.
      int r = io_uring_submit_and_wait(&ring_, 1);
      while (r == -EINTR) r = io_uring_submit_and_wait(&ring_, 1);
      if (r < 0) return os_error(f_.path(), "io_uring_submit_and_wait failed", -r);
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      std::vector<std::pair<size_t, int>> done;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        done.emplace_back(static_cast<size_t>(io_uring_cqe_get_data64(cqe)), cqe->res);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
      for (const auto& [index, res] : done) complete(index, res);
    }
    return error;
  }

 private:
  void submit(Piece& p, size_t index, int* in_flight) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    STRATA_CHECK(sqe != nullptr);  // never more than depth_ in flight
    io_uring_prep_read(sqe, f_.fd(), p.dst + p.done, static_cast<unsigned>(p.bytes - p.done),
                       static_cast<uint64_t>(p.offset + p.done));
    io_uring_sqe_set_data64(sqe, index);
    ++*in_flight;
  }

  const StreamFile& f_;
  int depth_;
  int64_t chunk_;
  io_uring ring_{};
};

}  // namespace

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

Result<AlignedBuffer> AlignedBuffer::allocate(int64_t bytes) {
  AlignedBuffer b;
  b.size_ = align_up(std::max<int64_t>(bytes, 1), kDirectAlign);
  void* p = ::mmap(nullptr, static_cast<size_t>(b.size_), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return resource_exhausted("cannot allocate a " + std::to_string(b.size_) +
                              "-byte read buffer: " + std::strerror(errno));
  }
  b.data_ = static_cast<uint8_t*>(p);
  return b;
}

bool AlignedBuffer::lock() {
  if (!locked_) locked_ = ::mlock(data_, static_cast<size_t>(size_)) == 0;
  return locked_;
}

StreamFile::~StreamFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<StreamFile>> StreamFile::open(const std::string& path, bool direct) {
  auto f = std::make_unique<StreamFile>();
  f->path_ = path;
  if (!direct) {
    f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f->fd_ < 0) return os_error(path, "cannot open", errno);
    f->note_ =
        "O_DIRECT not used (asked): buffered reads, each range dropped from the page "
        "cache after use";
    return f;
  }
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  int why = 0;
  if (f->fd_ >= 0) {
    // Some filesystems accept the flag at open and refuse the reads: try one block.
    void* probe = nullptr;
    if (::posix_memalign(&probe, kDirectAlign, kDirectAlign) != 0) {
      return resource_exhausted("cannot allocate a probe buffer");
    }
    const ssize_t r = ::pread(f->fd_, probe, kDirectAlign, 0);
    why = r < 0 ? errno : 0;
    std::free(probe);
    if (r >= 0) {
      f->direct_ = true;
      return f;
    }
    ::close(f->fd_);
    f->fd_ = -1;
  } else {
    why = errno;
    if (why != EINVAL) return os_error(path, "cannot open", why);
  }
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0) return os_error(path, "cannot open", errno);
  f->note_ = std::string("O_DIRECT refused (") + std::strerror(why) +
             "): buffered reads, each range dropped from the page cache after use";
  return f;
}

Result<std::unique_ptr<IoEngine>> make_io_engine(ReaderKind kind, const StreamFile& file, int depth,
                                                 int64_t chunk_bytes) {
  STRATA_CHECK(depth >= 1 && chunk_bytes >= kDirectAlign && chunk_bytes % kDirectAlign == 0);
  if (kind == ReaderKind::kUring) {
    auto e = std::make_unique<UringEngine>(file, depth, chunk_bytes);
    STRATA_RETURN_IF_ERROR(e->init());
    return std::unique_ptr<IoEngine>(std::move(e));
  }
  return std::unique_ptr<IoEngine>(std::make_unique<PreadEngine>(file, depth, chunk_bytes));
}

}  // namespace strata::model::stream
