// The storage figures of a device profile, shared by `strata generate --profile` and
// `strata agent --profile`: they pick the streaming read size (docs/STREAMING.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "strata/base/status.h"

namespace strata::tools {

// storage.seq_read_mb_per_s of the profile at `path` (docs/PROFILE_SCHEMA.md): chunk bytes ->
// MB/s. Figures are objects with a "value" (null when unavailable); bare numbers are accepted
// too. Errors: read_file's, kInvalidArgument naming the file when it is not JSON, has no such
// object, a key is not a chunk size, or no figure is measured.
Result<std::map<int64_t, double>> read_storage_profile(const std::string& path);

}  // namespace strata::tools
