// The network side of planning: a symmetric round trip and bandwidth for every pair of
// devices, from a links file, --link flags, and a default for the pairs nobody named.
//
// Thread-safety: plain values; a LinkTable may be read from many threads, written from one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "strata/base/status.h"

namespace strata::partitioner {

struct Link {
  double rtt_ms = 1.0;
  double mbit_per_s = 1000.0;
  bool is_default = true;  // no file or flag named this pair

  // One-way time for `bytes`: half the round trip plus the bytes' serialization (s).
  double transfer_s(double bytes) const { return rtt_ms * 0.5e-3 + serialization_s(bytes); }
  // Time the link is busy sending `bytes` (s); what limits a pipeline's rate.
  double serialization_s(double bytes) const { return bytes * 8.0 / (mbit_per_s * 1e6); }
};

// Used for pairs that no file or flag names: a switched gigabit LAN.
inline constexpr double kDefaultLinkRttMs = 1.0;
inline constexpr double kDefaultLinkMbitPerS = 1000.0;

// Parses "RTT_MS,MBIT_PER_S" ("2,100"): kInvalidArgument naming `what` unless the round trip
// is >= 0 and the bandwidth > 0.
Result<Link> parse_link_value(std::string_view text, const std::string& what);

class LinkTable {
 public:
  // Every pair starts at `default_link`. `names` are the devices in --device order.
  LinkTable(std::vector<std::string> names, Link default_link);

  int n_devices() const { return static_cast<int>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  const Link& default_link() const { return default_; }
  // The link between devices `a` and `b` (indices into names(), a != b).
  const Link& get(int a, int b) const;
  // Sets both directions; marks the link as named.
  void set(int a, int b, Link link);
  // Replaces the default for every pair not set so far.
  void set_default(Link link);
  // A device's index, or -1.
  int index_of(std::string_view name) const;
  // Scales every bandwidth by `factor` (> 0): a bandwidth scenario.
  LinkTable scaled_bandwidth(double factor) const;

 private:
  std::vector<std::string> names_;
  Link default_;
  std::vector<Link> links_;  // n x n, row-major
};

// Applies a "strata.links/1" document: an optional "default" {rtt_ms, mbit_per_s} and
// "links": [{"a", "b", "rtt_ms", "mbit_per_s"}]. Returns kCorrupt for text that is not JSON,
// kInvalidArgument naming the entry for a missing figure, a pair of one device with itself,
// or a device that is not among the table's names ("links.json: links[2] names unknown device
// 'jetson' (devices: pi5, orin, laptop)").
Status apply_links_json(std::string_view json_text, const std::string& source, LinkTable* table);

// Applies a --link argument "A-B=RTT_MS,MBIT_PER_S". Device names may contain '-': the
// split must leave two known names, else kInvalidArgument naming the argument.
Status apply_link_flag(const std::string& spec, LinkTable* table);

}  // namespace strata::partitioner
