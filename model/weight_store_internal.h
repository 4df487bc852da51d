// The weight store's plan with the per-layer detail the implementation needs (private to the
// model library).
#pragma once

#include <vector>

#include "strata/model/weight_store.h"
#include "stream_layout.h"

namespace strata::model::stream {

struct LayerPlan {
  bool resident = false;
  // Streamed layers: what the ring reads, in the order the engine uses it. Dense: kFront
  // (acquire) then kUpDown (ffn_up_down), so a ring buffer holds half a layer; sparse: kAttn.
  std::vector<UnitLayout> units;
  // Sparse: the layer's bundles start here (absolute offset); geometry of its bundles.
  int64_t bundle_offset = 0;
  BundleGeometry bundles;
};

struct InternalPlan {
  StreamPlan plan;
  StreamMeta meta;
  int64_t layer_begin = 0;
  int64_t layer_end = 0;
  std::vector<LayerPlan> layers;              // index: layer - layer_begin
  int64_t slot_bytes = 0;                     // one ring buffer
  int64_t staging_bytes = 0;                  // sparse: read staging
  int64_t window_capacity = 0;                // sparse: bundles the window holds
  int64_t up_bytes = 0;                       // sparse: dense-shaped up buffer
  int64_t down_bytes = 0;                     // sparse: dense-shaped down buffer
  std::vector<const GgufTensorInfo*> pinned;  // kept through the mapping
};

Result<InternalPlan> build_plan(const Model& model, const StreamOptions& options);

}  // namespace strata::model::stream
