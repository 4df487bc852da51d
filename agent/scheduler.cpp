#include "strata/agent/scheduler.h"

#include <algorithm>
#include <string>

namespace strata::agent {

Scheduler::Scheduler(const SchedulerOptions& options) : options_(options) {
  STRATA_CHECK(options.n_groups >= 1);
  STRATA_CHECK(options.step_token_budget >= 1);
  inflight_.resize(static_cast<size_t>(options.n_groups));
  logit_seq_.resize(static_cast<size_t>(options.n_groups));
}

int32_t Scheduler::add_sequence(std::vector<int32_t> prompt, int64_t n_gen) {
  return resume_sequence(std::move(prompt), {}, n_gen);
}

int32_t Scheduler::resume_sequence(std::vector<int32_t> prompt, std::vector<int32_t> generated,
                                   int64_t n_gen) {
  STRATA_CHECK(!prompt.empty() && n_gen >= 1 && static_cast<int64_t>(generated.size()) <= n_gen);
  Seq s;
  s.prompt = std::move(prompt);
  s.prompt.insert(s.prompt.end(), generated.begin(), generated.end());
  s.n_replayed = static_cast<int64_t>(generated.size());
  s.generated = std::move(generated);
  s.n_gen = n_gen;
  if (finished(s)) s.prefilled = static_cast<int64_t>(s.prompt.size());
  seqs_.push_back(std::move(s));
  return static_cast<int32_t>(seqs_.size() - 1);
}

std::optional<Step> Scheduler::next_step(int group) {
  STRATA_CHECK(group >= 0 && group < options_.n_groups);
  auto& slot = inflight_[static_cast<size_t>(group)];
  if (slot.has_value()) return std::nullopt;
  Step step;
  step.group = group;
  std::vector<int32_t>& logit_seq = logit_seq_[static_cast<size_t>(group)];
  logit_seq.clear();
  int64_t budget = options_.step_token_budget;
  const auto mine = [&](size_t i) {
    return static_cast<int>(i % static_cast<size_t>(options_.n_groups)) == group;
  };
  // Decodes first: one token each, the last generated token at the next position.
  for (size_t i = 0; i < seqs_.size() && budget > 0; ++i) {
    Seq& s = seqs_[i];
    if (!mine(i) || finished(s) || s.prefilled < static_cast<int64_t>(s.prompt.size())) continue;
    const auto pos =
        static_cast<int32_t>(static_cast<int64_t>(s.prompt.size()) +
                             static_cast<int64_t>(s.generated.size()) - s.n_replayed - 1);
    step.logit_rows.push_back(static_cast<uint32_t>(step.seq_ids.size()));
    step.seq_ids.push_back(static_cast<int32_t>(i));
    step.positions.push_back(pos);
    step.token_ids.push_back(s.generated.back());
    logit_seq.push_back(static_cast<int32_t>(i));
    s.pending = true;
    ++step.n_decode_tokens;
    --budget;
  }
  // Then prompt chunks with what budget is left.
  for (size_t i = 0; i < seqs_.size() && budget > 0; ++i) {
    Seq& s = seqs_[i];
    const auto plen = static_cast<int64_t>(s.prompt.size());
    if (!mine(i) || s.prefilled >= plen) continue;
    const int64_t take = std::min(budget, plen - s.prefilled);
    for (int64_t k = 0; k < take; ++k) {
      const int64_t p = s.prefilled + k;
      step.seq_ids.push_back(static_cast<int32_t>(i));
      step.positions.push_back(static_cast<int32_t>(p));
      step.token_ids.push_back(s.prompt[static_cast<size_t>(p)]);
    }
    s.prefilled += take;
    if (s.prefilled == plen) {
      step.logit_rows.push_back(static_cast<uint32_t>(step.seq_ids.size() - 1));
      logit_seq.push_back(static_cast<int32_t>(i));
      s.pending = true;
    }
    step.n_prefill_tokens += take;
    budget -= take;
  }
  if (step.seq_ids.empty()) return std::nullopt;
  slot = step;
  return step;
}

Status Scheduler::complete(int group, const std::vector<int32_t>& sampled) {
  if (group < 0 || group >= options_.n_groups ||
      !inflight_[static_cast<size_t>(group)].has_value()) {
    return invalid_argument("no step of group " + std::to_string(group) + " is in flight");
  }
  const std::vector<int32_t>& logit_seq = logit_seq_[static_cast<size_t>(group)];
  if (sampled.size() != logit_seq.size()) {
    return invalid_argument("group " + std::to_string(group) + " expected " +
                            std::to_string(logit_seq.size()) + " sampled tokens, got " +
                            std::to_string(sampled.size()));
  }
  for (size_t k = 0; k < sampled.size(); ++k) {
    Seq& s = seqs_[static_cast<size_t>(logit_seq[k])];
    s.generated.push_back(sampled[k]);
    s.pending = false;
  }
  inflight_[static_cast<size_t>(group)].reset();
  return {};
}

bool Scheduler::done() const {
  return std::all_of(seqs_.begin(), seqs_.end(), [this](const Seq& s) { return finished(s); });
}

}  // namespace strata::agent
