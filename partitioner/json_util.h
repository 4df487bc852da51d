// Internal JSON helpers of the partitioner: parsing without exceptions leaking out, and
// reading fields with messages that name the file and the path of the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "strata/base/status.h"

namespace strata::partitioner::internal {

using Json = nlohmann::json;

// Parses `text`; kCorrupt "<source>: not valid JSON: <where and why>" on failure.
Result<Json> parse_json(std::string_view text, const std::string& source);

// Walks a dotted path ("memory.read_gb_per_s.threads_all") through nested objects; returns
// null when any step is missing or not an object.
const Json* find_path(const Json& root, std::string_view dotted_path);

// A number at `key` of `object`: nullopt when absent or null; kInvalidArgument
// "<where>: <key> must be a non-negative number" when present but not one.
Result<std::optional<double>> optional_number(const Json& object, const char* key,
                                              const std::string& where);
// As optional_number, but absence is kInvalidArgument "<where>: <key> is missing".
Result<double> required_number(const Json& object, const char* key, const std::string& where);
// A non-negative integer byte count (accepts integral doubles).
Result<int64_t> required_bytes(const Json& object, const char* key, const std::string& where);
Result<std::optional<int64_t>> optional_bytes(const Json& object, const char* key,
                                              const std::string& where);

}  // namespace strata::partitioner::internal
