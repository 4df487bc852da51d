// `strata profile`: measure this device and write its profile.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "strata/base/io.h"
#include "strata/profiles/profiler.h"

namespace strata::tools {
namespace {

struct ProfileArgs {
  profiles::ProfileOptions options;
  std::string output;
  bool json = false;
};

// One status line on a terminal (rewritten in place), one line per probe otherwise.
class ProgressLine {
 public:
  ProgressLine() : tty_(::isatty(STDERR_FILENO) == 1), t0_(now_s()) {}
  void operator()(const std::string& what) {
    if (tty_) {
      std::fprintf(stderr, "\r\033[K[%5.1f s] %s", now_s() - t0_, what.c_str());
    } else {
      std::fprintf(stderr, "[%5.1f s] %s\n", now_s() - t0_, what.c_str());
    }
    std::fflush(stderr);
  }
  void done() {
    if (tty_) std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "strata profile: done in %.1f s\n", now_s() - t0_);
  }

 private:
  bool tty_;
  double t0_;
};

Status run(const ProfileArgs& args, const std::string& command_line) {
  ProgressLine progress;
  profiles::ProfileOptions options = args.options;
  options.generator = command_line;
  STRATA_ASSIGN_OR_RETURN(const profiles::Profile profile,
                          profiles::run_profile(options, std::ref(progress)));
  progress.done();
  const std::string json = profiles::profile_to_json(profile);
  if (!args.output.empty()) {
    STRATA_RETURN_IF_ERROR(write_file_atomic(args.output, json));
  }
  if (args.json) {
    std::fputs(json.c_str(), stdout);
  } else {
    std::fputs(profiles::profile_summary(profile).c_str(), stdout);
    if (!args.output.empty()) std::printf("wrote %s\n", args.output.c_str());
  }
  return {};
}

}  // namespace

void add_profile_command(CLI::App& root, Action& action) {
  auto args = std::make_shared<ProfileArgs>();
  CLI::App* cmd = root.add_subcommand(
      "profile",
      "Measure this device: identity, compute (GEMV/GEMM GFLOP/s per weight type with the "
      "engine's kernels), memory capacity and bandwidth, storage read bandwidth, thermal "
      "behaviour under sustained load, and power. Prints a summary (or JSON with --json); "
      "-o writes the profile JSON that `strata plan` reads. Progress goes to stderr.");
  cmd->add_flag("--quick", args->options.quick,
                "Short run (about 10 s on 2 cores): fewer repetitions, smaller storage file, "
                "2 s sustained load");
  cmd->add_option("--storage-path", args->options.storage_path,
                  "Folder on the filesystem that holds the models; a temporary test file is "
                  "read there with O_DIRECT and removed (default: the --model folder, else .)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--sustain-s", args->options.sustain_s,
                  "Seconds of the sustained-load probe (default 30, or 2 with --quick)")
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--sysfs-root", args->options.sysfs_root,
                  "Read /sys and /proc under DIR instead of / (a recorded tree, for tests); "
                  "compute, bandwidth and storage are still measured here")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--model", args->options.model_path,
                  "A GGUF model: predict its decode and prefill tok/s from the measured figures")
      ->check(CLI::ExistingFile);
  cmd->add_option("--ctx", args->options.predict_ctx,
                  "Cached positions (context length) the --model decode prediction assumes; "
                  "`strata generate --prompt-len 128 -n 64` decodes at 160 on average")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--name", args->options.name, "Profile name (default: the host name)");
  cmd->add_option("-o,--output", args->output, "Write the profile JSON to FILE");
  cmd->add_flag("--json", args->json, "Print the profile JSON on stdout instead of the summary");
  add_profile_link_command(*cmd, action);
  cmd->callback([args, cmd, &action] {
    if (cmd->got_subcommand("link")) return;  // `strata profile link` sets its own action
    std::string line = "strata profile";
    for (const auto& o : cmd->get_options()) {
      if (o->count() == 0 || o->get_name() == "--help") continue;
      line += " " + o->get_name();
      for (const auto& r : o->results()) line += " " + r;
    }
    action = [args, line] { return run(*args, line); };
  });
}

}  // namespace strata::tools
