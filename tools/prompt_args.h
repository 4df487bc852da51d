// The prompt options shared by `strata generate` and `strata run`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "strata/base/status.h"

namespace strata::tools {

struct PromptArgs {
  std::string ids;     // "1,5,9"
  int64_t length = 0;  // the default prompt of this many ids
  CLI::Option* ids_opt = nullptr;
  CLI::Option* length_opt = nullptr;
};

// Adds --prompt-ids and --prompt-len (mutually exclusive) to `cmd`.
void add_prompt_options(CLI::App* cmd, PromptArgs* args);
// The prompt the options describe. kInvalidArgument when neither was given, an id is not a
// number, or the vocabulary is too small for the default prompt.
Result<std::vector<int32_t>> prompt_ids(const PromptArgs& args, int64_t vocab);

}  // namespace strata::tools
