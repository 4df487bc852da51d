// GgufFile's lookups and the helpers the reader and writer share.
#include <string>
#include <type_traits>

#include "gguf_internal.h"
#include "strata/model/gguf.h"

namespace strata::model {

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kU8: return "u8";
    case GgufType::kI8: return "i8";
    case GgufType::kU16: return "u16";
    case GgufType::kI16: return "i16";
    case GgufType::kU32: return "u32";
    case GgufType::kI32: return "i32";
    case GgufType::kF32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "u64";
    case GgufType::kI64: return "i64";
    case GgufType::kF64: return "f64";
  }
  return "unknown";
}

uint64_t gguf_min_value_bytes(GgufType type) {
  switch (type) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool: return 1;
    case GgufType::kU16:
    case GgufType::kI16: return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32: return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
    case GgufType::kString: return 8;
    case GgufType::kArray: break;
  }
  STRATA_CHECK_MSG(false, "gguf_min_value_bytes of an array");
  return 0;
}

std::string gguf_dims_string(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

std::string ggml_type_label(uint32_t type_id) {
  // ggml's type ids, so that an unsupported type is named and not just numbered.
  static const char* const kNames[] = {"f32",
                                       "f16",
                                       "q4_0",
                                       "q4_1",
                                       "q4_2 (removed)",
                                       "q4_3 (removed)",
                                       "q5_0",
                                       "q5_1",
                                       "q8_0",
                                       "q8_1",
                                       "q2_K",
                                       "q3_K",
                                       "q4_K",
                                       "q5_K",
                                       "q6_K",
                                       "q8_K",
                                       "iq2_xxs",
                                       "iq2_xs",
                                       "iq3_xxs",
                                       "iq1_s",
                                       "iq4_nl",
                                       "iq3_s",
                                       "iq2_s",
                                       "iq4_xs",
                                       "i8",
                                       "i16",
                                       "i32",
                                       "i64",
                                       "f64",
                                       "iq1_m",
                                       "bf16",
                                       "q4_0_4_4 (removed)",
                                       "q4_0_4_8 (removed)",
                                       "q4_0_8_8 (removed)",
                                       "tq1_0",
                                       "tq2_0",
                                       "iq4_nl_4_4 (removed)",
                                       "iq4_nl_4_8 (removed)",
                                       "iq4_nl_8_8 (removed)",
                                       "mxfp4"};
  if (type_id < sizeof(kNames) / sizeof(kNames[0])) return kNames[type_id];
  return "unknown ggml type";
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const GgufTensorInfo& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

Status wrong_type(const std::string& path, const std::string& key, const GgufValue& v,
                  const char* expected) {
  std::string found = gguf_type_name(v.type);
  if (v.type == GgufType::kArray) found = std::string("array of ") + gguf_type_name(v.array_type);
  return corrupt(path + ": key '" + key + "' is " + found + ", expected " + expected);
}

}  // namespace

Result<uint64_t> GgufFile::get_u64(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return not_found(path_ + ": key '" + key + "' is missing");
  const GgufValue& v = it->second;
  if (v.type != GgufType::kArray) {
    if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
    if (const auto* s = std::get_if<int64_t>(&v.v); s != nullptr && *s >= 0) {
      return static_cast<uint64_t>(*s);
    }
  }
  return wrong_type(path_, key, v, "a non-negative integer");
}

Result<double> GgufFile::get_f64(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return not_found(path_ + ": key '" + key + "' is missing");
  const GgufValue& v = it->second;
  if (v.type != GgufType::kArray) {
    if (const auto* u = std::get_if<uint64_t>(&v.v)) return static_cast<double>(*u);
    if (const auto* s = std::get_if<int64_t>(&v.v)) return static_cast<double>(*s);
    if (const auto* d = std::get_if<double>(&v.v)) return *d;
  }
  return wrong_type(path_, key, v, "a number");
}

Result<std::string> GgufFile::get_string(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return not_found(path_ + ": key '" + key + "' is missing");
  if (const auto* s = std::get_if<std::string>(&it->second.v)) return *s;
  return wrong_type(path_, key, it->second, "a string");
}

Result<bool> GgufFile::get_bool(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return not_found(path_ + ": key '" + key + "' is missing");
  if (const auto* b = std::get_if<bool>(&it->second.v)) return *b;
  return wrong_type(path_, key, it->second, "a bool");
}

Result<std::vector<std::string>> GgufFile::get_string_array(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return not_found(path_ + ": key '" + key + "' is missing");
  if (const auto* s = std::get_if<std::vector<std::string>>(&it->second.v)) return *s;
  return wrong_type(path_, key, it->second, "an array of strings");
}

Result<uint64_t> GgufFile::get_array_length(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return not_found(path_ + ": key '" + key + "' is missing");
  const GgufValue& v = it->second;
  if (v.type != GgufType::kArray) return wrong_type(path_, key, v, "an array");
  return std::visit(
      [](const auto& x) -> uint64_t {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, uint64_t> || std::is_same_v<X, int64_t> ||
                      std::is_same_v<X, double> || std::is_same_v<X, bool> ||
                      std::is_same_v<X, std::string>) {
          return 0;
        } else {
          return x.size();
        }
      },
      v.v);
}

}  // namespace strata::model
