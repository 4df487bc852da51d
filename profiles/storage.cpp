// Storage: read bandwidth by chunk size, sequential and random, from a temporary file on the
// filesystem that holds the models, bypassing the page cache with O_DIRECT.
//
// The file never has a name that could outlive the probe: it is created with O_TMPFILE, or
// created and unlinked at once where O_TMPFILE is not supported, so an error, Ctrl-C or even
// SIGKILL leaves nothing behind. Its bytes are pseudo-random so that a compressing or
// deduplicating filesystem cannot shortcut the reads.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <random>

#include "strata/base/io.h"
#include "strata/profiles/probes.h"

namespace strata::profiles {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

const char* fs_name(int64_t magic) {
  switch (static_cast<uint32_t>(magic)) {
    case 0xEF53u: return "ext4";
    case 0x01021994u: return "tmpfs";
    case 0x858458F6u: return "ramfs";
    case 0x58465342u: return "xfs";
    case 0x9123683Eu: return "btrfs";
    case 0xF2F52010u: return "f2fs";
    case 0x6969u: return "nfs";
    case 0x794C7630u: return "overlayfs";
    case 0x4D44u: return "vfat";
    case 0x2011BAB0u: return "exfat";
    case 0x73717368u: return "squashfs";
    case 0x2FC12FC1u: return "zfs";
    case 0x65735546u: return "fuse";
    default: return "unknown";
  }
}

bool memory_backed(const std::string& fs) { return fs == "tmpfs" || fs == "ramfs"; }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// A file in `dir` with no name (see the file comment). Returns the descriptor or kIo.
Result<int> create_anonymous_file(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string tmpl = dir + "/.strata-profile-XXXXXX";
  fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == EACCES || err == EPERM || err == EROFS) {
      return permission_denied(dir + ": cannot create a temporary file: " + errno_text(err));
    }
    return io_error(dir + ": cannot create a temporary file: " + errno_text(err));
  }
  ::unlink(tmpl.c_str());
  return fd;
}

Status fill_file(int fd, int64_t bytes, const std::string& dir) {
  constexpr size_t kBlock = 4 << 20;
  std::vector<uint64_t> block(kBlock / sizeof(uint64_t));
  std::mt19937_64 rng(0x5717a7a);
  for (int64_t done = 0; done < bytes;) {
    for (auto& w : block) w = rng();
    const size_t n = static_cast<size_t>(std::min<int64_t>(kBlock, bytes - done));
    const char* p = reinterpret_cast<const char*>(block.data());
    size_t off = 0;
    while (off < n) {
      const ssize_t w = ::pwrite(fd, p + off, n - off, done + static_cast<off_t>(off));
      if (w < 0) {
        if (errno == EINTR) continue;
        return io_error(dir + ": writing the temporary test file: " + errno_text(errno));
      }
      off += static_cast<size_t>(w);
    }
    done += static_cast<int64_t>(n);
  }
  if (::fsync(fd) != 0) return io_error(dir + ": fsync of the test file: " + errno_text(errno));
  // Clean pages may now be dropped; the buffered fallback relies on it.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  return {};
}

}  // namespace

std::vector<int64_t> storage_chunk_sizes() {
  std::vector<int64_t> out;
  for (int64_t c = 4096; c <= (int64_t{4} << 20); c *= 2) out.push_back(c);
  return out;
}

