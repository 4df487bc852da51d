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

// `strata model synth|info` (tools/cmd_model.cpp).
void add_model_command(CLI::App& root, Action& action);
void add_generate_command(CLI::App& root, Action& action);  // generate
void add_agent_command(CLI::App& root, Action& action);     // agent
void add_run_command(CLI::App& root, Action& action);       // run
// `strata profile` (tools/cmd_profile.cpp).
void add_profile_command(CLI::App& root, Action& action);
// `strata profile link` (tools/cmd_profile_link.cpp), under the profile command.
void add_profile_link_command(CLI::App& profile, Action& action);

}  // namespace strata::tools
