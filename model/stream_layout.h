// Where a layer's weights lie in a GGUF file, as the weight store reads them (private to the
// model library): aligned extents to read with O_DIRECT, where each tensor lands in a buffer
// holding those extents end to end, the page spans of the mapping that stay resident, and the
// strata.stream.* metadata `strata model repack --for-streaming` writes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/gguf.h"
#include "strata/model/model.h"
#include "strata/model/weight_store.h"

namespace strata::model::stream {

// Metadata keys of a repacked file. Offsets are relative to the start of the data section (as
// tensor offsets are), so the header's size never depends on them.
inline constexpr const char* kKeyVersion = "strata.stream.version";
inline constexpr const char* kKeyAlignment = "strata.stream.alignment";
inline constexpr const char* kKeyLayerOffsets = "strata.stream.layer_offsets";
inline constexpr const char* kKeyLayerBytes = "strata.stream.layer_bytes";
inline constexpr const char* kKeyBundleNeurons = "strata.stream.bundle_neurons";
inline constexpr const char* kKeyBundleStride = "strata.stream.bundle_stride";
inline constexpr const char* kKeyBundleOffsets = "strata.stream.bundle_offsets";

// Reads separated by less than this are merged into one: reading a small gap costs less than a
// second request.
inline constexpr int64_t kMergeGapBytes = 64 << 10;

// Which of a layer's tensors: everything; norms and attention (what sparse mode streams);
// the gate; the FFN's up and down; the two norms (which dense streaming keeps, reading the
// matrices in pieces).
enum class Part { kAll, kAttn, kGate, kUpDown, kNorms };

std::vector<const GgufTensorInfo*> layer_tensors(const GgufFile& f, int64_t layer, Part part);

// An aligned range of the file; bytes past need_end are padding (possibly past the end).
struct Extent {
  int64_t offset = 0;
  int64_t bytes = 0;
  int64_t need_end = 0;
};

struct UnitLayout {
  std::vector<Extent> extents;        // in file order, aligned to kDirectAlign
  int64_t buffer_bytes = 0;           // the extents end to end
  int64_t weight_bytes = 0;           // the tensors' own bytes
  std::map<std::string, int64_t> at;  // tensor name -> its offset in the buffer
  std::vector<int64_t> range_at;      // layout_ranges: range i -> its offset in the buffer
};

// A range of the file (absolute offsets).
struct ByteRange {
  int64_t offset = 0;
  int64_t bytes = 0;
};

// Lays `ranges` out as aligned extents the same way (range_at gives where each lands).
UnitLayout layout_ranges(const std::vector<ByteRange>& ranges);

// Lays `tensors` out as aligned extents, merging neighbours less than kMergeGapBytes apart.
UnitLayout layout_unit(const GgufFile& f, const std::vector<const GgufTensorInfo*>& tensors);

// `base` (the model's views of `layer`) with every tensor of `unit` pointing into `buffer`.
LayerWeights views_into(const LayerWeights& base, int64_t layer, const UnitLayout& unit,
                        const uint8_t* buffer);

// Page-rounded, merged spans of the mapping holding `tensors`.
struct Span {
  const uint8_t* begin = nullptr;
  int64_t bytes = 0;
};
std::vector<Span> mapped_spans(const std::vector<const GgufTensorInfo*>& tensors);
// The same for arbitrary pieces of the mapping (row ranges of matrices).
std::vector<Span> mapped_spans(const std::vector<Span>& pieces);
int64_t spans_bytes(const std::vector<Span>& spans);

// Arrays hold one entry per layer the file holds, entry i for layer block_begin() + i (a
// whole model's block_begin() is 0; a slice's is its first block).
struct StreamMeta {
  bool present = false;
  int64_t alignment = 0;
  std::vector<int64_t> layer_offsets;  // relative to the data section
  std::vector<int64_t> layer_bytes;
  int64_t bundle_neurons = 0;  // 0: no bundles
  int64_t bundle_stride = 0;
  std::vector<int64_t> bundle_offsets;  // relative, one per layer
};

// The strata.stream.* metadata, checked against the tensors and the file size: each layer's
// tensors lie inside its aligned extent, bundles fit in the file. Absent keys give
// present = false. kCorrupt naming the file and key otherwise.
Result<StreamMeta> read_stream_meta(const Model& model);

// Row-column bundles of one layer: bundle b holds up rows [b*n, (b+1)*n) followed by, for each
// of the dim rows of down, its n elements [b*n, (b+1)*n) (whole quantization blocks).
struct BundleGeometry {
  int64_t neurons = 0;
  int64_t up_row_bytes = 0;      // one up row (dim elements)
  int64_t up_bytes = 0;          // neurons up rows
  int64_t down_row_bytes = 0;    // one full down row (ffn elements)
  int64_t down_piece_bytes = 0;  // neurons elements of one down row
  int64_t bytes = 0;             // up_bytes + dim * down_piece_bytes
  int64_t stride = 0;            // bytes rounded up to the alignment
  int64_t count = 0;             // ffn / neurons
  int64_t dim = 0;
};
BundleGeometry bundle_geometry(const LayerWeights& w, int64_t neurons, int64_t alignment);

// Writes bundle `b` of `w` (the model's own views) into dst (geometry.bytes bytes).
void fill_bundle(const LayerWeights& w, const BundleGeometry& g, int64_t b, uint8_t* dst);

// What a streaming-layout file holds: blocks [block_begin, block_end) of the source, and the
// embedding / head. `slice` adds the strata.slice.* keys (write_model_slice); without it the
// part must be the whole source (repack_for_streaming).
struct FilePart {
  int64_t block_begin = 0;
  int64_t block_end = 0;
  bool with_embedding = false;
  bool with_head = false;
  bool slice = false;
};

// Writes `out` in the streaming layout (docs/STREAMING.md): the source's metadata, pinned
// tensors first, then each block's tensors in the engine's order, every tensor at a multiple
// of options.alignment, the strata.stream.* layer extents, and, when options.bundles asks (or
// kAuto on a ReLU model), the row-column bundles. Deterministic: the same source and part give
// the same bytes (a slice's content hash depends on it). Reads the result back to check the
// layout. Errors: kInvalidArgument for bad options or a part the source lacks, kIo naming `out`.
Result<RepackResult> write_stream_file(const Model& source, const FilePart& part,
                                       const RepackOptions& options, const std::string& out,
                                       const std::function<void(int64_t, int64_t)>& progress);

}  // namespace strata::model::stream
