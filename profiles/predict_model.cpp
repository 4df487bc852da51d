// predict() for a GGUF file: the per-token cost comes from the engine's own cost table.
#include <filesystem>

#include "strata/model/model.h"
#include "strata/profiles/roofline.h"

namespace strata::profiles {

Result<Prediction> predict_for_model(const Profile& profile, const std::string& gguf_path) {
  STRATA_ASSIGN_OR_RETURN(const std::unique_ptr<model::Model> m, model::Model::load(gguf_path));
  // The engine keeps its KV cache in f32; at the short contexts the roofline describes, KV
  // reads are small next to the weights and are left out of the bytes per token.
  const model::ModelCost cost = model::model_cost(*m, model::DType::kF32);
  double bytes = 0;
  double flops = 0;
  for (const model::LayerCost& u : cost.units) {
    bytes += static_cast<double>(u.weight_bytes_read_per_token);
    flops += u.flops_per_token;
  }
  const auto dtype = model::dtype_name(static_cast<uint32_t>(m->config().main_type));
  return predict(profile, std::filesystem::path(gguf_path).filename().string(),
                 std::string(dtype.value_or("f32")), bytes, flops);
}

}  // namespace strata::profiles
