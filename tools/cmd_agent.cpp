// strata agent: the long-running process on each device that serves one pipeline stage.
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>

#include "commands.h"
#include "storage_profile.h"
#include "strata/agent/agent.h"
#include "strata/base/io.h"

namespace strata::tools {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

struct AgentArgs {
  agent::AgentOptions o;
  std::string mem_budget;
  std::string profile;  // this machine's profile JSON: its storage figures pick the read size
};

Status run_agent(AgentArgs& a) {
  // Before any thread starts: ZeroMQ's I/O threads, the shaper and the workers inherit it.
  request_prompt_wakeups();
  if (!a.mem_budget.empty()) {
    STRATA_ASSIGN_OR_RETURN(a.o.mem_budget_bytes, parse_bytes(a.mem_budget));
  }
  if (!a.profile.empty()) {
    // Its storage figures pick the read size when a stage streams; without them reads are
    // 4 MiB.
    Result<std::map<int64_t, double>> storage = read_storage_profile(a.profile);
    if (storage.ok()) a.o.storage_seq_read_mb_per_s = std::move(storage).value();
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<agent::Agent> ag, agent::Agent::start(a.o));
  // The first line on stdout is the bound endpoints, so a script that asked for port * can
  // read which port it got.
  std::printf("strata agent listening: control %s data %s\n", ag->control_endpoint().c_str(),
              ag->data_endpoint().c_str());
  std::fflush(stdout);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return ag->serve(g_stop);
}

}  // namespace

void add_agent_command(CLI::App& root, Action& action) {
  auto a = std::make_shared<AgentArgs>();
  CLI::App* cmd =
      root.add_subcommand("agent", "Serve pipeline stages on this device (long-running)");
  cmd->add_option("--bind", a->o.bind, "Control endpoint; tcp://127.0.0.1:* picks a free port")
      ->capture_default_str();
  cmd->add_option("--data-bind", a->o.data_bind,
                  "Data endpoint (default: the control host, any port)");
  cmd->add_option("--name", a->o.name, "Name shown to the coordinator (default: host name)");
  cmd->add_option("--cache-dir", a->o.cache_dir,
                  "Where shipped model slices are cached (local flash)")
      ->capture_default_str();
  cmd->add_option("--model-dir", a->o.cache_dir,
                  "Alias of --cache-dir: the folder holding this agent's model slices");
  cmd->add_option("--threads,-t", a->o.n_threads, "Worker threads (the coordinator may override)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--mem-budget", a->mem_budget,
                  "Memory for a stage's weights and KV cache (e.g. 2G): a stage needing more "
                  "keeps a pinned resident set and streams the other layers from flash "
                  "(docs/STREAMING.md); one below the streaming minimum is refused");
  cmd->add_option("--emulate", a->o.emulate_profile,
                  "Reference device profile JSON: hold each step until that device's roofline time "
                  "(the planner's formula) and cap memory to its available memory")
      ->check(CLI::ExistingFile);
  cmd->add_option("--profile", a->profile,
                  "This machine's profile JSON: its storage figures pick the streaming read size")
      ->check(CLI::ExistingFile);
  cmd->add_option("--link-delay-ms", a->o.link_delay_ms,
                  "Emulated one-way delay of the outgoing data link")
      ->check(CLI::Range(0.0, 60000.0));
  cmd->add_option("--link-mbps", a->o.link_mbit_per_s,
                  "Emulated rate of the outgoing data link, Mbit/s (0 = off)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_flag("--quiet,-q", a->o.quiet, "No log lines on stderr");
  cmd->callback([a, &action] { action = [a] { return run_agent(*a); }; });
}

}  // namespace strata::tools
