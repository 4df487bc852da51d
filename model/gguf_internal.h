// Helpers shared by the GGUF reader and writer (private to the model library).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "strata/model/gguf.h"

namespace strata::model {

// "u32", "string", "array", ...; "unknown" for an id outside the enum.
const char* gguf_type_name(GgufType type);
// Bytes one value of `type` takes on disk at the least (a string: its 8-byte length). Not for
// kArray.
uint64_t gguf_min_value_bytes(GgufType type);
// "[4096, 32000]".
std::string gguf_dims_string(const std::vector<int64_t>& dims);
// ggml's name for any type id, supported or not ("q4_K"), or "unknown ggml type" — for errors.
std::string ggml_type_label(uint32_t type_id);

}  // namespace strata::model
