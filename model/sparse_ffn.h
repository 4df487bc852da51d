// Sparse FFN loading for ReLU models (private to the model library). After the gate product,
// a bundle (a group of neurons: their up rows and their slice of every down row) is needed
// when relu(gate) > 0 for one of its neurons and any token of the batch. Needed bundles come
// from the window (bundles used in the last `window_tokens` forward calls) or are read from
// the file, and are copied into two dense-shaped matrices; bundles not needed hold zeros.
// The engine's kernels then run on the dense shapes: a zero neuron contributes exactly what
// it does in the dense run (relu(gate) = 0 times anything finite), so results are identical.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "direct_io.h"
#include "strata/model/engine.h"
#include "weight_store_internal.h"

namespace strata::model::stream {

struct SparseCounters {
  int64_t bytes_read = 0;
  int64_t reads = 0;
  double read_s = 0;
  int64_t bundles_needed = 0;
  int64_t bundles_cached = 0;
  int64_t bundles_total = 0;
};

class SparseFfn {
 public:
  // Allocates the dense-shaped buffers, the staging buffer and the window (plan sizes).
  // kResourceExhausted when memory is refused. `io` must outlive the object.
  static Result<std::unique_ptr<SparseFfn>> create(const InternalPlan& plan, IoEngine& io,
                                                   int window_tokens, bool lock);
  // A new forward call begins: bundles used `window_tokens` calls ago become evictable.
  void begin_call() { ++call_; }
  // The dense-shaped up and down of `layer` for this batch. kIo naming the file on a failed
  // read (the buffers then hold no valid layer and are rebuilt by the next call).
  Result<LayerWeightSource::FfnUpDown> load(int64_t layer, const LayerWeights& w, const float* gate,
                                            int64_t n_tokens, SparseCounters* counters);
  bool locked() const { return locked_; }

 private:
  SparseFfn(const InternalPlan& plan, IoEngine& io, int window_tokens)
      : plan_(plan), io_(io), window_tokens_(window_tokens) {}
  void place(int64_t b, const BundleGeometry& g, const uint8_t* src);
  void clear(int64_t b, const BundleGeometry& g);
  // A window slot for `key`, evicting the least recently used bundle not used in the window;
  // -1 when every slot is in the window.
  int64_t admit(int64_t key);

  const InternalPlan& plan_;
  IoEngine& io_;
  int64_t window_tokens_;
  int64_t call_ = 0;
  bool locked_ = true;
  AlignedBuffer up_;
  AlignedBuffer down_;
  AlignedBuffer staging_;
  AlignedBuffer window_;
  // Which layer's bundle each bundle position of the dense buffers holds (-1: zeros).
  std::vector<int64_t> holds_;
  struct Slot {
    int64_t key = -1;
    int64_t last_use = 0;
    std::list<int64_t>::iterator lru;
  };
  std::vector<Slot> slots_;
  std::list<int64_t> lru_;  // slot indices, most recently used first
  std::vector<int64_t> free_slots_;
  std::unordered_map<int64_t, int64_t> by_key_;  // layer * 2^32 + bundle -> slot
};

}  // namespace strata::model::stream
