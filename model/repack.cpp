// `strata model repack --for-streaming`: the same tensors and metadata in a layout the weight
// store reads in one O_DIRECT request per layer. GGUF lets a writer choose the tensor order and
// the alignment (general.alignment), so the result is still a GGUF any reader loads. The
// row-column bundles of ReLU models are a second copy of up and down, regrouped by neuron; they
// go after the last tensor, outside the tensor list, where GGUF readers do not look.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "direct_io.h"
#include "strata/model/weight_store.h"
#include "stream_layout.h"

namespace strata::model {
namespace {

constexpr const char* kLayerOrder[] = {"attn_norm.weight", "ffn_norm.weight", "attn_q.weight",
                                       "attn_k.weight",    "attn_v.weight",   "attn_output.weight",
                                       "ffn_gate.weight",  "ffn_up.weight",   "ffn_down.weight"};

Status io_status(const std::string& path, const std::string& what, int err) {
  return io_error(path + ": " + what + ": " + std::strerror(err));
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int64_t padded(int64_t n, int64_t a) { return (n + a - 1) / a * a; }

std::vector<uint64_t> to_u64(const std::vector<int64_t>& v) {
  return std::vector<uint64_t>(v.begin(), v.end());
}

// Appends the bundles of blocks [begin, end) to the file at `path`, each padded to `stride`.
Status append_bundles(const Model& m, int64_t begin, int64_t end, const std::string& path,
                      int64_t neurons, int64_t stride, int64_t alignment,
                      const std::function<void(int64_t, int64_t)>& progress, int64_t done,
                      int64_t total) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return io_status(path, "cannot open for appending", errno);
  std::vector<uint8_t> buf(static_cast<size_t>(stride));
  for (int64_t l = begin; l < end; ++l) {
    const LayerWeights& w = m.layer(l);
    const stream::BundleGeometry g = stream::bundle_geometry(w, neurons, alignment);
    for (int64_t b = 0; b < g.count; ++b) {
      std::fill(buf.begin(), buf.end(), 0);
      stream::fill_bundle(w, g, b, buf.data());
      if (!write_all(fd, buf.data(), buf.size())) {
        const int err = errno;
        ::close(fd);
        return io_status(path, "write failed", err);
      }
      done += stride;
    }
    if (progress) progress(done, total);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) return io_status(path, "close failed", errno);
  return {};
}

}  // namespace

namespace stream {

Result<RepackResult> write_stream_file(const Model& source, const FilePart& part,
                                       const RepackOptions& o, const std::string& out,
                                       const std::function<void(int64_t, int64_t)>& progress) {
  if (o.alignment < kDirectAlign || (o.alignment & (o.alignment - 1)) != 0 ||
      o.alignment > (1u << 24)) {
    return invalid_argument("alignment " + std::to_string(o.alignment) +
                            " must be a power of two from 4096 to 16 MiB");
  }
  const GgufFile& f = source.file();
  const ModelConfig& c = source.config();
  if (part.block_begin < source.block_begin() || part.block_begin > part.block_end ||
      part.block_end > source.block_end()) {
    return invalid_argument("blocks [" + std::to_string(part.block_begin) + ", " +
                            std::to_string(part.block_end) + ") are not inside " + f.path() +
                            "'s [" + std::to_string(source.block_begin()) + ", " +
                            std::to_string(source.block_end()) + ")");
  }
  if ((part.with_embedding && !source.has_embedding()) || (part.with_head && !source.has_head())) {
    return invalid_argument(f.path() + " lacks the embedding or head the file needs");
  }
  const bool relu = c.ffn_act == FfnAct::kRelu;
  if (o.bundles == SparseMode::kOn && !relu) {
    return invalid_argument(f.path() +
                            ": bundles serve sparse FFN loading, which needs a ReLU model "
                            "(strata.ffn_act = relu)");
  }
  const bool bundles = part.block_end > part.block_begin &&
                       (o.bundles == SparseMode::kOn || (o.bundles == SparseMode::kAuto && relu));
  if (bundles) {
    for (int64_t l = part.block_begin; l < part.block_end; ++l) {
      const int64_t block = dtype_block_elems(source.layer(l).ffn_down.type);
      if (o.bundle_neurons < 1 || c.ffn_dim % o.bundle_neurons != 0 ||
          o.bundle_neurons % block != 0) {
        return invalid_argument("--bundle-neurons " + std::to_string(o.bundle_neurons) +
                                " must divide ffn " + std::to_string(c.ffn_dim) +
                                " and be a multiple of the down matrix's block of " +
                                std::to_string(block) + " (a bundle keeps whole blocks)");
      }
    }
  }

  GgufWriter w;
  for (const auto& [key, value] : f.metadata()) {
    if (key == "general.alignment" || key.rfind("strata.stream.", 0) == 0) continue;
    if (part.slice && key.rfind("strata.slice.", 0) == 0) continue;
    w.set(key, value);
  }
  w.set_alignment(o.alignment);
  if (part.slice) {
    w.set_u32("strata.slice.block_begin", static_cast<uint32_t>(part.block_begin));
    w.set_u32("strata.slice.block_end", static_cast<uint32_t>(part.block_end));
    w.set_bool("strata.slice.has_embedding", part.with_embedding);
    w.set_bool("strata.slice.has_head", part.with_head);
    w.set_bool("strata.slice.tied_embeddings", c.tied_embeddings);
  }

  // The pinned tensors first (the embedding serves the first stage, the head the last; with
  // tied embeddings the head is token_embd), then the blocks.
  std::vector<const GgufTensorInfo*> order;
  const auto add = [&](const char* name) {
    if (const GgufTensorInfo* t = f.find_tensor(name)) order.push_back(t);
  };
  if (part.with_embedding || (part.with_head && c.tied_embeddings)) add("token_embd.weight");
  if (part.with_head) {
    add("output_norm.weight");
    if (!c.tied_embeddings) add("output.weight");
  }
  // Offsets as the writer lays them out: in order, each padded to the alignment.
  const auto align = static_cast<int64_t>(o.alignment);
  int64_t offset = 0;
  for (const GgufTensorInfo* t : order) offset += padded(t->n_bytes, align);
  std::vector<int64_t> layer_offsets;
  std::vector<int64_t> layer_bytes;
  for (int64_t l = part.block_begin; l < part.block_end; ++l) {
    layer_offsets.push_back(offset);
    for (const char* suffix : kLayerOrder) {
      const GgufTensorInfo* t = f.find_tensor("blk." + std::to_string(l) + "." + suffix);
      STRATA_CHECK(t != nullptr);
      order.push_back(t);
      offset += padded(t->n_bytes, align);
    }
    layer_bytes.push_back(offset - layer_offsets.back());
  }
  // Model::load uses every tensor: a whole file's are all placed.
  if (!part.slice) STRATA_CHECK(order.size() == f.tensors().size());
  // A slice without blocks (an embedding- or head-only stage) has nothing to stream.
  const bool has_layers = part.block_end > part.block_begin;
  if (has_layers) {
    w.set_u32(kKeyVersion, 1);
    w.set_u32(kKeyAlignment, o.alignment);
    w.set(kKeyLayerOffsets, GgufValue{GgufType::kArray, GgufType::kU64, to_u64(layer_offsets)});
    w.set(kKeyLayerBytes, GgufValue{GgufType::kArray, GgufType::kU64, to_u64(layer_bytes)});
  }

  RepackResult result;
  result.in_bytes = static_cast<int64_t>(f.file_bytes());
  result.bundles = bundles;
  int64_t stride = 0;
  int64_t n_bundles = 0;
  if (bundles) {
    std::vector<int64_t> bundle_offsets;
    for (int64_t l = part.block_begin; l < part.block_end; ++l) {
      const BundleGeometry g = bundle_geometry(source.layer(l), o.bundle_neurons, align);
      stride = std::max(stride, g.stride);
    }
    for (int64_t l = part.block_begin; l < part.block_end; ++l) {
      bundle_offsets.push_back(offset + n_bundles * stride);
      n_bundles += c.ffn_dim / o.bundle_neurons;
    }
    w.set_u32(kKeyBundleNeurons, static_cast<uint32_t>(o.bundle_neurons));
    w.set(kKeyBundleStride,
          GgufValue{GgufType::kU64, GgufType::kU32, static_cast<uint64_t>(stride)});
    w.set(kKeyBundleOffsets, GgufValue{GgufType::kArray, GgufType::kU64, to_u64(bundle_offsets)});
    result.bundle_bytes = n_bundles * stride;
  }
  for (const GgufTensorInfo* t : order) {
    const uint8_t* src = t->data;
    const auto n = static_cast<size_t>(t->n_bytes);
    w.add_tensor_fn(t->name, t->type, t->dims,
                    [src, n](uint8_t* dst) { std::memcpy(dst, src, n); });
  }

  const int64_t total = w.file_bytes() + result.bundle_bytes;
  const std::string tmp = out + ".repack." + std::to_string(::getpid());
  Status st = w.write(tmp, [&](int64_t done, int64_t) {
    if (progress) progress(done, total);
  });
  if (st.ok() && bundles) {
    st = append_bundles(source, part.block_begin, part.block_end, tmp, o.bundle_neurons, stride,
                        align, progress, w.file_bytes(), total);
  }
  if (st.ok() && std::rename(tmp.c_str(), out.c_str()) != 0) {
    st = io_status(out, "cannot rename " + tmp + " to it", errno);
  }
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return st;
  }
  // The layout recorded must be the one written: reading it back checks every extent.
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Model> check, Model::load(out));
  STRATA_ASSIGN_OR_RETURN(StreamMeta meta, read_stream_meta(*check));
  STRATA_CHECK_MSG(meta.present == has_layers && (meta.bundle_neurons > 0) == bundles,
                   "streaming layout does not read back");
  result.out_bytes = static_cast<int64_t>(check->file().file_bytes());
  return result;
}

}  // namespace stream

Result<RepackResult> repack_for_streaming(
    const std::string& in, const std::string& out, const RepackOptions& o,
    const std::function<void(int64_t done_bytes, int64_t total_bytes)>& progress) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, Model::load(in));
  stream::FilePart whole;
  whole.block_begin = m->block_begin();
  whole.block_end = m->block_end();
  whole.with_embedding = m->has_embedding();
  whole.with_head = m->has_head();
  // A repacked slice stays a slice: its strata.slice.* keys are copied with the rest.
  return stream::write_stream_file(*m, whole, o, out, progress);
}

}  // namespace strata::model
