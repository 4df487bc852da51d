#include "headroom.h"

#include <algorithm>
#include <cstdio>

namespace strata::agent {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

EmulationHeadroom measure_headroom(const std::vector<transport::StepStats>& steps,
                                   const std::function<bool(uint64_t step_id)>& decode_only) {
  EmulationHeadroom h;
  std::vector<double> local_ms, paced_ms;
  for (const transport::StepStats& s : steps) {
    if (s.paced_ms <= 0) continue;  // not emulated, or a failed step that computed nothing
    ++h.paced_steps;
    if (s.local_ms > s.paced_ms) {
      ++h.overrun_steps;
      h.overrun_ms += s.local_ms - s.paced_ms;
    }
    if (decode_only(s.step_id)) {
      local_ms.push_back(s.local_ms);
      paced_ms.push_back(s.paced_ms);
    }
  }
  h.decode_steps = static_cast<int64_t>(local_ms.size());
  h.decode_local_ms_median = median_of(std::move(local_ms));
  h.decode_paced_ms_median = median_of(std::move(paced_ms));
  return h;
}

std::string format_headroom(const std::vector<StageReport>& stages) {
  std::string out;
  bool overran = false;
  char line[512];
  for (const StageReport& s : stages) {
    const EmulationHeadroom& h = s.emulation;
    if (!h.emulating()) continue;
    if (h.decode_steps > 0) {
      std::snprintf(line, sizeof line,
                    "emulation: %s computed a decode step in %.2f ms here against %.2f ms paced "
                    "(%.0f%%); ",
                    s.device.c_str(), h.decode_local_ms_median, h.decode_paced_ms_median,
                    h.local_to_paced() * 100.0);
    } else {
      std::snprintf(line, sizeof line, "emulation: %s ran no decode-only step; ", s.device.c_str());
    }
    out += line;
    if (h.overrun_steps == 0) {
      std::snprintf(line, sizeof line, "none of %lld paced steps overran\n",
                    static_cast<long long>(h.paced_steps));
    } else {
      overran = true;
      std::snprintf(line, sizeof line, "%lld of %lld paced steps overran by %.1f ms in all\n",
                    static_cast<long long>(h.overrun_steps), static_cast<long long>(h.paced_steps),
                    h.overrun_ms);
    }
    out += line;
  }
  if (overran) {
    out +=
        "note: a step that overran took this host's time, not the reference device's: the "
        "measured figures include the host's contention, which the plan cannot predict\n";
  }
  return out;
}

nlohmann::json headroom_json(const EmulationHeadroom& h) {
  if (!h.emulating()) return nullptr;
  return {{"paced_steps", h.paced_steps},
          {"overrun_steps", h.overrun_steps},
          {"overrun_ms", h.overrun_ms},
          {"decode_steps", h.decode_steps},
          {"decode_local_ms_median", h.decode_local_ms_median},
          {"decode_paced_ms_median", h.decode_paced_ms_median},
          {"local_to_paced", h.decode_steps > 0 ? nlohmann::json(h.local_to_paced()) : nullptr}};
}

}  // namespace strata::agent
