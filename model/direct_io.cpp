#include "direct_io.h"

#include "strata/base/io.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
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

// A group of reads queued together, and its completion.
struct Group {
  int64_t pending = 0;  // pieces not yet complete
  Status error;
  std::function<void(Status)> done;
};

// A chunk of one ReadOp; `done` bytes of it are in place.
struct Piece {
  int64_t offset = 0;
  int64_t bytes = 0;
  uint8_t* dst = nullptr;
  int64_t need_end = 0;
  int64_t done = 0;
  std::shared_ptr<Group> group;
};

std::vector<Piece> split(std::span<const ReadOp> ops, int64_t chunk_bytes,
                         const std::shared_ptr<Group>& group) {
  std::vector<Piece> pieces;
  for (const ReadOp& op : ops) {
    STRATA_CHECK(op.offset % kDirectAlign == 0 && op.bytes % kDirectAlign == 0);
    STRATA_CHECK(reinterpret_cast<uintptr_t>(op.dst) % kDirectAlign == 0);
    for (int64_t at = 0; at < op.bytes; at += chunk_bytes) {
      const int64_t n = std::min(chunk_bytes, op.bytes - at);
      pieces.push_back(Piece{op.offset + at, n, op.dst + at, op.need_end, 0, group});
    }
  }
  group->pending = static_cast<int64_t>(pieces.size());
  return pieces;
}

Status truncated(const StreamFile& f, int64_t at, int64_t need_end) {
  return io_error(f.path() + ": file ends at byte " + std::to_string(at) +
                  " but the weights need bytes up to " + std::to_string(need_end) +
                  " (file truncated or replaced while in use)");
}

Status read_failed(const StreamFile& f, const Piece& p, int err) {
  return os_error(f.path(),
                  "read of " + std::to_string(p.bytes - p.done) + " bytes at " +
                      std::to_string(p.offset + p.done) + " failed",
                  err);
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
      return read_failed(f, p, errno);
    }
    STRATA_ASSIGN_OR_RETURN(const bool complete, advance(f, p, r));
    if (complete) break;
  }
  drop_cached(f, p);
  return {};
}

// The queue both engines share: pieces in submission order, the time with reads in flight,
// and group completion.
class Queue {
 public:
  void push(std::vector<Piece> pieces) {
    std::lock_guard<std::mutex> lock(mu_);
    for (Piece& p : pieces) q_.push_back(std::move(p));
    cv_.notify_all();
  }
  // Blocks until a piece is queued or stop(); false on stop with nothing queued.
  bool pop(Piece* out, bool wait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (wait) cv_.wait(lock, [&] { return stop_ || !q_.empty(); });
    if (q_.empty()) return false;
    *out = std::move(q_.front());
    q_.pop_front();
    if (active_++ == 0) busy_since_ = now_s();
    return true;
  }
  // A piece is finished (ok or not): completes its group when it was the last.
  void finish(Piece& p, Status st) {
    std::function<void(Status)> done;
    Status result;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) busy_s_ += now_s() - busy_since_;
      Group& g = *p.group;
      if (!st.ok() && g.error.ok()) g.error = std::move(st);
      if (--g.pending == 0) {
        done = std::move(g.done);
        result = g.error;
      }
    }
    if (done) done(result);
  }
  void stop() {
    std::deque<Piece> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      left.swap(q_);
      active_ += static_cast<int64_t>(left.size());
    }
    cv_.notify_all();
    for (Piece& p : left) finish(p, unavailable("the reader was shut down"));
  }
  // Whether the piece's group already failed (its other pieces are then skipped).
  bool failed(const Piece& p) const {
    std::lock_guard<std::mutex> lock(mu_);
    return !p.group->error.ok();
  }
  double busy_s() const {
    std::lock_guard<std::mutex> lock(mu_);
    return busy_s_ + (active_ > 0 ? now_s() - busy_since_ : 0.0);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Piece> q_;
  bool stop_ = false;
  int64_t active_ = 0;
  double busy_since_ = 0;
  double busy_s_ = 0;
};

// What both engines share: a group's reads split into pieces of at most `chunk_` bytes on a
// Queue that the engine's own threads drain.
class QueuedEngine : public IoEngine {
 public:
  double busy_s() const override { return queue_.busy_s(); }
  void submit(std::vector<ReadOp> ops, std::function<void(Status)> done) override {
    auto g = std::make_shared<Group>();
    g->done = std::move(done);
    std::vector<Piece> pieces = split(ops, chunk_, g);
    if (pieces.empty()) {
      g->done(Status());
      return;
    }
    queue_.push(std::move(pieces));
  }

 protected:
  explicit QueuedEngine(int64_t chunk) : chunk_(chunk) {}

  int64_t chunk_;
  Queue queue_;
};

