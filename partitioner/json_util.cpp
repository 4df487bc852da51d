#include "json_util.h"

#include <cmath>

namespace strata::partitioner::internal {

Result<Json> parse_json(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return corrupt(source + ": not valid JSON: " + e.what());
  }
}

const Json* find_path(const Json& root, std::string_view dotted_path) {
  const Json* node = &root;
  while (!dotted_path.empty()) {
    const size_t dot = dotted_path.find('.');
    const std::string key(dotted_path.substr(0, dot));
    if (!node->is_object()) return nullptr;
    const auto it = node->find(key);
    if (it == node->end()) return nullptr;
    node = &*it;
    dotted_path = dot == std::string_view::npos ? std::string_view{} : dotted_path.substr(dot + 1);
  }
  return node;
}

Result<std::optional<double>> optional_number(const Json& object, const char* key,
                                              const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::optional<double>{};
  if (!it->is_number()) {
    return invalid_argument(where + ": " + key + " must be a non-negative number, not " +
                            it->dump());
  }
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < 0) {
    return invalid_argument(where + ": " + key + " must be a non-negative number, not " +
                            it->dump());
  }
  return std::optional<double>{v};
}

Result<double> required_number(const Json& object, const char* key, const std::string& where) {
  STRATA_ASSIGN_OR_RETURN(const std::optional<double> v, optional_number(object, key, where));
  if (!v) return invalid_argument(where + ": " + key + " is missing");
  return *v;
}

Result<std::optional<int64_t>> optional_bytes(const Json& object, const char* key,
                                              const std::string& where) {
  STRATA_ASSIGN_OR_RETURN(const std::optional<double> v, optional_number(object, key, where));
  if (!v) return std::optional<int64_t>{};
  if (*v != std::floor(*v) || *v > 9.0e18) {
    return invalid_argument(where + ": " + key + " must be a whole number of bytes, not " +
                            object.at(key).dump());
  }
  return std::optional<int64_t>{static_cast<int64_t>(*v)};
}

Result<int64_t> required_bytes(const Json& object, const char* key, const std::string& where) {
  STRATA_ASSIGN_OR_RETURN(const std::optional<int64_t> v, optional_bytes(object, key, where));
  if (!v) return invalid_argument(where + ": " + key + " is missing");
  return *v;
}

}  // namespace strata::partitioner::internal
