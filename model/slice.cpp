// Model slices (the part of a model one pipeline stage runs) and content hashes.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "strata/model/model.h"

namespace strata::model {
namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t mix_lane(uint64_t acc, uint64_t w) {
  acc += w * kP2;
  acc = rotl(acc, 31);
  return acc * kP1;
}

uint64_t finish(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

// Streaming 4-lane hash: lanes take consecutive 8-byte words round-robin, so the result is
// the same however the input is split into update() calls.
class Hasher {
 public:
  void update(const uint8_t* p, size_t n) {
    total_ += n;
    while (n > 0) {
      const size_t take = std::min(n, sizeof(buf_) - fill_);
      std::memcpy(buf_ + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ == sizeof(buf_)) {
        consume(buf_);
        fill_ = 0;
      }
    }
  }
  uint64_t digest() const {
    uint64_t h = rotl(lane_[0], 1) + rotl(lane_[1], 7) + rotl(lane_[2], 12) + rotl(lane_[3], 18);
    h ^= total_ * kP3;
    for (size_t i = 0; i < fill_; ++i) h = (h ^ buf_[i]) * kP1;
    return finish(h);
  }

 private:
  void consume(const uint8_t* block) {
    for (int l = 0; l < 4; ++l) {
      uint64_t w = 0;
      std::memcpy(&w, block + 8 * l, 8);
      lane_[l] = mix_lane(lane_[l], w);
    }
  }
  uint64_t lane_[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  uint8_t buf_[32] = {};
  size_t fill_ = 0;
  uint64_t total_ = 0;
};

std::string hex64(uint64_t v) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

}  // namespace

std::string hash_bytes(const uint8_t* data, size_t size) {
  Hasher h;
  h.update(data, size);
  return hex64(h.digest());
}

Result<std::string> hash_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return errno == ENOENT ? not_found(path + ": no such file") : io_error(path + ": cannot open");
  }
  Hasher h;
  std::vector<uint8_t> buf(size_t{1} << 20);
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return io_error(path + ": read failed");
  return hex64(h.digest());
}

Status write_model_slice(const Model& model, int64_t block_begin, int64_t block_end,
                         bool with_embedding, bool with_head, const std::string& path) {
  const ModelConfig& c = model.config();
  if (block_begin < model.block_begin() || block_begin > block_end ||
      block_end > model.block_end()) {
    return invalid_argument("slice blocks [" + std::to_string(block_begin) + ", " +
                            std::to_string(block_end) + ") are not inside the model's [" +
                            std::to_string(model.block_begin()) + ", " +
                            std::to_string(model.block_end()) + ")");
  }
  if ((with_embedding && !model.has_embedding()) || (with_head && !model.has_head())) {
    return invalid_argument("the source model lacks the embedding or head the slice needs");
  }
  const GgufFile& f = model.file();
  GgufWriter w;
  w.set_alignment(static_cast<uint32_t>(f.alignment()));
  for (const auto& [key, value] : f.metadata()) {
    if (key.rfind("strata.slice.", 0) == 0 || key == "general.alignment") continue;
    w.set(key, value);
  }
  w.set_u32("strata.slice.block_begin", static_cast<uint32_t>(block_begin));
  w.set_u32("strata.slice.block_end", static_cast<uint32_t>(block_end));
  w.set_bool("strata.slice.has_embedding", with_embedding);
  w.set_bool("strata.slice.has_head", with_head);
  w.set_bool("strata.slice.tied_embeddings", c.tied_embeddings);

  const auto copy = [&](const std::string& name) {
    const GgufTensorInfo* t = f.find_tensor(name);
    STRATA_CHECK_MSG(t != nullptr, "tensor " + name + " vanished from a loaded model");
    const uint8_t* src = t->data;
    const auto n = static_cast<size_t>(t->n_bytes);
    w.add_tensor_fn(t->name, t->type, t->dims,
                    [src, n](uint8_t* dst) { std::memcpy(dst, src, n); });
  };
  if (with_embedding || (with_head && c.tied_embeddings)) copy("token_embd.weight");
  for (int64_t i = block_begin; i < block_end; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    for (const char* n : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                          "ffn_gate", "ffn_up", "ffn_down"}) {
      copy(p + n + ".weight");
    }
  }
  if (with_head) {
    copy("output_norm.weight");
    if (!c.tied_embeddings) copy("output.weight");
  }
  return w.write(path);
}

}  // namespace strata::model