// `depth` threads, each taking the next piece and reading it with pread.
class PreadEngine final : public QueuedEngine {
 public:
  PreadEngine(const StreamFile& f, int depth, int64_t chunk) : QueuedEngine(chunk), f_(f) {
    for (int i = 0; i < depth; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~PreadEngine() override {
    queue_.stop();
    for (std::thread& t : workers_) t.join();
  }
  ReaderKind kind() const override { return ReaderKind::kPread; }

 private:
  void worker() {
    Piece p;
    while (queue_.pop(&p, true)) {
      Status st = queue_.failed(p) ? Status() : pread_piece(f_, p);
      queue_.finish(p, std::move(st));
    }
  }

  const StreamFile& f_;
  std::vector<std::thread> workers_;
};

// One thread owning a ring with up to `depth` reads submitted. It sleeps in the kernel while
// reads are in flight and on the queue when none are; new pieces queued while reads are in
// flight are taken at the next completion. A short read is resubmitted for its rest.
class UringEngine final : public QueuedEngine {
 public:
  UringEngine(const StreamFile& f, int depth, int64_t chunk)
      : QueuedEngine(chunk), f_(f), depth_(depth) {}
  ~UringEngine() override {
    queue_.stop();
    if (thread_.joinable()) thread_.join();
    io_uring_queue_exit(&ring_);
  }

  Status init() {
    const int r = io_uring_queue_init(static_cast<unsigned>(depth_), &ring_, 0);
    if (r < 0) {
      return {StatusCode::kUnsupported, "io_uring is not available here (" +
                                            std::string(std::strerror(-r)) +
                                            "); use the pread reader"};
    }
    slots_.resize(static_cast<size_t>(depth_));
    thread_ = std::thread([this] { loop(); });
    return {};
  }
  ReaderKind kind() const override { return ReaderKind::kUring; }

 private:
  void prep(size_t slot) {
    Piece& p = slots_[slot];
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    STRATA_CHECK(sqe != nullptr);  // never more than depth_ in flight
    io_uring_prep_read(sqe, f_.fd(), p.dst + p.done, static_cast<unsigned>(p.bytes - p.done),
                       static_cast<uint64_t>(p.offset + p.done));
    io_uring_sqe_set_data64(sqe, slot);
  }

  // One completion of the read in `slot`: finished, resubmitted for its rest, or failed.
  void complete(size_t slot, int res) {
    Piece& p = slots_[slot];
    if (res == -EINTR || res == -EAGAIN) {
      prep(slot);
      return;
    }
    Status st;
    if (res < 0) {
      st = read_failed(f_, p, -res);
    } else {
      Result<bool> done = advance(f_, p, res);
      if (done.ok() && !*done) {
        prep(slot);
        return;
      }
      if (!done.ok()) st = done.status();
      if (st.ok()) drop_cached(f_, p);
    }
    queue_.finish(p, std::move(st));
    p.group.reset();
    free_.push_back(slot);
  }

  void loop() {
    for (size_t i = 0; i < slots_.size(); ++i) free_.push_back(i);
    int in_flight = 0;
    while (true) {
      // Fill the ring; block on the queue only when nothing is in flight.
      while (!free_.empty()) {
        const size_t slot = free_.back();
        if (!queue_.pop(&slots_[slot], in_flight == 0)) break;
        free_.pop_back();
        if (queue_.failed(slots_[slot])) {  // its group already failed
          queue_.finish(slots_[slot], Status());
          slots_[slot].group.reset();
          free_.push_back(slot);
          continue;
        }
        prep(slot);
        ++in_flight;
      }
      if (in_flight == 0) return;  // stopped
      int r = io_uring_submit_and_wait(&ring_, 1);
      while (r == -EINTR) r = io_uring_submit_and_wait(&ring_, 1);
      STRATA_CHECK_MSG(r >= 0, std::string("io_uring_submit_and_wait: ") + std::strerror(-r));
      io_uring_cqe* cqe = nullptr;
      unsigned head = 0;
      unsigned seen = 0;
      std::vector<std::pair<size_t, int>> done;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        done.emplace_back(static_cast<size_t>(io_uring_cqe_get_data64(cqe)), cqe->res);
        ++seen;
      }
      io_uring_cq_advance(&ring_, seen);
      for (const auto& [slot, res] : done) {
        const size_t before = free_.size();
        complete(slot, res);
        if (free_.size() > before) --in_flight;
      }
    }
  }

  const StreamFile& f_;
  int depth_;
  io_uring ring_{};
  std::vector<Piece> slots_;  // the read in flight in each ring slot
  std::vector<size_t> free_;
  std::thread thread_;
};

}  // namespace

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

Status IoEngine::read(std::span<const ReadOp> ops) {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  Status result;
  submit(std::vector<ReadOp>(ops.begin(), ops.end()), [&](Status st) {
    std::lock_guard<std::mutex> lock(mu);
    result = std::move(st);
    finished = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return finished; });
  return result;
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
