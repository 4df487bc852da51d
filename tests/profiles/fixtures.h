// Shared helpers of the profiles tests: fixture paths and a clock that only moves when slept.
#pragma once

#include <string>

#include "strata/profiles/sysfs.h"

namespace strata::profiles::testing {

inline std::string fixture(const std::string& name) {
  return std::string(STRATA_FIXTURES_DIR) + "/" + name;
}

// Time stands still until someone sleeps; a sampler then replays a recorded series at exactly
// its nominal rate, whatever the machine running the test is doing.
class FakeClock final : public Clock {
 public:
  double now_s() override { return t_; }
  void sleep_until_s(double t_s) override {
    if (t_s > t_) t_ = t_s;
  }

 private:
  double t_ = 1000.0;
};

}  // namespace strata::profiles::testing
