// Small whole-file and process helpers shared by every module.
#pragma once

#include <cstdint>
#include <string>

#include "strata/base/status.h"

namespace strata {

// Returns the whole file at `path`, or kNotFound / kPermissionDenied / kIo naming the path.
Result<std::string> read_file(const std::string& path);

// Writes `data` to `path` through a temporary file in the same folder and a rename, so a
// reader never sees half a file. Returns kIo naming the path on failure.
Status write_file_atomic(const std::string& path, const std::string& data);

// Monotonic clock in nanoseconds / seconds (steady_clock). Thread-safe.
int64_t now_ns();
double now_s();
// Returns at now_ns() >= deadline_ns, at most a few microseconds late: sleeps while the
// deadline is far (with the calling thread's timer slack set to 1 us) and spins through the
// last 60 us, because even then a sleep wakes about 20 us late here, which emulated links and
// paced devices would add on every hop and step.
void sleep_until_ns(int64_t deadline_ns);

// Asks the kernel to wake the calling thread promptly: a 1 us timer slack and, where the
// scheduler is EEVDF (Linux 6.12+), a 100 us slice instead of the default 3 ms, so that a
// thread that sleeps on the network is not left waiting behind a compute thread's slice when it
// wakes (with two busy threads on two cores a woken thread here was up to 8 ms late; with the
// short slice under 0.1 ms). Its share of the CPU is unchanged. Advisory: returns false when
// the kernel refuses the slice (older kernels), which only makes wake-ups later.
bool request_prompt_wakeups();

// Peak resident set size of this process in bytes (VmHWM), or 0 when /proc is unreadable.
int64_t peak_rss_bytes();
// Current resident set size of this process in bytes (VmRSS), or 0 when unreadable.
int64_t current_rss_bytes();

// Parses a byte count with an optional binary suffix: "123", "4K", "512M", "2G", "1.5GiB".
Result<int64_t> parse_bytes(const std::string& text);

// Formats a byte count for people: "1.50 GiB", "812.0 MiB", "512 B".
std::string format_bytes(double bytes);

}  // namespace strata
