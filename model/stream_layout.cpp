#include "stream_layout.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "direct_io.h"

namespace strata::model::stream {
namespace {

struct TensorSlot {
  const char* suffix;
  WeightView LayerWeights::*matrix;  // null for norms
  const float* LayerWeights::*norm;  // null for matrices
  Part part;
};

constexpr TensorSlot kSlots[] = {
    {"attn_norm.weight", nullptr, &LayerWeights::attn_norm, Part::kAttn},
    {"ffn_norm.weight", nullptr, &LayerWeights::ffn_norm, Part::kAttn},
    {"attn_q.weight", &LayerWeights::attn_q, nullptr, Part::kAttn},
    {"attn_k.weight", &LayerWeights::attn_k, nullptr, Part::kAttn},
    {"attn_v.weight", &LayerWeights::attn_v, nullptr, Part::kAttn},
    {"attn_output.weight", &LayerWeights::attn_o, nullptr, Part::kAttn},
    {"ffn_gate.weight", &LayerWeights::ffn_gate, nullptr, Part::kGate},
    {"ffn_up.weight", &LayerWeights::ffn_up, nullptr, Part::kUpDown},
    {"ffn_down.weight", &LayerWeights::ffn_down, nullptr, Part::kUpDown},
};

std::string tensor_name(int64_t layer, const char* suffix) {
  return "blk." + std::to_string(layer) + "." + suffix;
}

int64_t page_bytes() {
  static const int64_t page = ::sysconf(_SC_PAGESIZE);
  return page;
}

Result<std::vector<int64_t>> u64_array(const GgufFile& f, const char* key, size_t n) {
  auto it = f.metadata().find(key);
  if (it == f.metadata().end()) return not_found(key);
  const auto* a = std::get_if<std::vector<uint64_t>>(&it->second.v);
  if (it->second.type != GgufType::kArray || a == nullptr) {
    return corrupt(f.path() + ": " + key + " is not an array of unsigned integers");
  }
  if (a->size() != n) {
    return corrupt(f.path() + ": " + key + " has " + std::to_string(a->size()) +
                   " entries, expected " + std::to_string(n) + " (one per layer)");
  }
  std::vector<int64_t> out;
  for (uint64_t v : *a) {
    if (v > (uint64_t{1} << 62))
      return corrupt(f.path() + ": " + key + " holds " + std::to_string(v));
    out.push_back(static_cast<int64_t>(v));
  }
  return out;
}

Result<int64_t> positive(const GgufFile& f, const char* key) {
  STRATA_ASSIGN_OR_RETURN(const uint64_t v, f.get_u64(key));
  if (v == 0 || v > (uint64_t{1} << 40)) {
    return corrupt(f.path() + ": " + key + " is " + std::to_string(v));
  }
  return static_cast<int64_t>(v);
}

// Appends the aligned extent that holds [begin, end) to `u` (ranges come in file order),
// merged into the last extent when the gap is under kMergeGapBytes: one read instead of two.
void add_extent(UnitLayout& u, int64_t begin, int64_t end) {
  const int64_t a_begin = align_down(begin, kDirectAlign);
  const int64_t a_end = align_up(end, kDirectAlign);
  if (!u.extents.empty() &&
      a_begin <= u.extents.back().offset + u.extents.back().bytes + kMergeGapBytes) {
    Extent& e = u.extents.back();
    e.bytes = std::max(e.bytes, a_end - e.offset);
    e.need_end = std::max(e.need_end, end);
  } else {
    u.extents.push_back(Extent{a_begin, a_end - a_begin, end});
  }
}

}  // namespace

std::vector<const GgufTensorInfo*> layer_tensors(const GgufFile& f, int64_t layer, Part part) {
  std::vector<const GgufTensorInfo*> out;
  for (const TensorSlot& s : kSlots) {
    if (part == Part::kNorms) {
      if (s.norm == nullptr) continue;
    } else if (part != Part::kAll && s.part != part) {
      continue;
    }
    const GgufTensorInfo* t = f.find_tensor(tensor_name(layer, s.suffix));
    STRATA_CHECK_MSG(t != nullptr, "layer tensor missing after Model::load");
    out.push_back(t);
  }
  return out;
}

UnitLayout layout_unit(const GgufFile& f, const std::vector<const GgufTensorInfo*>& tensors) {
  const auto base = static_cast<int64_t>(f.data_offset());
  std::vector<ByteRange> ranges;
  for (const GgufTensorInfo* t : tensors) {
    ranges.push_back({base + static_cast<int64_t>(t->offset), t->n_bytes});
  }
  UnitLayout u = layout_ranges(ranges);
  for (size_t i = 0; i < tensors.size(); ++i) u.at[tensors[i]->name] = u.range_at[i];
  u.range_at.clear();
  return u;
}

LayerWeights views_into(const LayerWeights& base, int64_t layer, const UnitLayout& unit,
                        const uint8_t* buffer) {
  LayerWeights w = base;
  for (const TensorSlot& s : kSlots) {
    auto it = unit.at.find(tensor_name(layer, s.suffix));
    if (it == unit.at.end()) continue;
    const uint8_t* p = buffer + it->second;
    if (s.matrix != nullptr) {
      (w.*s.matrix).data = p;
    } else {
      w.*s.norm = reinterpret_cast<const float*>(p);
    }
  }
  return w;
}

UnitLayout layout_ranges(const std::vector<ByteRange>& ranges) {
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return ranges[a].offset < ranges[b].offset; });
  UnitLayout u;
  for (size_t i : order) {
    const int64_t begin = ranges[i].offset;
    const int64_t end = begin + ranges[i].bytes;
    add_extent(u, begin, end);
    u.weight_bytes += ranges[i].bytes;
  }
  u.range_at.resize(ranges.size());
  int64_t pos = 0;
  size_t e = 0;
  for (size_t i : order) {
    while (ranges[i].offset >= u.extents[e].offset + u.extents[e].bytes) {
      pos += u.extents[e++].bytes;
    }
    u.range_at[i] = pos + (ranges[i].offset - u.extents[e].offset);
  }
  for (const Extent& x : u.extents) u.buffer_bytes += x.bytes;
  return u;
}

