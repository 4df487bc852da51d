// Which tokens go into the next pipeline step. Sequences are split into groups (micro-batches);
// each group has at most one step in flight, so with at least as many groups as stages every
// stage has work. A group's step is decode-maximal (SARATHI): one token for every sequence of
// the group that is decoding, then prompt chunks of the sequences still in prefill up to the
// step's token budget, so a long prompt never stalls the decodes beside it.
//
// Thread-safety: not thread-safe; the coordinator's thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "strata/base/status.h"

namespace strata::agent {

struct SchedulerOptions {
  int n_groups = 1;
  int64_t step_token_budget = 256;  // most tokens in one step
};

// One step: tokens with their sequences and positions, and which of them produce a new token
// (the last prompt token of a sequence that finishes its prompt in this step, or a decode
// token).
struct Step {
  int group = 0;
  std::vector<int32_t> seq_ids;
  std::vector<int32_t> positions;
  std::vector<int32_t> token_ids;
  std::vector<uint32_t> logit_rows;  // indices into the tokens above
  int64_t n_prefill_tokens = 0;
  int64_t n_decode_tokens = 0;
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerOptions& options);

  // Adds a sequence that will generate `n_gen` tokens after `prompt`. Its id is the returned
  // index (0, 1, ...). The first new token comes from the prompt's last position.
  int32_t add_sequence(std::vector<int32_t> prompt, int64_t n_gen);
  // Adds a sequence that had generated `generated` (of `n_gen`) before its KV cache was lost:
  // prompt and generated tokens are prefilled again, and the next token continues it. A
  // sequence already complete takes no step. Same ids as add_sequence.
  int32_t resume_sequence(std::vector<int32_t> prompt, std::vector<int32_t> generated,
                          int64_t n_gen);

  // The next step of `group`, or nullopt when the group has a step in flight or nothing left.
  std::optional<Step> next_step(int group);
  // Records the tokens sampled for the in-flight step of `group`, in logit_rows order.
  // kInvalidArgument when the group has no step in flight or the count differs.
  Status complete(int group, const std::vector<int32_t>& sampled);

  bool done() const;
  bool in_flight(int group) const { return inflight_[static_cast<size_t>(group)].has_value(); }
  int n_groups() const { return options_.n_groups; }
  const std::vector<int32_t>& generated(int32_t seq) const {
    return seqs_[static_cast<size_t>(seq)].generated;
  }
  // The prompt as prefilled (a resumed sequence's includes its replayed tokens).
  const std::vector<int32_t>& prompt(int32_t seq) const {
    return seqs_[static_cast<size_t>(seq)].prompt;
  }
  int32_t n_sequences() const { return static_cast<int32_t>(seqs_.size()); }

 private:
  struct Seq {
    std::vector<int32_t> prompt;  // for a resumed sequence: also its replayed tokens
    int64_t n_replayed = 0;       // generated tokens folded into `prompt`
    int64_t n_gen = 0;
    int64_t prefilled = 0;  // prompt tokens already sent
    std::vector<int32_t> generated;
    bool pending = false;  // a token of it is in the in-flight step
  };
  bool finished(const Seq& s) const { return static_cast<int64_t>(s.generated.size()) >= s.n_gen; }

  SchedulerOptions options_;
  std::vector<Seq> seqs_;
  std::vector<std::optional<Step>> inflight_;
  std::vector<std::vector<int32_t>> logit_seq_;  // per group: the sequence of each logit row
};

}  // namespace strata::agent
