// The profiler's seams to the machine: every read of /sys and /proc goes through a SysTree
// rooted at "/" on a live system or at a recorded tree in tests (`--sysfs-root DIR`), and the
// power sampler's time goes through a Clock that tests replace.
//
// A recorded tree is a plain copy of the files a probe reads, plus two conventions that a copy
// cannot carry by itself (both ignored on the live root "/"):
//   * `<root>/.strata-denied` lists absolute paths, one per line, that read as permission
//     denied: the recording user could not read them (energy_uj is root-only since Linux 5.10),
//     and git keeps no file modes while tests may run as root.
//   * `<path>.series` holds values sampled over time, one per line: each read of `<path>`
//     returns the next line and the last line repeats, so a counter that wraps, or a rail
//     whose current changes, can be replayed against a fake clock.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "strata/base/status.h"

namespace strata::profiles {

class SysTree {
 public:
  // `root` "/" (or "") reads the live system; anything else is a recorded tree.
  explicit SysTree(std::string root = "/");

  bool live() const { return root_.empty(); }
  // The root as given ("/" for the live system).
  std::string root() const { return root_.empty() ? "/" : root_; }
  // Where `path` (absolute, e.g. "/sys/class/thermal") lies on this machine's filesystem.
  std::string host_path(const std::string& path) const { return root_ + path; }

  // The file's text with trailing whitespace removed, or kNotFound / kPermissionDenied / kIo
  // naming the path. Thread-safe (series cursors are guarded).
  Result<std::string> read(const std::string& path);
  // read() parsed as a decimal integer (or hex with 0x); kCorrupt when it is not one.
  Result<int64_t> read_int(const std::string& path);
  // Names in directory `path`, sorted, without "." and ".." and with ".series" stripped;
  // empty when the directory does not exist or cannot be read. Thread-safe.
  std::vector<std::string> list(const std::string& path) const;
  // True when `path` (or its recorded series) exists. Thread-safe.
  bool exists(const std::string& path) const;
  // Whether read() of `path` would be allowed, without reading it (a recorded series keeps
  // its place): ok, or kPermissionDenied / kNotFound naming the path. On the live root this
  // asks the kernel with access(R_OK), which answers for this process's credentials.
  Status check_readable(const std::string& path) const;
  // Makes `path` read as permission denied from now on, as `.strata-denied` does (tests).
  // Not thread-safe with reads.
  void deny(const std::string& path) { denied_.insert(path); }

 private:
  std::string root_;  // "" for the live system, else the tree without a trailing '/'
  std::set<std::string> denied_;
  std::mutex mu_;
  std::map<std::string, size_t> series_cursor_;
};

// Monotonic time for samplers. Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double now_s() = 0;
  // Returns at or after time `t_s` (at once if it has passed).
  virtual void sleep_until_s(double t_s) = 0;
};

// The process's steady clock. The returned object lives for the whole program.
Clock& system_clock();

}  // namespace strata::profiles
