// `strata profile link ENDPOINT`: round-trip time and bandwidth to a running agent over the
// runtime's own ZeroMQ path, written in the form `strata plan --links` reads (docs/WIRE.md).
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "strata/base/io.h"
#include "strata/transport/channel.h"
#include "strata/transport/link_probe.h"

namespace strata::tools {
namespace {

struct LinkArgs {
  std::vector<std::string> endpoints;
  transport::LinkProbeOptions options;
  double burst_mib = 1;
  std::string output;
};

nlohmann::json spread_json(const transport::Spread& s) {
  return {{"median", s.median}, {"p10", s.p10}, {"p90", s.p90}, {"n", s.n}};
}

Status run_link(LinkArgs a) {
  request_prompt_wakeups();  // RTTs without a compute slice in them
  a.options.burst_message_bytes = static_cast<uint64_t>(a.burst_mib * 1024 * 1024);
  STRATA_ASSIGN_OR_RETURN(transport::Context ctx, transport::Context::create(1));
  nlohmann::json links = nlohmann::json::array();
  for (const std::string& ep : a.endpoints) {
    std::fprintf(
        stderr, "strata profile link: probing %s (%d pings, %d bursts of %d x %.1f MiB)...\n",
        ep.c_str(), a.options.n_pings, a.options.n_bursts, a.options.burst_messages, a.burst_mib);
    STRATA_ASSIGN_OR_RETURN(transport::LinkProbe p, transport::probe_link(ctx, ep, a.options));
    std::fprintf(stderr,
                 "  %s -> %s: rtt %.3f ms (p10 %.3f, p90 %.3f), %.1f Mbit/s (p10 %.1f, p90 %.1f)\n",
                 p.local_name.c_str(), p.peer_name.c_str(), p.rtt_ms.median, p.rtt_ms.p10,
                 p.rtt_ms.p90, p.mbit_per_s.median, p.mbit_per_s.p10, p.mbit_per_s.p90);
    links.push_back(
        {{"a", p.local_name},
         {"b", p.peer_name},
         {"rtt_ms", p.rtt_ms.median},
         {"mbit_per_s", p.mbit_per_s.median},
         {"source", "strata profile link " + ep},
         {"stats",
          {{"rtt_ms", spread_json(p.rtt_ms)}, {"mbit_per_s", spread_json(p.mbit_per_s)}}}});
  }
  const std::string doc = nlohmann::json{{"links", links}}.dump(2) + "\n";
  if (!a.output.empty()) return write_file_atomic(a.output, doc);
  std::printf("%s", doc.c_str());
  return {};
}

}  // namespace

void add_profile_link_command(CLI::App& profile, Action& action) {
  auto a = std::make_shared<LinkArgs>();
  CLI::App* cmd = profile.add_subcommand(
      "link",
      "Measure RTT and bandwidth to running agents; prints JSON that strata plan --links reads");
  cmd->add_option("endpoint", a->endpoints,
                  "Agent control endpoints (tcp://HOST:PORT), one or more")
      ->required();
  cmd->add_option("--name", a->options.local_name,
                  "This end's device name in the output (the link's \"a\")")
      ->capture_default_str();
  cmd->add_option("--pings", a->options.n_pings, "Round trips for the RTT")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--bursts", a->options.n_bursts, "Bandwidth samples")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--burst-mib", a->burst_mib, "MiB the agent sends back per burst message")
      ->check(CLI::Range(0.001, 64.0))
      ->capture_default_str();
  cmd->add_option("--timeout-ms", a->options.reply_timeout_ms, "Deadline per answer")
      ->check(CLI::Range(1.0, 3.6e6))
      ->capture_default_str();
  cmd->add_option("-o,--output", a->output, "Write the JSON to FILE instead of stdout");
  cmd->callback([a, &action] { action = [a] { return run_link(*a); }; });
}

}  // namespace strata::tools
