// GGUF v3 files: a validating reader over a read-only mmap, and a writer.
//
// The reader checks magic, version, every count, string length, value type, tensor rank and
// dimension, type id, offset, alignment and byte size against the file before anything is
// used; a malformed file gives one Status (kCorrupt / kUnsupported) naming the file and what is
// wrong, never a crash or a read out of bounds. Thread-safety: a GgufFile is immutable after
// open() and may be read from any number of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "strata/base/status.h"
#include "strata/model/types.h"

namespace strata::model {

// GGUF metadata value types (gguf_type).
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// One metadata value. Integers of every width are held as int64/uint64 with their GGUF type
// kept in `type` so that a file round-trips exactly; arrays hold their element type.
struct GgufValue {
  GgufType type = GgufType::kU32;
  GgufType array_type = GgufType::kU32;  // for kArray
  std::variant<uint64_t, int64_t, double, bool, std::string, std::vector<uint64_t>,
               std::vector<int64_t>, std::vector<double>, std::vector<bool>,
               std::vector<std::string>>
      v;
};

struct GgufTensorInfo {
  std::string name;
  DType type = DType::kF32;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the contiguous (row) length
  uint64_t offset = 0;        // relative to the start of the data section
  int64_t n_elements = 0;
  int64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping (reader only)
};

class GgufFile {
 public:
  // Maps and validates `path`. Errors: kNotFound/kIo/kPermissionDenied for the OS, kCorrupt
  // for a malformed file, kUnsupported for a valid file strata cannot use (e.g. a tensor type
  // other than f32/f16/bf16/q8_0/q4_0); every message starts with the path.
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // The same checks over a caller-owned buffer (fuzzing, tests); `bytes` must outlive the file.
  static Result<std::unique_ptr<GgufFile>> parse(const uint8_t* bytes, size_t size,
                                                 const std::string& name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t file_bytes() const { return size_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute offset of tensor data

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // Returns the tensor named `name` or nullptr.
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  // Typed metadata getters: the value, or kNotFound / kCorrupt (wrong type) naming the key.
  // get_u64 accepts any unsigned or non-negative signed integer type; get_f64 any number.
  Result<uint64_t> get_u64(const std::string& key) const;
  Result<double> get_f64(const std::string& key) const;
  Result<std::string> get_string(const std::string& key) const;
  Result<std::vector<std::string>> get_string_array(const std::string& key) const;
  Result<bool> get_bool(const std::string& key) const;
  // The element count of an array value; kCorrupt when the key is not an array.
  Result<uint64_t> get_array_length(const std::string& key) const;
  bool has(const std::string& key) const { return kv_.count(key) != 0; }

 private:
  GgufFile() = default;
  friend class GgufParser;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
  const uint8_t* base_ = nullptr;
  void* mapping_ = nullptr;  // non-null when this object owns an mmap
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// Builds a GGUF v3 file in memory order: metadata in insertion order, then tensor infos, then
// tensor data, each tensor aligned to `alignment` (general.alignment is written when it is
// not 32). Not thread-safe.
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue value);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, std::string v);
  void set_string_array(const std::string& key, std::vector<std::string> v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void set_alignment(uint32_t alignment);

  // Adds a tensor; `data` must hold exactly the tensor's bytes (row_bytes(type, dims[0]) times
  // the product of the other dims); the writer copies it. Checked: name unique, sizes match.
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims,
                  std::vector<uint8_t> data);
  // Adds a tensor whose bytes are produced only when the file is written: `fill(dst)` must
  // write exactly the tensor's bytes to dst. Lets `model synth` write multi-GB files without
  // holding them in memory.
  void add_tensor_fn(const std::string& name, DType type, const std::vector<int64_t>& dims,
                     std::function<void(uint8_t* dst)> fill);

  // Writes the file sequentially (through a temporary in the same folder and a rename, so a
  // reader never sees half a file). `progress(done_bytes, total_bytes)`, when set, is called
  // after each tensor. kIo naming the path on failure (the temporary is removed).
  Status write(
      const std::string& path,
      const std::function<void(int64_t done_bytes, int64_t total_bytes)>& progress = {}) const;
  // The size in bytes of the file write() produces.
  int64_t file_bytes() const;
  // Serializes to bytes (tests, fuzz seeds).
  std::vector<uint8_t> serialize() const;

 private:
  struct Tensor {
    std::string name;
    DType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
    std::function<void(uint8_t*)> fill;  // used when data is empty
  };
  std::vector<uint8_t> serialize_head() const;  // header, metadata, infos, padding

  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace strata::model
