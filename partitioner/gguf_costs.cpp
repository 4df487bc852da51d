// The GGUF path of `strata plan --model`: the model module's per-unit costs turned into a
// layer table (also what an emulating agent paces its stage by).
#include "strata/model/model.h"
#include "strata/partitioner/layer_table.h"

namespace strata::partitioner {

Result<LayerTable> layer_table_from_gguf(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::unique_ptr<model::Model> m, model::Model::load(path));
  return layer_table_from_model(*m, path);
}

Result<LayerTable> layer_table_from_model(const model::Model& m, const std::string& source) {
  const model::ModelCost cost = model::model_cost(m, model::DType::kF32);
  LayerTable table;
  table.source = source;
  table.name = m.config().name.empty() ? source : m.config().name;
  table.input_bytes_per_token = 4;  // a token id
  for (size_t i = 0; i < cost.units.size(); ++i) {
    const model::LayerCost& c = cost.units[i];
    LayerUnit u;
    u.name = c.name;
    if (c.name == "token_embd") {
      u.kind = UnitKind::kEmbedding;
    } else if (c.name == "output") {
      u.kind = UnitKind::kHead;
    } else {
      u.kind = UnitKind::kBlock;
    }
    u.flops_per_token = c.flops_per_token;
    u.attn_flops_per_token_per_ctx = c.attn_flops_per_token_per_ctx;
    u.weight_bytes = c.weight_bytes;
    u.weight_bytes_by_type = c.weight_bytes_by_type;
    if (u.weight_bytes_by_type.empty() && u.weight_bytes > 0) {
      u.weight_bytes_by_type[std::string(
          model::dtype_name(static_cast<uint32_t>(m.config().main_type)).value_or("f32"))] =
          u.weight_bytes;
    }
    u.weight_bytes_read_per_token =
        c.weight_bytes_read_per_token > 0 ? c.weight_bytes_read_per_token : c.weight_bytes;
    u.activation_bytes_out = c.activation_bytes_out;
    u.kv_bytes_per_token = c.kv_bytes_per_token;
    // The last stage samples, so only the chosen token id travels back to the coordinator,
    // whatever the head's logits would weigh.
    if (u.kind == UnitKind::kHead) u.activation_bytes_out = 4;
    table.units.push_back(std::move(u));
  }
  if (table.units.empty()) return corrupt(source + ": the model has no units to place");
  return table;
}

}  // namespace strata::partitioner
