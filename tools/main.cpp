// strata: profile devices, plan a model's split across them, run it. main() only builds the
// subcommand table, parses, dispatches, and maps the Status to an exit code:
// 0 success, 1 an environment failure (I/O, bad file, unreachable peer), 2 bad usage.
#include <cstdio>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "strata: run language models across the devices you own.\n"
      "  profile a device, plan a split of a model's layers across devices, run it."};
  app.set_version_flag("--version", "strata 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);

  strata::tools::Action action;
  strata::tools::add_model_command(app, action);
  strata::tools::add_generate_command(app, action);
  strata::tools::add_agent_command(app, action);
  strata::tools::add_run_command(app, action);
  strata::tools::add_profile_command(app, action);
  strata::tools::add_plan_command(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105, 106, ...) would tell a script nothing: bad usage is 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!action) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return 2;
  }
  const strata::Status status = action();
  if (status.ok()) return 0;
  std::fprintf(stderr, "strata: error: %s\n", status.message().c_str());
  return status.code() == strata::StatusCode::kInvalidArgument ? 2 : 1;
}
