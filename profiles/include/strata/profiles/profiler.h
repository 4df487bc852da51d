// `strata profile` as a library call: runs every probe in turn and assembles the Profile.
#pragma once

#include <string>

#include "strata/base/status.h"
#include "strata/profiles/probes.h"
#include "strata/profiles/profile.h"

namespace strata::profiles {

struct ProfileOptions {
  bool quick = false;        // <= 10 s on a 2-core machine instead of <= 90 s
  std::string storage_path;  // empty: the model's folder with --model, else "."
  double sustain_s = -1;     // sustained-load probe length; < 0: 30 s (3 s with quick)
  std::string sysfs_root = "/";
  std::string model_path;     // a GGUF to predict decode / prefill tok/s for; may be empty
  int64_t predict_ctx = 256;  // cached positions the decode prediction assumes (>= 0)
  std::string name;           // profile name; empty: the host name
  std::string generator;      // the command line, recorded in the profile
};

// Runs every probe. Figures a probe cannot obtain are unavailable with the reason; the call
// itself fails only on bad options (kInvalidArgument: sustain_s, a missing model) or a
// storage path that cannot be probed (the storage probe's Status). `progress` may be empty.
Result<Profile> run_profile(const ProfileOptions& opt, const Progress& progress);

// A readable multi-line summary of the figures (what `strata profile` prints).
std::string profile_summary(const Profile& profile);

}  // namespace strata::profiles
