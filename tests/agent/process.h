// A child process for integration tests: `strata agent` started with posix_spawn, its first
// stdout line read with a deadline, stopped (SIGTERM, then SIGKILL) when the object goes.
#pragma once

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace strata::testing {

class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out_fd_ = fds[0];
  }
  ~ChildProcess() { stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  // Kills the process at once (a device that dies, not one that shuts down).
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // The first line the child printed, or "" if none came within `timeout_ms`.
  std::string first_line(int timeout_ms) {
    std::string line;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{out_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char c = 0;
      if (::read(out_fd_, &c, 1) != 1) break;
      if (c == '\n') return line;
      line += c;
    }
    return "";
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

// Starts `strata agent` on a free loopback port; returns its control endpoint via `endpoint`.
inline std::unique_ptr<ChildProcess> start_agent(const std::string& bin, const std::string& name,
                                                 int threads, const std::string& cache_dir,
                                                 std::string* endpoint,
                                                 const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {bin,           "agent",   "--bind",    "tcp://127.0.0.1:*",
                                   "--name",      name,      "--threads", std::to_string(threads),
                                   "--cache-dir", cache_dir, "--quiet"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_unique<ChildProcess>(argv);
  const std::string line = p->first_line(10000);
  // "strata agent listening: control tcp://127.0.0.1:PORT data tcp://127.0.0.1:PORT"
  const size_t c = line.find("control ");
  const size_t d = line.find(" data ");
  if (c == std::string::npos || d == std::string::npos) return nullptr;
  *endpoint = line.substr(c + 8, d - c - 8);
  return p;
}

}  // namespace strata::testing
