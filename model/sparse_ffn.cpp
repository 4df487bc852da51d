#include "sparse_ffn.h"

#include <cstring>

#include "strata/base/io.h"

namespace strata::model::stream {

Result<std::unique_ptr<SparseFfn>> SparseFfn::create(const InternalPlan& plan, IoEngine& io,
                                                     int window_tokens, bool lock) {
  std::unique_ptr<SparseFfn> s(new SparseFfn(plan, io, window_tokens));
  STRATA_ASSIGN_OR_RETURN(s->up_, AlignedBuffer::allocate(plan.up_bytes));
  STRATA_ASSIGN_OR_RETURN(s->down_, AlignedBuffer::allocate(plan.down_bytes));
  STRATA_ASSIGN_OR_RETURN(s->staging_, AlignedBuffer::allocate(plan.staging_bytes));
  const int64_t stride = plan.meta.bundle_stride;
  if (plan.window_capacity > 0) {
    STRATA_ASSIGN_OR_RETURN(s->window_, AlignedBuffer::allocate(plan.window_capacity * stride));
  }
  if (lock) {
    for (AlignedBuffer* b : {&s->up_, &s->down_, &s->staging_, &s->window_}) {
      if (b->size() > 0 && !b->lock()) s->locked_ = false;
    }
  }
  s->slots_.resize(static_cast<size_t>(plan.window_capacity));
  for (int64_t i = plan.window_capacity - 1; i >= 0; --i) s->free_slots_.push_back(i);
  s->holds_.assign(static_cast<size_t>(plan.layers[0].bundles.count), -1);
  return s;
}

void SparseFfn::place(int64_t b, const BundleGeometry& g, const uint8_t* src) {
  std::memcpy(up_.data() + b * g.up_bytes, src, static_cast<size_t>(g.up_bytes));
  const uint8_t* piece = src + g.up_bytes;
  uint8_t* row = down_.data() + b * g.down_piece_bytes;
  for (int64_t r = 0; r < g.dim; ++r) {
    std::memcpy(row + r * g.down_row_bytes, piece + r * g.down_piece_bytes,
                static_cast<size_t>(g.down_piece_bytes));
  }
}

void SparseFfn::clear(int64_t b, const BundleGeometry& g) {
  std::memset(up_.data() + b * g.up_bytes, 0, static_cast<size_t>(g.up_bytes));
  uint8_t* row = down_.data() + b * g.down_piece_bytes;
  for (int64_t r = 0; r < g.dim; ++r) {
    std::memset(row + r * g.down_row_bytes, 0, static_cast<size_t>(g.down_piece_bytes));
  }
}

int64_t SparseFfn::admit(int64_t key) {
  int64_t slot = -1;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (!lru_.empty()) {
    const int64_t oldest = lru_.back();
    Slot& s = slots_[static_cast<size_t>(oldest)];
    if (s.last_use > call_ - window_tokens_) return -1;  // still inside the window
    by_key_.erase(s.key);
    lru_.pop_back();
    slot = oldest;
  } else {
    return -1;
  }
  Slot& s = slots_[static_cast<size_t>(slot)];
  s.key = key;
  s.last_use = call_;
  lru_.push_front(slot);
  s.lru = lru_.begin();
  by_key_[key] = slot;
  return slot;
}

Result<LayerWeightSource::FfnUpDown> SparseFfn::load(int64_t layer, const LayerWeights& w,
                                                     const float* gate, int64_t n_tokens,
                                                     SparseCounters* counters) {
  const LayerPlan& lp = plan_.layers[static_cast<size_t>(layer - plan_.layer_begin)];
  const BundleGeometry& g = lp.bundles;
  const int64_t ffn = w.ffn_up.rows;
  const int64_t stride = plan_.meta.bundle_stride;
  // Needed bundles: relu(gate) > 0 for one of their neurons in any token.
  std::vector<char> needed(static_cast<size_t>(g.count), 0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* row = gate + t * ffn;
    for (int64_t b = 0; b < g.count; ++b) {
      if (needed[static_cast<size_t>(b)] != 0) continue;
      const float* x = row + b * g.neurons;
      for (int64_t i = 0; i < g.neurons; ++i) {
        if (x[i] > 0.0f) {
          needed[static_cast<size_t>(b)] = 1;
          break;
        }
      }
    }
  }
  counters->bundles_total += g.count;
  std::vector<int64_t> missing;
  for (int64_t b = 0; b < g.count; ++b) {
    if (needed[static_cast<size_t>(b)] == 0) {
      if (holds_[static_cast<size_t>(b)] != -1) {
        clear(b, g);
        holds_[static_cast<size_t>(b)] = -1;
      }
      continue;
    }
    ++counters->bundles_needed;
    const int64_t key = (layer << 32) | b;
    auto it = by_key_.find(key);
    if (it != by_key_.end()) {
      Slot& s = slots_[static_cast<size_t>(it->second)];
      s.last_use = call_;
      lru_.splice(lru_.begin(), lru_, s.lru);
      ++counters->bundles_cached;
      if (holds_[static_cast<size_t>(b)] != layer) {
        place(b, g, window_.data() + it->second * stride);
        holds_[static_cast<size_t>(b)] = layer;
      }
      continue;
    }
    if (holds_[static_cast<size_t>(b)] == layer) {  // still there from the last call
      ++counters->bundles_cached;
      continue;
    }
    missing.push_back(b);
  }

  // Missing bundles: runs of neighbours are one read each, batched to fit the staging buffer.
  const int64_t per_batch = staging_.size() / stride;
  size_t i = 0;
  while (i < missing.size()) {
    std::vector<ReadOp> ops;
    std::vector<std::pair<int64_t, int64_t>> where;  // (bundle, staging offset)
    int64_t used = 0;
    while (i < missing.size() && used < per_batch) {
      const int64_t first = missing[i];
      int64_t n = 1;
      while (i + static_cast<size_t>(n) < missing.size() && used + n < per_batch &&
             missing[i + static_cast<size_t>(n)] == first + n) {
        ++n;
      }
      const int64_t offset = lp.bundle_offset + first * stride;
      ops.push_back(ReadOp{offset, n * stride, staging_.data() + used * stride,
                           offset + (n - 1) * stride + g.bytes});
      for (int64_t k = 0; k < n; ++k) where.emplace_back(first + k, (used + k) * stride);
      used += n;
      i += static_cast<size_t>(n);
    }
    const double t0 = now_s();
    Status st = io_.read(ops);
    counters->read_s += now_s() - t0;
    if (!st.ok()) {
      return st.with_context("reading the FFN bundles of layer " + std::to_string(layer));
    }
    counters->reads += static_cast<int64_t>(ops.size());
    counters->bytes_read += used * stride;
    for (const auto& [b, at] : where) {
      const uint8_t* src = staging_.data() + at;
      place(b, g, src);
      holds_[static_cast<size_t>(b)] = layer;
      const int64_t slot = admit((layer << 32) | b);
      if (slot >= 0) {
        std::memcpy(window_.data() + slot * stride, src, static_cast<size_t>(g.bytes));
      }
    }
  }
  LayerWeightSource::FfnUpDown out;
  out.up = WeightView{w.ffn_up.type, w.ffn_up.rows, w.ffn_up.cols, up_.data()};
  out.down = WeightView{w.ffn_down.type, w.ffn_down.rows, w.ffn_down.cols, down_.data()};
  return out;
}

}  // namespace strata::model::stream