Result<Storage> probe_storage(const StorageOptions& opt,
                              const std::function<void(const std::string&)>& progress) {
  Storage out;
  out.path = opt.path;
  struct stat st {};
  if (::stat(opt.path.c_str(), &st) != 0) {
    return not_found(opt.path + ": storage path: " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) return invalid_argument(opt.path + ": storage path is not a folder");
  struct statfs sfs {};
  if (::statfs(opt.path.c_str(), &sfs) == 0) {
    out.filesystem = fs_name(sfs.f_type);
    const double free_bytes = static_cast<double>(sfs.f_bavail) * static_cast<double>(sfs.f_bsize);
    if (free_bytes < 2.0 * static_cast<double>(opt.file_bytes)) {
      return resource_exhausted(opt.path + ": " + format_bytes(free_bytes) +
                                " free, the storage probe needs twice " +
                                format_bytes(static_cast<double>(opt.file_bytes)));
    }
  }
  STRATA_ASSIGN_OR_RETURN(const int raw_fd, create_anonymous_file(opt.path));
  const Fd fd(raw_fd);
  if (progress) progress("storage: writing a " + format_bytes(opt.file_bytes) + " test file");
  STRATA_RETURN_IF_ERROR(fill_file(fd.get(), opt.file_bytes, opt.path));
  out.file_bytes = opt.file_bytes;

  const int64_t max_chunk = opt.chunks.empty() ? 4096 : opt.chunks.back();
  void* raw_buf = nullptr;
  if (::posix_memalign(&raw_buf, 4096, static_cast<size_t>(max_chunk)) != 0) {
    return resource_exhausted("storage probe: cannot allocate a read buffer");
  }
  const std::unique_ptr<void, FreeDeleter> buf(raw_buf);

  // O_DIRECT is switched on for the open descriptor; a filesystem that refuses it fails the
  // fcntl or the first read with EINVAL.
  std::string refused;
  if (opt.allow_direct) {
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (::fcntl(fd.get(), F_SETFL, flags | O_DIRECT) != 0) {
      refused = "fcntl(O_DIRECT): " + errno_text(errno);
    } else if (::pread(fd.get(), buf.get(), 4096, 0) < 0) {
      refused = "O_DIRECT pread: " + errno_text(errno);
      ::fcntl(fd.get(), F_SETFL, flags);
    }
  } else {
    refused = "O_DIRECT not tried (test seam)";
  }
  out.direct_io = refused.empty();
  if (out.direct_io) {
    out.cache_policy = "O_DIRECT reads bypass the page cache";
  } else {
    out.cache_policy = "O_DIRECT refused (" + refused +
                       "); buffered reads after posix_fadvise(DONTNEED) before each batch";
  }
  if (memory_backed(out.filesystem)) {
    out.cache_policy += "; " + out.filesystem + " keeps files in RAM: no storage device is read";
  }
  const std::string method = std::string(out.direct_io ? "O_DIRECT pread" : "buffered pread") +
                             " on " + out.filesystem + " at " + opt.path;

  std::mt19937_64 rng(42);
  int64_t seq_pos = 0;  // kept across chunk sizes so no region is read twice in a row
  for (const bool random : {false, true}) {
    for (const int64_t chunk : opt.chunks) {
      STRATA_CHECK(chunk % 4096 == 0 && chunk <= max_chunk && chunk <= opt.file_bytes);
      if (progress) {
        progress(std::string("storage ") + (random ? "random" : "sequential") + " read, " +
                 format_bytes(static_cast<double>(chunk)) + " chunks");
      }
      const int64_t n_slots = opt.file_bytes / chunk;
      std::uniform_int_distribution<int64_t> slot(0, n_slots - 1);
      std::vector<double> samples;
      const double batch_s = opt.seconds_per_size / opt.batches;
      for (int b = 0; b < opt.batches; ++b) {
        if (!out.direct_io) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
        int64_t bytes = 0;
        const double t0 = now_s();
        double t = t0;
        do {
          int64_t off = 0;
          if (random) {
            off = slot(rng) * chunk;
          } else {
            seq_pos = (seq_pos + chunk - 1) / chunk * chunk;
            if (seq_pos + chunk > opt.file_bytes) seq_pos = 0;
            off = seq_pos;
            seq_pos += chunk;
          }
          const ssize_t r = ::pread(fd.get(), buf.get(), static_cast<size_t>(chunk), off);
          if (r < 0) {
            if (errno == EINTR) continue;
            return io_error(opt.path + ": reading the test file at " + std::to_string(off) + ": " +
                            errno_text(errno));
          }
          bytes += r;
          t = now_s();
        } while (t - t0 < batch_s);
        samples.push_back(static_cast<double>(bytes) / (t - t0) / 1e6);
      }
      auto& table = random ? out.rand_read_mb_per_s : out.seq_read_mb_per_s;
      table[std::to_string(chunk)] = measured_figure(
          samples, "MB/s",
          method + ", " + (random ? "random" : "sequential") + " " + std::to_string(chunk) +
              " B reads over a " + format_bytes(static_cast<double>(opt.file_bytes)) + " file");
    }
  }
  return out;
}

}  // namespace strata::profiles
