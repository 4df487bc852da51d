// strata run: the coordinator. Drives a plan over running agents and reports what it measured
// beside what the plan predicted.
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "prompt_args.h"
#include "strata/agent/coordinator.h"
#include "strata/base/io.h"
#include "strata/model/model.h"

namespace strata::tools {
namespace {

struct RunArgs {
  std::string plan;
  std::string model;
  std::vector<std::string> agents;
  PromptArgs prompt;
  int64_t n_gen = 16;
  int64_t sequences = 1;
  int threads = 0;
  float temp = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int64_t step_tokens = 128;
  int groups = 0;
  double timeout_ms = 15000;
  int max_replans = 2;
  double link_delay_ms = 0;
  double link_mbit_per_s = 0;
  std::string result_bind = "tcp://127.0.0.1:*";
  std::string slice_dir = "strata-slices";
  bool json = false;
  bool logits = false;
  bool quiet = false;
};

Status run_run(const RunArgs& a) {
  request_prompt_wakeups();  // inherited by every thread this process starts
  agent::RunOptions o;
  std::vector<std::string> order;
  for (const std::string& spec : a.agents) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      return invalid_argument("--agent '" + spec + "' is not NAME=ENDPOINT");
    }
    const std::string name = spec.substr(0, eq);
    if (!o.agents.emplace(name, spec.substr(eq + 1)).second)
      return invalid_argument("--agent " + name + " given twice");
    order.push_back(name);
  }
  o.model_path = a.model;
  if (!a.plan.empty()) {
    STRATA_ASSIGN_OR_RETURN(o.plan, agent::load_plan(a.plan));
    if (o.model_path.empty()) o.model_path = o.plan.model_source;
  }
  if (o.model_path.empty())
    return invalid_argument("give --model FILE.gguf (the plan does not name its model file)");
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<model::Model> m, model::Model::load(o.model_path));
  if (a.plan.empty()) o.plan = agent::even_plan(order, m->config().n_layers);
  STRATA_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt,
                          prompt_ids(a.prompt, m->config().vocab));
  m.reset();
  o.prompts.assign(static_cast<size_t>(a.sequences), prompt);
  o.n_gen = a.n_gen;
  o.sampler = {a.temp, a.top_k, a.top_p, a.seed};
  o.threads_per_agent = a.threads;
  o.step_token_budget = a.step_tokens;
  o.n_groups = a.groups;
  o.agent_timeout_ms = a.timeout_ms;
  o.max_replans = a.max_replans;
  o.link_delay_ms = a.link_delay_ms;
  o.link_mbit_per_s = a.link_mbit_per_s;
  o.result_bind = a.result_bind;
  o.slice_dir = a.slice_dir;
  o.want_logits = a.logits;
  if (!a.quiet)
    o.on_progress = [](const std::string& s) {
      std::fprintf(stderr, "strata run: %s\n", s.c_str());
    };
  if (!a.json) {
    // Sequence 0 streams as its tokens arrive; every sequence is listed in full at the end.
    o.on_token = [](int32_t seq, int64_t, int32_t tok) {
      if (seq != 0) return;
      std::printf("%d ", tok);
      std::fflush(stdout);
    };
  }
  STRATA_ASSIGN_OR_RETURN(agent::RunReport r, agent::run_plan(o));
  if (a.json) {
    nlohmann::json j = nlohmann::json::parse(agent::report_json(r));
    if (a.logits) {
      j["first_logits"] = r.first_logits;
      j["last_logits"] = r.last_logits;
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("\n");
    for (size_t i = 1; i < r.tokens.size(); ++i) {
      std::printf("sequence %zu:", i);
      for (int32_t t : r.tokens[i]) std::printf(" %d", t);
      std::printf("\n");
    }
    std::printf("%s", agent::format_report(r).c_str());
  }
  return {};
}

}  // namespace

void add_run_command(CLI::App& root, Action& action) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd =
      root.add_subcommand("run", "Run a plan over agents: pipelined generation and a report");
  cmd->add_option("--plan", a->plan,
                  "PLAN.json from strata plan (default: split the blocks evenly over the agents)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--model,-m", a->model, "The whole GGUF (default: the file the plan names)");
  cmd->add_option("--agent", a->agents,
                  "NAME=ENDPOINT of an agent (repeat; order = stage order without --plan)")
      ->required();
  add_prompt_options(cmd, &a->prompt);
  cmd->add_option("-n,--n-gen", a->n_gen, "New tokens per sequence")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--sequences,-s", a->sequences, "Sequences in flight (each gets the prompt)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--threads,-t", a->threads, "Threads per agent (default: each agent's own)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--temp", a->temp, "Sampling temperature; 0 = greedy")
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", a->top_k, "Keep the K most likely tokens (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling mass")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", a->seed, "Sampler seed (sequence s uses seed + s)");
  cmd->add_option("--step-tokens", a->step_tokens,
                  "Most tokens in one pipeline step (prompt chunk size)")
      ->check(CLI::Range(int64_t{1}, int64_t{65536}));
  cmd->add_option(
         "--groups", a->groups,
         "Pipeline groups of sequences (default: sequences / the plan's micro-batch, else one "
         "per stage)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--timeout-ms", a->timeout_ms, "Deadline for every agent answer and step")
      ->check(CLI::Range(100.0, 3.6e6));
  cmd->add_option("--max-replans", a->max_replans,
                  "When an agent is lost, re-plan over the agents left (plan's and spare "
                  "--agent ones) and resume, at most this many times; 0 fails the run")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  cmd->add_option("--link-delay-ms", a->link_delay_ms,
                  "Emulated one-way delay of the coordinator's link to the first stage")
      ->check(CLI::Range(0.0, 60000.0));
  cmd->add_option("--link-mbps", a->link_mbit_per_s, "Emulated rate of that link, Mbit/s (0 = off)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--result-bind", a->result_bind,
                  "Where the last stage sends tokens (an address it can reach)")
      ->capture_default_str();
  cmd->add_option("--slice-dir", a->slice_dir, "Where the coordinator keeps the slices it cuts")
      ->capture_default_str();
  cmd->add_flag("--json", a->json,
                "Print one JSON object: tokens per sequence, measured vs predicted, stages");
  cmd->add_flag("--logits", a->logits,
                "With --json: the logits after the prompt and at the last token of each sequence");
  cmd->add_flag("--quiet,-q", a->quiet, "No progress lines on stderr");
  cmd->callback([a, &action] { action = [a] { return run_run(*a); }; });
}

}  // namespace strata::tools
