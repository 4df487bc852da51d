// predict() for a GGUF file: the per-unit cost comes from the engine's own cost table.
#include <filesystem>

#include "strata/model/model.h"
#include "strata/profiles/roofline.h"

namespace strata::profiles {

Result<Prediction> predict_for_model(const Profile& profile, const std::string& gguf_path,
                                     int64_t ctx) {
  STRATA_ASSIGN_OR_RETURN(const std::unique_ptr<model::Model> m, model::Model::load(gguf_path));
  // The engine keeps its KV cache in f32.
  const model::ModelCost cost = model::model_cost(*m, model::DType::kF32);
  std::vector<UnitCost> units;
  for (const model::LayerCost& l : cost.units) {
    UnitCost u;
    for (const auto& [type, bytes] : l.weight_bytes_by_type) {
      u.weight_bytes_by_type[type] = static_cast<double>(bytes);
    }
    u.weight_bytes_read_per_token = static_cast<double>(l.weight_bytes_read_per_token);
    u.flops_per_token = l.flops_per_token;
    u.attn_flops_per_token_per_ctx = l.attn_flops_per_token_per_ctx;
    u.kv_bytes_per_token = static_cast<double>(l.kv_bytes_per_token);
    units.push_back(std::move(u));
  }
  const auto dtype = model::dtype_name(static_cast<uint32_t>(m->config().main_type));
  return predict(profile, std::filesystem::path(gguf_path).filename().string(),
                 std::string(dtype.value_or("f32")), units, ctx);
}

}  // namespace strata::profiles
