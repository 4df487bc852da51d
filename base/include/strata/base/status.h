// Status and Result<T>: how strata returns failures caused by the environment (I/O, parse,
// bad input, network, budgets). Bugs are not Statuses: they abort through STRATA_CHECK.
//
// A Status is either ok or carries a code and a message that names the thing and the problem
// ("model.gguf: tensor 'blk.3.attn_q.weight' data ends at 9120 past the file end 8192").
// Thread-safety: plain values, safe to copy and move between threads.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace strata {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // bad input from a user or a peer
  kNotFound,           // a file, key or device that is not there
  kCorrupt,            // a file or message that fails validation
  kUnsupported,        // valid but not handled (architecture, type, platform)
  kIo,                 // the OS refused a read, write, open, mmap
  kPermissionDenied,   // the OS said EACCES/EPERM
  kResourceExhausted,  // a memory or size budget would be exceeded
  kUnavailable,        // a peer or device cannot be reached
  kDeadlineExceeded,   // a wait ran past its deadline
  kInternal,           // an invariant of a peer was broken (never our own bug: that aborts)
};

// Returns a short lower-case name for `code` ("invalid argument"); never null.
const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>"; an ok status stays ok.
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return {code_, context + ": " + message_};
  }
  // "ok" or "<code name>: <message>".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIo, std::move(m)}; }
inline Status permission_denied(std::string m) {
  return {StatusCode::kPermissionDenied, std::move(m)};
}
inline Status resource_exhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status deadline_exceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T>: a T or a non-ok Status. Accessing value() of an error aborts (a bug).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      std::fprintf(stderr, "strata: Result constructed from an ok Status\n");
      std::abort();
    }
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    check();
    return std::get<T>(v_);
  }
  const T& value() const& {
    check();
    return std::get<T>(v_);
  }
  T&& value() && {
    check();
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void check() const {
    if (!ok()) {
      std::fprintf(stderr, "strata: value() of a failed Result: %s\n",
                   std::get<Status>(v_).to_string().c_str());
      std::abort();
    }
  }
  std::variant<T, Status> v_;
};

[[noreturn]] void check_failed(const char* file, int line, const char* expr,
                               const std::string& msg);

}  // namespace strata

// STRATA_CHECK(cond) / STRATA_CHECK_MSG(cond, msg): abort with file:line when a program
// invariant is broken. Active in release builds too.
#define STRATA_CHECK(cond)                                              \
  do {                                                                  \
    if (!(cond)) ::strata::check_failed(__FILE__, __LINE__, #cond, {}); \
  } while (0)
#define STRATA_CHECK_MSG(cond, msg)                                        \
  do {                                                                     \
    if (!(cond)) ::strata::check_failed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

#define STRATA_CONCAT_INNER(a, b) a##b
#define STRATA_CONCAT(a, b) STRATA_CONCAT_INNER(a, b)

// STRATA_RETURN_IF_ERROR(expr): returns the Status of `expr` (a Status) when it is not ok.
#define STRATA_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::strata::Status strata_status_ = (expr);        \
    if (!strata_status_.ok()) return strata_status_; \
  } while (0)

// STRATA_ASSIGN_OR_RETURN(decl, expr): `decl = value of expr` or return its Status.
#define STRATA_ASSIGN_OR_RETURN(decl, expr) \
  STRATA_ASSIGN_OR_RETURN_IMPL(STRATA_CONCAT(strata_result_, __LINE__), decl, expr)
#define STRATA_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  decl = std::move(tmp).value()
