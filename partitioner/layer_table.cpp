#include "strata/partitioner/layer_table.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "json_util.h"
#include "strata/base/io.h"
#include "strata/model/types.h"

namespace strata::partitioner {
namespace {

using internal::Json;

constexpr const char* kSchema = "strata.layers/1";

Result<UnitKind> parse_kind(const std::string& text, const std::string& where) {
  if (text == "embedding") return UnitKind::kEmbedding;
  if (text == "block") return UnitKind::kBlock;
  if (text == "head") return UnitKind::kHead;
  if (text == "other") return UnitKind::kOther;
  return invalid_argument(where + ": kind '" + text +
                          "' is not one of embedding, block, head, other");
}

Status check_type_name(const std::string& type, const std::string& where) {
  const auto t = model::parse_dtype(type);
  if (!t || model::dtype_name(static_cast<uint32_t>(*t)).value() != type) {
    return invalid_argument(where + ": weight type '" + type +
                            "' is not one of f32, f16, bf16, q8_0, q4_0");
  }
  return {};
}

Result<LayerUnit> parse_unit(const Json& u, const std::string& default_type,
                             const std::string& where_prefix, size_t index) {
  std::string where = where_prefix + ": units[" + std::to_string(index) + "]";
  if (!u.is_object()) return invalid_argument(where + " is not an object");
  LayerUnit unit;
  const auto name = u.find("name");
  if (name == u.end() || !name->is_string() || name->get<std::string>().empty()) {
    return invalid_argument(where + ": name is missing");
  }
  unit.name = name->get<std::string>();
  where += " (" + unit.name + ")";
  if (const auto kind = u.find("kind"); kind != u.end()) {
    if (!kind->is_string()) return invalid_argument(where + ": kind must be a string");
    STRATA_ASSIGN_OR_RETURN(unit.kind, parse_kind(kind->get<std::string>(), where));
  }
  STRATA_ASSIGN_OR_RETURN(unit.flops_per_token,
                          internal::required_number(u, "flops_per_token", where));
  STRATA_ASSIGN_OR_RETURN(const auto attn,
                          internal::optional_number(u, "attn_flops_per_token_per_ctx", where));
  unit.attn_flops_per_token_per_ctx = attn.value_or(0.0);
  STRATA_ASSIGN_OR_RETURN(const auto weight_bytes,
                          internal::optional_bytes(u, "weight_bytes", where));
  if (const auto by_type = u.find("weight_bytes_by_type"); by_type != u.end()) {
    if (!by_type->is_object() || by_type->empty()) {
      return invalid_argument(where + ": weight_bytes_by_type must be an object of type: bytes");
    }
    for (const auto& [type, bytes] : by_type->items()) {
      STRATA_RETURN_IF_ERROR(check_type_name(type, where));
      STRATA_ASSIGN_OR_RETURN(
          const int64_t b,
          internal::required_bytes(*by_type, type.c_str(), where + ": weight_bytes_by_type"));
      unit.weight_bytes_by_type[type] = b;
      unit.weight_bytes += b;
    }
    if (weight_bytes && *weight_bytes != unit.weight_bytes) {
      return invalid_argument(where + ": weight_bytes " + std::to_string(*weight_bytes) +
                              " differs from the sum of weight_bytes_by_type " +
                              std::to_string(unit.weight_bytes));
    }
  } else {
    if (!weight_bytes) return invalid_argument(where + ": weight_bytes is missing");
    if (default_type.empty() && *weight_bytes > 0) {
      return invalid_argument(where +
                              ": weight_bytes_by_type is missing and the table has no "
                              "weight_type to assume");
    }
    unit.weight_bytes = *weight_bytes;
    if (unit.weight_bytes > 0) unit.weight_bytes_by_type[default_type] = unit.weight_bytes;
  }
  STRATA_ASSIGN_OR_RETURN(const auto read,
                          internal::optional_bytes(u, "weight_bytes_read_per_token", where));
  unit.weight_bytes_read_per_token = read.value_or(unit.weight_bytes);
  if (unit.weight_bytes_read_per_token > unit.weight_bytes) {
    return invalid_argument(where + ": weight_bytes_read_per_token " +
                            std::to_string(unit.weight_bytes_read_per_token) +
                            " exceeds weight_bytes " + std::to_string(unit.weight_bytes));
  }
  STRATA_ASSIGN_OR_RETURN(unit.activation_bytes_out,
                          internal::required_bytes(u, "activation_bytes_out", where));
  STRATA_ASSIGN_OR_RETURN(const auto kv, internal::optional_bytes(u, "kv_bytes_per_token", where));
  unit.kv_bytes_per_token = kv.value_or(0);
  return unit;
}

}  // namespace

const char* unit_kind_name(UnitKind kind) {
  switch (kind) {
    case UnitKind::kEmbedding: return "embedding";
    case UnitKind::kBlock: return "block";
    case UnitKind::kHead: return "head";
    case UnitKind::kOther: return "other";
  }
  return "other";
}

int64_t LayerTable::total_weight_bytes() const {
  int64_t sum = 0;
  for (const auto& u : units) sum += u.weight_bytes;
  return sum;
}

int64_t LayerTable::block_index(int64_t unit) const {
  STRATA_CHECK(unit >= 0 && unit <= static_cast<int64_t>(units.size()));
  int64_t blocks = 0;
  for (int64_t i = 0; i < unit; ++i)
    blocks += units[static_cast<size_t>(i)].kind == UnitKind::kBlock;
  return blocks;
}

std::vector<std::string> LayerTable::weight_types() const {
  std::set<std::string> types;
  for (const auto& u : units) {
    for (const auto& [type, bytes] : u.weight_bytes_by_type) {
      if (bytes > 0) types.insert(type);
    }
  }
  return {types.begin(), types.end()};
}

Result<LayerTable> parse_layer_table(std::string_view json_text, const std::string& source) {
  STRATA_ASSIGN_OR_RETURN(const Json root, internal::parse_json(json_text, source));
  if (!root.is_object()) return invalid_argument(source + ": a layer table must be a JSON object");
  const auto schema = root.find("schema");
  if (schema == root.end() || !schema->is_string() || *schema != kSchema) {
    return invalid_argument(
        source + ": schema must be \"" + kSchema + "\"" +
        (schema == root.end() ? " (it is missing)" : ", not " + schema->dump()));
  }
  LayerTable table;
  table.source = source;
  table.name = std::filesystem::path(source).stem().string();
  if (const auto name = root.find("name"); name != root.end() && name->is_string()) {
    table.name = name->get<std::string>();
  }
  STRATA_ASSIGN_OR_RETURN(const auto input,
                          internal::optional_bytes(root, "input_bytes_per_token", source));
  table.input_bytes_per_token = input.value_or(4);
  std::string default_type;
  if (const auto wt = root.find("weight_type"); wt != root.end()) {
    if (!wt->is_string()) return invalid_argument(source + ": weight_type must be a string");
    default_type = wt->get<std::string>();
    STRATA_RETURN_IF_ERROR(check_type_name(default_type, source));
  }
  const auto units = root.find("units");
  if (units == root.end() || !units->is_array() || units->empty()) {
    return invalid_argument(source + ": units must be a non-empty array");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < units->size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(LayerUnit unit, parse_unit((*units)[i], default_type, source, i));
    const std::string where = source + ": units[" + std::to_string(i) + "] (" + unit.name + ")";
    if (!names.insert(unit.name).second) {
      return invalid_argument(where + ": the name is used by an earlier unit");
    }
    if (unit.kind == UnitKind::kEmbedding && i != 0) {
      return invalid_argument(where + ": an embedding must be the first unit (it opens stage 0)");
    }
    if (unit.kind == UnitKind::kHead && i + 1 != units->size()) {
      return invalid_argument(where + ": a head must be the last unit (it closes the last stage)");
    }
    table.units.push_back(std::move(unit));
  }
  return table;
}

Result<LayerTable> load_layer_table(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  return parse_layer_table(text, path);
}

std::string layer_table_to_json(const LayerTable& table) {
  Json root = Json::object();
  root["schema"] = kSchema;
  root["name"] = table.name;
  root["input_bytes_per_token"] = table.input_bytes_per_token;
  Json units = Json::array();
  for (const auto& u : table.units) {
    Json j = Json::object();
    j["name"] = u.name;
    j["kind"] = unit_kind_name(u.kind);
    j["flops_per_token"] = u.flops_per_token;
    if (u.attn_flops_per_token_per_ctx > 0) {
      j["attn_flops_per_token_per_ctx"] = u.attn_flops_per_token_per_ctx;
    }
    j["weight_bytes"] = u.weight_bytes;
    j["weight_bytes_by_type"] = Json::object();
    for (const auto& [type, bytes] : u.weight_bytes_by_type)
      j["weight_bytes_by_type"][type] = bytes;
    j["weight_bytes_read_per_token"] = u.weight_bytes_read_per_token;
    j["activation_bytes_out"] = u.activation_bytes_out;
    j["kv_bytes_per_token"] = u.kv_bytes_per_token;
    units.push_back(std::move(j));
  }
  root["units"] = std::move(units);
  return root.dump(2) + "\n";
}

Result<LayerTable> llama_layer_table(const LlamaShape& shape, const std::string& weight_type) {
  const std::string where = "llama shape '" + shape.name + "'";
  STRATA_RETURN_IF_ERROR(check_type_name(weight_type, where));
  const model::DType type = *model::parse_dtype(weight_type);
  if (shape.n_layers <= 0 || shape.dim <= 0 || shape.n_heads <= 0 || shape.n_kv_heads <= 0 ||
      shape.ffn_dim <= 0 || shape.vocab <= 0) {
    return invalid_argument(where + ": every dimension must be positive");
  }
  if (shape.dim % shape.n_heads != 0 || shape.n_heads % shape.n_kv_heads != 0) {
    return invalid_argument(where + ": dim must divide into n_heads and n_heads into n_kv_heads");
  }
  const int64_t block = model::dtype_block_elems(type);
  if (shape.dim % block != 0 || shape.ffn_dim % block != 0) {
    return invalid_argument(where + ": dim and ffn_dim must be multiples of " +
                            std::to_string(block) + " for " + weight_type);
  }
  const int64_t head_dim = shape.dim / shape.n_heads;
  const int64_t kv_dim = shape.n_kv_heads * head_dim;
  const int64_t row_dim = model::row_bytes(type, shape.dim);  // a row of k = dim elements
  const int64_t row_ffn = model::row_bytes(type, shape.ffn_dim);
  const int64_t hidden_bytes = shape.dim * 4;  // f32 hidden state handed between units

  LayerTable table;
  table.name = shape.name + " " + weight_type;
  table.input_bytes_per_token = 4;

  LayerUnit embd;
  embd.name = "token_embd";
  embd.kind = UnitKind::kEmbedding;
  embd.weight_bytes = shape.vocab * row_dim;
  embd.weight_bytes_by_type[weight_type] = embd.weight_bytes;
  embd.weight_bytes_read_per_token = row_dim;  // a lookup reads one row
  embd.activation_bytes_out = hidden_bytes;
  table.units.push_back(embd);

  // q, k, v, o, gate, up take k = dim; down takes k = ffn_dim.
  const int64_t matrix_bytes = shape.dim * row_dim + kv_dim * row_dim * 2 + shape.dim * row_dim +
                               shape.ffn_dim * row_dim * 2 + shape.dim * row_ffn;
  const int64_t params =
      shape.dim * shape.dim * 2 + kv_dim * shape.dim * 2 + shape.ffn_dim * shape.dim * 3;
  const int64_t norm_bytes = 2 * shape.dim * 4;  // attn_norm and ffn_norm, f32
  for (int64_t i = 0; i < shape.n_layers; ++i) {
    LayerUnit blk;
    blk.name = "blk." + std::to_string(i);
    blk.kind = UnitKind::kBlock;
    blk.flops_per_token = 2.0 * static_cast<double>(params);
    blk.attn_flops_per_token_per_ctx = 4.0 * static_cast<double>(shape.dim);  // QK^T and AV
    blk.weight_bytes_by_type[weight_type] += matrix_bytes;
    blk.weight_bytes_by_type["f32"] += norm_bytes;
    blk.weight_bytes = matrix_bytes + norm_bytes;
    blk.weight_bytes_read_per_token = blk.weight_bytes;
    blk.activation_bytes_out = hidden_bytes;
    blk.kv_bytes_per_token = 2 * kv_dim * 4;  // K and V rows in f32
    table.units.push_back(blk);
  }

  LayerUnit head;
  head.name = "output";
  head.kind = UnitKind::kHead;
  head.flops_per_token = 2.0 * static_cast<double>(shape.vocab * shape.dim);
  head.weight_bytes_by_type[weight_type] += shape.vocab * row_dim;
  head.weight_bytes_by_type["f32"] += hidden_bytes;  // output_norm
  head.weight_bytes = shape.vocab * row_dim + hidden_bytes;
  head.weight_bytes_read_per_token = head.weight_bytes;
  head.activation_bytes_out = 4;  // the last stage samples: a token id goes back
  table.units.push_back(head);
  return table;
}

}  // namespace strata::partitioner
