#include "storage_profile.h"

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "strata/base/io.h"

namespace strata::tools {

Result<std::map<int64_t, double>> read_storage_profile(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read_file(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument(path + ": not valid JSON");
  const nlohmann::json* seq = nullptr;
  if (j.contains("storage") && j["storage"].is_object() &&
      j["storage"].contains("seq_read_mb_per_s")) {
    seq = &j["storage"]["seq_read_mb_per_s"];
  }
  if (seq == nullptr || !seq->is_object()) {
    return invalid_argument(path + ": no storage.seq_read_mb_per_s object in the profile");
  }
  std::map<int64_t, double> out;
  for (const auto& [key, fig] : seq->items()) {
    char* end = nullptr;
    const long long chunk = std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || chunk <= 0) {
      return invalid_argument(path + ": storage.seq_read_mb_per_s key '" + key +
                              "' is not a chunk size in bytes");
    }
    const nlohmann::json& v = fig.is_object() && fig.contains("value") ? fig["value"] : fig;
    if (v.is_number() && v.get<double>() > 0) out[chunk] = v.get<double>();
  }
  if (out.empty()) {
    return invalid_argument(path + ": storage.seq_read_mb_per_s holds no measured figure");
  }
  return out;
}

}  // namespace strata::tools
