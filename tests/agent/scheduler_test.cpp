#include "strata/agent/scheduler.h"

#include <gtest/gtest.h>

#include <map>

namespace strata::agent {
namespace {

// Plays the pipeline: every group's step "returns" a token = 1000 + seq * 10 + n generated.
void drive(Scheduler& s, std::vector<Step>* steps) {
  int guard = 0;
  while (!s.done()) {
    ASSERT_LT(++guard, 10000) << "scheduler made no progress";
    bool any = false;
    for (int g = 0; g < s.n_groups(); ++g) {
      auto st = s.next_step(g);
      if (!st) continue;
      any = true;
      steps->push_back(*st);
      std::vector<int32_t> sampled;
      for (uint32_t row : st->logit_rows) {
        const int32_t seq = st->seq_ids[row];
        sampled.push_back(1000 + seq * 10 + static_cast<int32_t>(s.generated(seq).size()));
      }
      ASSERT_TRUE(s.complete(g, sampled).ok());
    }
    ASSERT_TRUE(any);
  }
}

TEST(Scheduler, EverySequenceGetsItsTokensInOrderWithConsecutivePositions) {
  Scheduler s({2, 5});
  s.add_sequence({1, 2, 3, 4, 5, 6, 7}, 3);
  s.add_sequence({1, 9}, 4);
  s.add_sequence({1, 8, 8}, 2);
  std::vector<Step> steps;
  drive(s, &steps);
  ASSERT_TRUE(s.done());
  std::map<int32_t, std::vector<int32_t>> out;
  for (int32_t i = 0; i < s.n_sequences(); ++i) out[i] = s.generated(i);
  ASSERT_EQ(out[0], (std::vector<int32_t>{1000, 1001, 1002}));
  ASSERT_EQ(out[1], (std::vector<int32_t>{1010, 1011, 1012, 1013}));
  ASSERT_EQ(out[2], (std::vector<int32_t>{1020, 1021}));
  // Positions of each sequence are 0, 1, 2, ... across steps, and tokens are the prompt then
  // the generated ones; no step exceeds the budget.
  std::map<int32_t, std::vector<std::pair<int32_t, int32_t>>> seen;
  for (const Step& st : steps) {
    EXPECT_LE(st.seq_ids.size(), 5u);
    for (size_t i = 0; i < st.seq_ids.size(); ++i)
      seen[st.seq_ids[i]].push_back({st.positions[i], st.token_ids[i]});
  }
  for (int32_t q = 0; q < 3; ++q) {
    const auto& p = s.prompt(q);
    const auto& g = s.generated(q);
    const auto& v = seen[q];
    ASSERT_EQ(v.size(), p.size() + g.size() - 1);
    for (size_t i = 0; i < v.size(); ++i) {
      EXPECT_EQ(v[i].first, static_cast<int32_t>(i));
      EXPECT_EQ(v[i].second, i < p.size() ? p[i] : g[i - p.size()]);
    }
  }
}

TEST(Scheduler, DecodesComeFirstAndPromptsAreChunked) {
  Scheduler s({1, 4});
  s.add_sequence({1, 2}, 5);                           // short prompt: decoding soon
  s.add_sequence({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1);  // long prompt, chunked
  auto st = s.next_step(0);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->n_prefill_tokens, 4);  // seq 0 whole prompt (2) + 2 of seq 1
  EXPECT_EQ(st->logit_rows.size(), 1u);
  EXPECT_FALSE(s.next_step(0).has_value());  // one step in flight per group
  ASSERT_TRUE(s.complete(0, {42}).ok());
  st = s.next_step(0);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->n_decode_tokens, 1);
  EXPECT_EQ(st->seq_ids[0], 0);  // the decode token leads the step
  EXPECT_EQ(st->token_ids[0], 42);
  EXPECT_EQ(st->n_prefill_tokens, 3);
  EXPECT_EQ(s.complete(0, {1, 2}).code(), StatusCode::kInvalidArgument);  // one logit row only
  EXPECT_EQ(s.complete(0, {7}).code(), StatusCode::kOk);
  EXPECT_EQ(s.complete(0, {7}).code(), StatusCode::kInvalidArgument);  // nothing in flight
}

TEST(Scheduler, GroupsSplitTheSequences) {
  Scheduler s({3, 64});
  for (int i = 0; i < 7; ++i) s.add_sequence({1, 5}, 2);
  for (int g = 0; g < 3; ++g) {
    auto st = s.next_step(g);
    ASSERT_TRUE(st);
    for (int32_t q : st->seq_ids) EXPECT_EQ(q % 3, g);
  }
}

}  // namespace
}  // namespace strata::agent
