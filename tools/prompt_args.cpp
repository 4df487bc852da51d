#include "prompt_args.h"

#include <climits>
#include <cstdlib>
#include <sstream>

#include "strata/model/engine.h"

namespace strata::tools {

void add_prompt_options(CLI::App* cmd, PromptArgs* args) {
  args->ids_opt =
      cmd->add_option("--prompt-ids", args->ids, "Comma-separated prompt token ids, e.g. 1,5,9");
  args->length_opt =
      cmd->add_option("--prompt-len", args->length,
                      "Use the default prompt of N ids: 1, then 259+((i*7919) mod (V-259))")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  args->ids_opt->excludes(args->length_opt);
}

Result<std::vector<int32_t>> prompt_ids(const PromptArgs& args, int64_t vocab) {
  if (!args.ids.empty()) {
    std::vector<int32_t> ids;
    std::stringstream ss(args.ids);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      const long v = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || v < 0 || v > INT32_MAX) {
        return invalid_argument("--prompt-ids: '" + item + "' is not a token id");
      }
      if (v >= vocab) {
        return invalid_argument("--prompt-ids: " + item + " is outside the vocabulary (" +
                                std::to_string(vocab) + ")");
      }
      ids.push_back(static_cast<int32_t>(v));
    }
    if (ids.empty()) return invalid_argument("--prompt-ids is empty");
    return ids;
  }
  if (args.length > 0) {
    if (vocab <= 259) return invalid_argument("--prompt-len needs a vocabulary over 259 tokens");
    return model::default_prompt(args.length, vocab);
  }
  return invalid_argument("give --prompt-ids or --prompt-len");
}

}  // namespace strata::tools
