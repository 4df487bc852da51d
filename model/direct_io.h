// Reading weights from flash without the page cache (private to the model library): a file
// opened with O_DIRECT (or buffered reads that drop their pages again where the filesystem
// refuses O_DIRECT), page-aligned anonymous buffers, and two engines that keep several large
// reads in flight: a pool of threads calling pread, and io_uring through liburing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "strata/base/aligned_buffer.h"
#include "strata/base/status.h"
#include "strata/model/weight_store.h"

namespace strata::model::stream {

// O_DIRECT needs offsets, lengths and buffer addresses aligned to the device's logical block
// (512 or 4096 bytes); 4096 covers both and is the page size the buffers come in.
inline constexpr int64_t kDirectAlign = 4096;

inline int64_t align_down(int64_t v, int64_t a) { return v / a * a; }
inline int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

// The weights file opened for streaming. `direct` says whether O_DIRECT was accepted; when it
// was refused (tmpfs, some network filesystems) the file is read buffered and every read range
// is dropped from the page cache with POSIX_FADV_DONTNEED right after, and `note` says so.
class StreamFile {
 public:
  StreamFile() = default;
  ~StreamFile();
  StreamFile(const StreamFile&) = delete;
  StreamFile& operator=(const StreamFile&) = delete;

  // `direct` false skips O_DIRECT (the note says it was asked). Errors: kNotFound /
  // kPermissionDenied / kIo naming the path.
  static Result<std::unique_ptr<StreamFile>> open(const std::string& path, bool direct);
  int fd() const { return fd_; }
  bool direct() const { return direct_; }
  const std::string& path() const { return path_; }
  const std::string& note() const { return note_; }

 private:
  int fd_ = -1;
  bool direct_ = false;
  std::string path_;
  std::string note_;
};

// One read: `bytes` (a multiple of kDirectAlign) from file offset `offset` (aligned) into
// `dst` (aligned). Bytes past `need_end` (an absolute offset) are padding that may lie past
// the end of the file; a file ending before need_end is truncated and fails the read.
struct ReadOp {
  int64_t offset = 0;
  int64_t bytes = 0;
  uint8_t* dst = nullptr;
  int64_t need_end = 0;
};

// Reads queued groups of ReadOps, each split into chunks of at most `chunk_bytes`, keeping up
// to `depth` chunks in flight across groups, in the order queued: the storage stays busy from
// one group to the next without waiting for anyone to come back for more.
class IoEngine {
 public:
  virtual ~IoEngine() = default;
  virtual ReaderKind kind() const = 0;
  // Queues `ops` as one group and returns at once. `done` runs exactly once, on one of the
  // engine's threads, when every read of the group has completed (ok) or when the group failed
  // (kIo naming the path, the offset and the OS error, or the truncation: "file ends at N,
  // needs M"), or with kUnavailable when the engine is destroyed first. Thread-safe.
  virtual void submit(std::vector<ReadOp> ops, std::function<void(Status)> done) = 0;
  // Seconds so far with at least one read in flight. Thread-safe.
  virtual double busy_s() const = 0;
  // Queues `ops` and waits for them.
  Status read(std::span<const ReadOp> ops);
};

// `file` must outlive the engine. kUnsupported when io_uring is not available (old kernel,
// seccomp), kResourceExhausted / kIo when threads or the ring cannot be set up.
Result<std::unique_ptr<IoEngine>> make_io_engine(ReaderKind kind, const StreamFile& file, int depth,
                                                 int64_t chunk_bytes);

}  // namespace strata::model::stream
