#include "emulation.h"

#include <cstdio>
#include <optional>
#include <string_view>

#include "strata/base/io.h"
#include "strata/partitioner/cost_model.h"

namespace strata::agent {

Result<Pace> load_pace(const std::string& reference_profile) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(reference_profile));
  STRATA_ASSIGN_OR_RETURN(partitioner::DeviceCaps caps,
                          partitioner::device_caps_from_profile(text, reference_profile, "", 0));
  Pace p;
  p.reference = std::move(caps);
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
  const model::ModelConfig& c = model.config();
  model::DType type = model::DType::kF32;
  if (block_end > block_begin) {
    type = model.layer(block_begin).ffn_down.type;
  } else if (embedding) {
    type = model.token_embd().type;
  } else if (head) {
    type = model.output().type;
  }
  partitioner::LlamaShape shape;
  shape.n_layers = c.n_layers;
  shape.dim = c.dim;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.ffn_dim = c.ffn_dim;
  shape.vocab = c.vocab;
  const std::optional<std::string_view> type_name = model::dtype_name(static_cast<uint32_t>(type));
  STRATA_CHECK(type_name.has_value());  // a loaded model only holds supported types
  STRATA_ASSIGN_OR_RETURN(partitioner::LayerTable table,
                          partitioner::llama_layer_table(shape, std::string(*type_name)));
  std::vector<partitioner::LayerUnit> out;
  if (embedding) out.push_back(table.units.front());
  for (int64_t b = block_begin; b < block_end; ++b)
    out.push_back(table.units[static_cast<size_t>(b + 1)]);
  if (head) out.push_back(table.units.back());
  return out;
}

double reference_step_s(const Pace& pace, const std::vector<partitioner::LayerUnit>& units,
                        int64_t n_tokens, double ctx_positions, double kv_rows) {
  partitioner::DeviceCaps d = pace.reference;
  double s = 0;
  for (const partitioner::LayerUnit& u : units) {
    // A profile without the unit's type computes it at f32 rates; without even those, the
    // step is costed by memory alone (infinite compute rate).
    for (auto* rates : {&d.gemv_gflops, &d.gemm_gflops}) {
      for (const auto& [type, bytes] : u.weight_bytes_by_type) {
        if (rates->count(type) == 0) {
          auto f32 = rates->find("f32");
          (*rates)[type] = f32 != rates->end() ? f32->second : 1e300;
        }
      }
      if (rates->count("f32") == 0) (*rates)["f32"] = 1e300;
    }
    s += partitioner::unit_step_s(u, d, n_tokens, ctx_positions, kv_rows);
  }
  return s;
}

}  // namespace strata::agent
