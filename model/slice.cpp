// Model slices (the part of a model one pipeline stage runs) and content hashes.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "strata/model/model.h"
#include "stream_layout.h"

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
  // The streaming layout (docs/STREAMING.md): an agent whose budget is below its stage's
  // weights reads each streamed block as whole aligned extents, and ReLU models carry their
  // bundles for sparse FFN loading. The layout is deterministic, so the coordinator's hash of
  // the slice it cuts is the hash the agent checks and caches it under.
  stream::FilePart part;
  part.block_begin = block_begin;
  part.block_end = block_end;
  part.with_embedding = with_embedding;
  part.with_head = with_head;
  part.slice = true;
  return stream::write_stream_file(model, part, RepackOptions{}, path, {}).status();
}

}  // namespace strata::model
