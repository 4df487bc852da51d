#include "emulation.h"

#include <cstdio>

#include "strata/base/io.h"
#include "strata/model/types.h"
#include "strata/partitioner/cost_model.h"

namespace strata::agent {

Result<Pace> load_pace(const std::string& reference_profile) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(reference_profile));
  STRATA_ASSIGN_OR_RETURN(partitioner::DeviceCaps caps,
                          partitioner::device_caps_from_profile(text, reference_profile, "", 0));
  Pace p;
  p.reference = std::move(caps);
  // Every weight type the engine runs gets a rate, once, so that pacing a step is plain
  // arithmetic: a type the profile lacks computes at its f32 rate, and without even that the
  // step is costed by memory alone (an unbounded compute rate).
  for (auto* rates : {&p.reference.gemv_gflops, &p.reference.gemm_gflops}) {
    const auto f32 = rates->find("f32");
    const double fallback = f32 != rates->end() ? f32->second : 1e300;
    for (const model::DType t : {model::DType::kF32, model::DType::kF16, model::DType::kBF16,
                                 model::DType::kQ8_0, model::DType::kQ4_0}) {
      rates->emplace(std::string(*model::dtype_name(static_cast<uint32_t>(t))), fallback);
    }
  }
  p.mem_cap_bytes = p.reference.mem_budget_bytes;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "emulating %s: steps paced to its roofline (memory %.1f GB/s), memory capped at "
                "%.2f GiB",
                p.reference.name.c_str(), p.reference.mem_read_gb_per_s,
                static_cast<double>(p.mem_cap_bytes) / (1024.0 * 1024.0 * 1024.0));
  p.note = buf;
  return p;
}

Result<std::vector<partitioner::LayerUnit>> stage_units(const model::Model& model, bool embedding,
                                                        int64_t block_begin, int64_t block_end,
                                                        bool head) {
  STRATA_ASSIGN_OR_RETURN(partitioner::LayerTable table,
                          partitioner::layer_table_from_model(model, "the assigned slice"));
  // Units: 0 the embedding, 1..L the blocks, L + 1 the head (as plans number them).
  const auto first = static_cast<size_t>(embedding ? 0 : block_begin + 1);
  const auto last = static_cast<size_t>(head ? model.config().n_layers + 2 : block_end + 1);
  STRATA_CHECK(first <= last && last <= table.units.size());
  return std::vector<partitioner::LayerUnit>(
      table.units.begin() + static_cast<std::ptrdiff_t>(first),
      table.units.begin() + static_cast<std::ptrdiff_t>(last));
}

double reference_step_s(const Pace& pace, const std::vector<partitioner::LayerUnit>& units,
                        int64_t n_tokens, double ctx_positions, double kv_rows) {
  double s = 0;
  for (const partitioner::LayerUnit& u : units)
    s += partitioner::unit_step_s(u, pace.reference, n_tokens, ctx_positions, kv_rows);
  return s;
}

}  // namespace strata::agent
