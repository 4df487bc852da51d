// predict() for a GGUF file: the per-unit cost comes from the engine's own cost table.
#include <array>
#include <filesystem>

#include "strata/model/model.h"
#include "strata/profiles/roofline.h"

namespace strata::profiles {
namespace {

std::array<const model::WeightView*, 7> block_matrices(const model::LayerWeights& l) {
  return {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_o, &l.ffn_gate, &l.ffn_up, &l.ffn_down};
}

MatrixCost matrix_of(const model::WeightView& w) {
  return {std::string(model::dtype_name(static_cast<uint32_t>(w.type)).value_or("f32")), w.rows,
          w.cols};
}

}  // namespace

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
  // Blocks and the head get their matrices, so that each is timed at the GEMV rate of its own
  // shape; model_cost names units "blk.<i>" and "output".
  for (size_t k = 0; k < cost.units.size(); ++k) {
    const std::string& name = cost.units[k].name;
    if (name.rfind("blk.", 0) == 0) {
      const int64_t i = std::stoll(name.substr(4));
      if (i < m->block_begin() || i >= m->block_end()) continue;
      for (const model::WeightView* w : block_matrices(m->layer(i))) {
        units[k].matrices.push_back(matrix_of(*w));
      }
    } else if (name == "output" && m->has_head()) {
      units[k].matrices.push_back(matrix_of(m->output()));
    }
  }
  const auto dtype = model::dtype_name(static_cast<uint32_t>(m->config().main_type));
  return predict(profile, std::filesystem::path(gguf_path).filename().string(),
                 std::string(dtype.value_or("f32")), units, ctx);
}

}  // namespace strata::profiles

namespace strata::profiles {

Result<std::vector<MatrixCost>> model_matrix_shapes(const std::string& gguf_path) {
  STRATA_ASSIGN_OR_RETURN(const std::unique_ptr<model::Model> m, model::Model::load(gguf_path));
  std::vector<MatrixCost> shapes;
  const auto add = [&](const model::WeightView& w) {
    const MatrixCost s = matrix_of(w);
    for (const MatrixCost& have : shapes) {
      if (have.type == s.type && have.rows == s.rows && have.cols == s.cols) return;
    }
    shapes.push_back(s);
  };
  for (int64_t i = m->block_begin(); i < m->block_end(); ++i) {
    for (const model::WeightView* w : block_matrices(m->layer(i))) add(*w);
  }
  if (m->has_head()) add(m->output());
  return shapes;
}

}  // namespace strata::profiles
