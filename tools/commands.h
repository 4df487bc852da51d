// The table of strata's subcommands. Each subcommand lives in its own file and adds itself to
// the CLI11 tree through one `add_*` function; when the user selects it, it stores the work
// to do in `Action`, and main() runs that work and turns its Status into the exit code.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "strata/base/status.h"

namespace strata::tools {

using Action = std::function<Status()>;

// Each registers one subcommand (or a group) under `root`. Defined in tools/cmd_*.cpp.
void add_plan_command(CLI::App& root, Action& action);

}  // namespace strata::tools
