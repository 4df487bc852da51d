// The weight store's plan with the per-layer detail the implementation needs (private to the
// model library).
#pragma once

#include <vector>

#include "strata/model/weight_store.h"
#include "stream_layout.h"

namespace strata::model::stream {

// What one ring buffer holds, or what stays kept in the mapping: dense streaming cuts a layer
// into units of row ranges of its matrices (cut_block); sparse streaming reads one unit a
// layer, its norms and attention (the gates are kept, the FFN is read as bundles).
struct UnitPlan {
  int64_t layer = 0;
  bool resident = false;
  std::vector<StreamPiece> pieces;  // dense; matrix indexes kMatrices
  UnitLayout layout;                // extents; range_at per piece (dense), at per tensor (sparse)
  int64_t kept_bytes = 0;           // dense: the pieces' page-rounded spans in the mapping
};

struct LayerPlan {
  bool resident = false;      // kept whole: acquire() hands out the model's own views
  std::vector<size_t> units;  // indexes in InternalPlan::units, in the engine's order
  // Dense, not kept whole: the model's views with every matrix nulled (the engine asks
  // matrix_rows for them); the norms stay in the mapping.
  LayerWeights views;
  // Sparse: the layer's bundles start here (absolute offset); geometry of its bundles.
  int64_t bundle_offset = 0;
  BundleGeometry bundles;
};

// The matrices of LayerWeights in the engine's order (StreamPiece::matrix indexes it).
inline constexpr WeightView LayerWeights::*kMatrices[] = {
    &LayerWeights::attn_q,   &LayerWeights::attn_k, &LayerWeights::attn_v,   &LayerWeights::attn_o,
    &LayerWeights::ffn_gate, &LayerWeights::ffn_up, &LayerWeights::ffn_down,
};

struct InternalPlan {
  StreamPlan plan;
  StreamMeta meta;
  int64_t layer_begin = 0;
  int64_t layer_end = 0;
  std::vector<LayerPlan> layers;              // index: layer - layer_begin
  std::vector<UnitPlan> units;                // every unit of the range, in the engine's order
  int64_t slot_bytes = 0;                     // one ring buffer
  int64_t staging_bytes = 0;                  // sparse: read staging
  int64_t window_capacity = 0;                // sparse: bundles the window holds
  int64_t up_bytes = 0;                       // sparse: dense-shaped up buffer
  int64_t down_bytes = 0;                     // sparse: dense-shaped down buffer
  std::vector<const GgufTensorInfo*> pinned;  // kept through the mapping
  const GgufTensorInfo* embedding = nullptr;  // embedding_rows: the table rows are read from
};

Result<InternalPlan> build_plan(const Model& model, const StreamOptions& options);

}  // namespace strata::model::stream
