// The readable summary `strata profile` prints; the JSON holds everything, this the gist.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "strata/base/io.h"
#include "strata/profiles/profiler.h"

namespace strata::profiles {
namespace {

std::string num(double v) {
  char b[32];
  if (v >= 100) {
    std::snprintf(b, sizeof b, "%.0f", v);
  } else if (v >= 10) {
    std::snprintf(b, sizeof b, "%.1f", v);
  } else {
    std::snprintf(b, sizeof b, "%.2f", v);
  }
  return b;
}

// "21.4 GB/s", "21.4 GB/s (p10 20.9, p90 21.8)" or "n/a (permission_denied)".
std::string fig(const Figure& f, bool spread = false) {
  if (!f.available()) {
    return std::string("n/a (") + (f.reason ? reason_name(*f.reason) : "unavailable") + ")";
  }
  std::string s = f.unit == "bytes"   ? format_bytes(*f.value)
                  : f.unit == "count" ? std::to_string(std::llround(*f.value))
                                      : num(*f.value) + " " + f.unit;
  if (f.provenance != Provenance::kMeasured) {
    s += std::string(" [") + provenance_name(f.provenance) + "]";
  }
  if (spread && f.stats && f.stats->n > 1) {
    s += " (p10 " + num(f.stats->p10) + ", p90 " + num(f.stats->p90) + ")";
  }
  return s;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

}  // namespace

std::string profile_summary(const Profile& p) {
  std::ostringstream o;
  const Device& d = p.device;
  o << "profile " << p.name << "  (" << p.created << ")\n";
  o << "device   " << d.cpu.brand << " (" << d.cpu.vendor << ", " << d.arch << ", " << d.cpu.source
    << ")\n";
  o << "         cores " << fig(d.cores) << ", logical " << fig(d.logical_cpus);
  for (const auto& [k, f] : d.caches) o << ", " << k.substr(0, k.find('_')) << " " << fig(f);
  o << "\n         isa:";
  for (const auto& i : d.isa) o << " " << i;
  o << "\n         board: " << d.board_model.value_or("unknown") << "; "
    << (d.virtualized ? "virtualized (" + d.hypervisor.value_or("?") + ")" : "bare metal") << "\n";

  o << "compute  kernels " << (p.compute.kernel_isa.empty() ? "-" : p.compute.kernel_isa)
    << ", GFLOP/s with 1 / " << p.compute.threads_all << " threads\n";
  for (const auto& [dtype, gemv] : p.compute.gemv_gflops) {
    o << "         " << pad(dtype, 5) << " gemv " << pad(fig(gemv.threads_1), 16) << " / "
      << pad(fig(gemv.threads_all), 16);
    const auto it = p.compute.gemm_gflops.find(dtype);
    if (it != p.compute.gemm_gflops.end()) {
      o << "  gemm " << pad(fig(it->second.threads_1), 16) << " / " << fig(it->second.threads_all);
    }
    o << "\n";
  }
  const ThreadFigures& attn = p.compute.attention_gflops;
  if (attn.threads_1.available() || attn.threads_all.available()) {
    o << "         attention (f32 KV, 256 positions) " << fig(attn.threads_1) << " / "
      << fig(attn.threads_all) << "\n";
  }

  const Memory& m = p.memory;
  o << "memory   total " << fig(m.total_bytes) << ", available " << fig(m.available_bytes);
  if (m.cgroup_limit_source) o << " (cgroup " << *m.cgroup_limit_source << ")";
  o << "\n         arrays " << format_bytes(static_cast<double>(m.array_bytes))
    << "; GB/s with 1 / all threads\n";
  o << "         read  " << fig(m.read_gb_per_s.threads_1) << " / "
    << fig(m.read_gb_per_s.threads_all, true) << "\n";
  o << "         copy  " << fig(m.copy_gb_per_s.threads_1) << " / "
    << fig(m.copy_gb_per_s.threads_all, true) << "\n";
  o << "         triad " << fig(m.triad_gb_per_s.threads_1) << " / "
    << fig(m.triad_gb_per_s.threads_all, true) << "\n";

  const Storage& s = p.storage;
  o << "storage  " << s.path << " (" << (s.filesystem.empty() ? "?" : s.filesystem) << ", "
    << (s.direct_io ? "O_DIRECT" : "buffered") << "), MB/s sequential / random\n";
  std::vector<std::pair<int64_t, std::string>> chunks;  // numeric order, not the map's
  for (const auto& entry : s.seq_read_mb_per_s) {
    chunks.emplace_back(std::atoll(entry.first.c_str()), entry.first);
  }
  std::sort(chunks.begin(), chunks.end());
  for (const auto& [bytes, chunk] : chunks) {
    const Figure& seq = s.seq_read_mb_per_s.at(chunk);
    const auto it = s.rand_read_mb_per_s.find(chunk);
    o << "         " << pad(format_bytes(static_cast<double>(bytes)), 10) << " "
      << pad(fig(seq), 14) << " / " << (it == s.rand_read_mb_per_s.end() ? "-" : fig(it->second))
      << "\n";
  }

  const Thermal& t = p.thermal;
  o << "thermal  " << t.sensors.size() << " sensors, " << t.zones.size() << " zones, cpufreq "
    << (t.cpufreq.empty() ? "not present" : std::to_string(t.cpufreq.size()) + " cpus") << "\n";
  for (const auto& z : t.zones)
    o << "         " << z.zone << " " << z.type << " " << fig(z.temp_c) << "\n";
  o << "         sustained " << fig(t.sustain_s) << ": burst " << fig(t.burst_gflops)
    << ", sustained " << fig(t.sustained_gflops) << ", clock drop " << fig(t.freq_drop_pct)
    << ", throttle after " << fig(t.time_to_throttle_s) << "\n";
  for (const auto& c : t.throttle) {
    if (c.name == "get_throttled") {  // a bit field, read as the firmware prints it
      char b[64];
      std::snprintf(b, sizeof b, "0x%llx -> 0x%llx", static_cast<unsigned long long>(c.before),
                    static_cast<unsigned long long>(c.after));
      o << "         " << c.name << " " << b;
    } else {
      o << "         " << c.name << " " << c.before << " -> " << c.after;
    }
    for (const auto& f : c.flags) o << " " << f;
    o << "\n";
  }

  const Power& pw = p.power;
  o << "power    boundary " << boundary_name(pw.boundary) << ": idle " << fig(pw.idle_watts)
    << ", load " << fig(pw.load_watts) << ", " << fig(pw.joules_per_gflop) << "\n";
  for (const auto& src : pw.sources) {
    o << "         " << src.kind << " " << src.name << " (" << boundary_name(src.boundary)
      << "): idle " << fig(src.idle_watts) << ", load " << fig(src.load_watts) << "\n";
  }
  if (p.derived) {
    const Prediction& r = *p.derived;
    o << "predict  " << r.model << " (" << r.dtype << "): decode at ctx " << r.ctx << " "
      << fig(r.decode_tok_per_s) << " (" << (r.decode_bound.empty() ? "?" : r.decode_bound)
      << "-bound), prefill " << fig(r.prefill_tok_per_s) << ", " << fig(r.joules_per_token) << "\n";
  }
  for (const auto& n : p.notes) o << "note     " << n << "\n";
  return o.str();
}

}  // namespace strata::profiles
