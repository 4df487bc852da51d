#include "strata/profiles/sysfs.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "strata/base/io.h"

namespace strata::profiles {
namespace {

std::string trim_right(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t' ||
                        s.back() == '\r' || s.back() == '\0')) {
    s.pop_back();
  }
  return s;
}

class SteadyClock final : public Clock {
 public:
  double now_s() override { return strata::now_s(); }
  void sleep_until_s(double t_s) override {
    const double wait = t_s - now_s();
    if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
};

}  // namespace

SysTree::SysTree(std::string root) {
  while (!root.empty() && root.back() == '/') root.pop_back();
  root_ = std::move(root);
  if (live()) return;
  Result<std::string> denied = read_file(root_ + "/.strata-denied");
  if (!denied.ok()) return;
  std::istringstream in(*denied);
  std::string line;
  while (std::getline(in, line)) {
    line = trim_right(line);
    if (!line.empty() && line[0] == '/') denied_.insert(line);
  }
}

Result<std::string> SysTree::read(const std::string& path) {
  if (denied_.count(path) != 0) {
    return permission_denied(host_path(path) + ": cannot open: Permission denied (recorded)");
  }
  if (!live()) {
    const std::string series_path = host_path(path) + ".series";
    Result<std::string> series = read_file(series_path);
    if (series.ok()) {
      std::vector<std::string> lines;
      std::istringstream in(*series);
      std::string line;
      while (std::getline(in, line)) {
        if (!trim_right(line).empty()) lines.push_back(trim_right(line));
      }
      if (lines.empty()) return corrupt(series_path + ": recorded series has no values");
      std::lock_guard<std::mutex> lock(mu_);
      size_t& cursor = series_cursor_[path];
      const std::string& value = lines[std::min(cursor, lines.size() - 1)];
      ++cursor;
      return value;
    }
  }
  STRATA_ASSIGN_OR_RETURN(std::string text, read_file(host_path(path)));
  return trim_right(std::move(text));
}

Result<int64_t> SysTree::read_int(const std::string& path) {
  STRATA_ASSIGN_OR_RETURN(const std::string text, read(path));
  const char* begin = text.c_str();
  while (*begin == ' ' || *begin == '\t') ++begin;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(begin, &end, 0);
  if (end == begin || errno != 0 || (*end != '\0' && *end != '\n' && *end != ' ')) {
    return corrupt(host_path(path) + ": '" + text + "' is not an integer");
  }
  return static_cast<int64_t>(v);
}

std::vector<std::string> SysTree::list(const std::string& path) const {
  std::vector<std::string> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(host_path(path).empty() ? "/" : host_path(path), ec);
  if (ec) return out;
  for (const auto& entry : it) {
    std::string name = entry.path().filename().string();
    if (!live() && name.size() > 7 && name.ends_with(".series")) name.resize(name.size() - 7);
    if (!live() && name == ".strata-denied") continue;
    out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool SysTree::exists(const std::string& path) const {
  std::error_code ec;
  if (std::filesystem::exists(host_path(path), ec)) return true;
  return !live() && std::filesystem::exists(host_path(path) + ".series", ec);
}

Status SysTree::check_readable(const std::string& path) const {
  if (denied_.count(path) != 0) {
    return permission_denied(host_path(path) + ": Permission denied (recorded)");
  }
  if (live()) {
    if (::access(path.c_str(), R_OK) == 0) return {};
    const int err = errno;
    const std::string msg = path + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM) return permission_denied(msg);
    if (err == ENOENT) return not_found(msg);
    return io_error(msg);
  }
  if (exists(path)) return {};
  return not_found(host_path(path) + ": not in the recorded tree");
}

Clock& system_clock() {
  static SteadyClock clock;
  return clock;
}

}  // namespace strata::profiles
