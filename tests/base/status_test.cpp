#include "strata/base/status.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

Result<int> half_of(int v) {
  if (v % 2 != 0) return invalid_argument("odd value " + std::to_string(v));
  return v / 2;
}

Status use_macros(int v, int* out) {
  STRATA_ASSIGN_OR_RETURN(int h, half_of(v));
  STRATA_ASSIGN_OR_RETURN(int q, half_of(h));
  *out = q;
  return {};
}

TEST(Status, OkAndError) {
  EXPECT_TRUE(Status().ok());
  const Status s = corrupt("f.gguf: bad magic");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.to_string(), "corrupt: f.gguf: bad magic");
  EXPECT_EQ(s.with_context("loading").message(), "loading: f.gguf: bad magic");
}

TEST(Status, MacrosPropagateTheFirstError) {
  int out = 0;
  EXPECT_TRUE(use_macros(8, &out).ok());
  EXPECT_EQ(out, 2);
  const Status s = use_macros(6, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd value 3");
}

TEST(StatusDeathTest, ValueOfErrorAborts) {
  Result<int> r = not_found("x");
  EXPECT_DEATH((void)r.value(), "value\\(\\) of a failed Result");
}

TEST(StatusDeathTest, CheckAborts) { EXPECT_DEATH(STRATA_CHECK_MSG(1 + 1 == 3, "math"), "math"); }

}  // namespace
}  // namespace strata