std::vector<Span> mapped_spans(const std::vector<const GgufTensorInfo*>& tensors) {
  std::vector<Span> pieces;
  for (const GgufTensorInfo* t : tensors) pieces.push_back(Span{t->data, t->n_bytes});
  return mapped_spans(pieces);
}

std::vector<Span> mapped_spans(const std::vector<Span>& pieces) {
  const int64_t page = page_bytes();
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (const Span& t : pieces) {
    const auto b = reinterpret_cast<uintptr_t>(t.begin);
    ranges.emplace_back(b / page * page,
                        (b + static_cast<uintptr_t>(t.bytes) + page - 1) / page * page);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<Span> spans;
  uintptr_t cur_b = 0;
  uintptr_t cur_e = 0;
  for (const auto& [b, e] : ranges) {
    if (cur_e != 0 && b <= cur_e) {
      cur_e = std::max(cur_e, e);
      continue;
    }
    if (cur_e != 0) {
      spans.push_back(
          Span{reinterpret_cast<const uint8_t*>(cur_b), static_cast<int64_t>(cur_e - cur_b)});
    }
    cur_b = b;
    cur_e = e;
  }
  if (cur_e != 0) {
    spans.push_back(
        Span{reinterpret_cast<const uint8_t*>(cur_b), static_cast<int64_t>(cur_e - cur_b)});
  }
  return spans;
}

int64_t spans_bytes(const std::vector<Span>& spans) {
  int64_t n = 0;
  for (const Span& s : spans) n += s.bytes;
  return n;
}

BundleGeometry bundle_geometry(const LayerWeights& w, int64_t neurons, int64_t alignment) {
  BundleGeometry g;
  g.neurons = neurons;
  g.dim = w.ffn_down.rows;
  g.up_row_bytes = row_bytes(w.ffn_up.type, w.ffn_up.cols);
  g.up_bytes = neurons * g.up_row_bytes;
  g.down_row_bytes = row_bytes(w.ffn_down.type, w.ffn_down.cols);
  g.down_piece_bytes = row_bytes(w.ffn_down.type, neurons);
  g.bytes = g.up_bytes + g.dim * g.down_piece_bytes;
  g.stride = align_up(g.bytes, alignment);
  g.count = w.ffn_up.rows / neurons;
  return g;
}

void fill_bundle(const LayerWeights& w, const BundleGeometry& g, int64_t b, uint8_t* dst) {
  const auto* up = static_cast<const uint8_t*>(w.ffn_up.data);
  std::memcpy(dst, up + b * g.up_bytes, static_cast<size_t>(g.up_bytes));
  const auto* down = static_cast<const uint8_t*>(w.ffn_down.data);
  uint8_t* out = dst + g.up_bytes;
  for (int64_t r = 0; r < g.dim; ++r) {
    std::memcpy(out + r * g.down_piece_bytes, down + r * g.down_row_bytes + b * g.down_piece_bytes,
                static_cast<size_t>(g.down_piece_bytes));
  }
}

Result<StreamMeta> read_stream_meta(const Model& model) {
  const GgufFile& f = model.file();
  StreamMeta m;
  if (!f.has(kKeyLayerOffsets)) return m;
  // One entry per layer the file holds: a slice's first entry is its first block.
  const int64_t first = model.block_begin();
  const auto n = static_cast<size_t>(model.block_end() - first);
  const auto base = static_cast<int64_t>(f.data_offset());
  const auto file_bytes = static_cast<int64_t>(f.file_bytes());
  STRATA_ASSIGN_OR_RETURN(m.alignment, positive(f, kKeyAlignment));
  if (m.alignment % kDirectAlign != 0 || (m.alignment & (m.alignment - 1)) != 0) {
    return corrupt(f.path() + ": " + kKeyAlignment + " " + std::to_string(m.alignment) +
                   " is not a power-of-two multiple of " + std::to_string(kDirectAlign));
  }
  if (base % m.alignment != 0) {
    return corrupt(f.path() + ": the data section at byte " + std::to_string(base) +
                   " is not aligned to " + kKeyAlignment + " " + std::to_string(m.alignment));
  }
  STRATA_ASSIGN_OR_RETURN(m.layer_offsets, u64_array(f, kKeyLayerOffsets, n));
  STRATA_ASSIGN_OR_RETURN(m.layer_bytes, u64_array(f, kKeyLayerBytes, n));
  for (size_t i = 0; i < n; ++i) {
    const int64_t b = base + m.layer_offsets[i];
    const int64_t e = b + m.layer_bytes[i];
    const std::string what = "layer " + std::to_string(first + static_cast<int64_t>(i)) +
                             " extent [" + std::to_string(b) + ", " + std::to_string(e) + ")";
    if (b % m.alignment != 0 || m.layer_bytes[i] % m.alignment != 0) {
      return corrupt(f.path() + ": " + kKeyLayerOffsets + ": " + what + " is not aligned to " +
                     std::to_string(m.alignment));
    }
    for (const GgufTensorInfo* t : layer_tensors(f, first + static_cast<int64_t>(i), Part::kAll)) {
      const int64_t tb = base + static_cast<int64_t>(t->offset);
      if (tb < b || tb + t->n_bytes > e) {
        return corrupt(f.path() + ": " + kKeyLayerOffsets + ": " + what + " does not hold '" +
                       t->name + "'");
      }
    }
  }
  m.present = true;
  if (!f.has(kKeyBundleNeurons)) return m;
  STRATA_ASSIGN_OR_RETURN(m.bundle_neurons, positive(f, kKeyBundleNeurons));
  STRATA_ASSIGN_OR_RETURN(m.bundle_stride, positive(f, kKeyBundleStride));
  STRATA_ASSIGN_OR_RETURN(m.bundle_offsets, u64_array(f, kKeyBundleOffsets, n));
  const ModelConfig& c = model.config();
  for (size_t i = 0; i < n; ++i) {
    const LayerWeights& w = model.layer(first + static_cast<int64_t>(i));
    const int64_t block = dtype_block_elems(w.ffn_down.type);
    if (c.ffn_dim % m.bundle_neurons != 0 || m.bundle_neurons % block != 0) {
      return corrupt(f.path() + ": " + kKeyBundleNeurons + " " + std::to_string(m.bundle_neurons) +
                     " does not divide ffn " + std::to_string(c.ffn_dim) + " in whole blocks of " +
                     std::to_string(block));
    }
    const BundleGeometry g = bundle_geometry(w, m.bundle_neurons, m.alignment);
    if (g.stride > m.bundle_stride || m.bundle_stride % m.alignment != 0) {
      return corrupt(f.path() + ": " + kKeyBundleStride + " " + std::to_string(m.bundle_stride) +
                     " cannot hold layer " + std::to_string(first + static_cast<int64_t>(i)) +
                     "'s bundles of " + std::to_string(g.bytes) + " bytes");
    }
    const int64_t b = base + m.bundle_offsets[i];
    if (b % m.alignment != 0 || b + g.count * m.bundle_stride > file_bytes) {
      return corrupt(f.path() + ": " + kKeyBundleOffsets + ": layer " +
                     std::to_string(first + static_cast<int64_t>(i)) + "'s bundles at byte " +
                     std::to_string(b) + " are misaligned or run past the end of the file (" +
                     std::to_string(file_bytes) + " bytes)");
    }
  }
  return m;
}

}  // namespace strata::model::stream
