// What tests that run the built `strata` binary share: a temporary folder removed afterwards,
// reading a whole file, and running one command with its output captured.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "strata/base/status.h"

namespace strata::testing {

// A fresh folder under gtest's temporary folder; removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "strata_test_") {
    std::string t = ::testing::TempDir() + prefix + "XXXXXX";
    STRATA_CHECK(::mkdtemp(t.data()) != nullptr);
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // The path of `name` inside the folder.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole file at `path`; empty when it cannot be read.
inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CmdResult {
  int rc = -1;  // the exit status; -1 when the command did not exit normally
  std::string out;
  std::string err;
};

// Runs `bin args` through the shell, its stdout and stderr captured in files inside `dir`.
inline CmdResult run_command(const TempDir& dir, const std::string& bin, const std::string& args) {
  const std::string out = dir.file("stdout.txt");
  const std::string err = dir.file("stderr.txt");
  const int status = std::system((bin + " " + args + " >" + out + " 2>" + err).c_str());
  CmdResult r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(out);
  r.err = read_all(err);
  return r;
}

}  // namespace strata::testing
