// Status and Result<T>: how errors cross library boundaries in Moxie.
//
// Contract: every function that can fail on user input (files, flags, configs) returns a Status or a
// Result<T>. The message is written for the user: it names the file, tensor, field or byte offset
// and states expected vs actual. Invariant violations inside the engine use MOXIE_CHECK instead.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace moxie {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad flag / bad API argument
  kNotFound,         // missing file / tensor / field
  kInvalidFormat,    // malformed file contents
  kUnsupported,      // well-formed but not supported (unknown model_type, dtype, ...)
  kIoError,
  kInternal,
  kUnavailable,       // temporarily unable (a full request queue): retry later
  kDeadlineExceeded,  // a request ran past its time limit
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with context ("loading model.safetensors: ...").
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status InvalidFormat(std::string m) { return {StatusCode::kInvalidFormat, std::move(m)}; }
inline Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {    // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result from ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace moxie

#define MOXIE_CONCAT_INNER(a, b) a##b
#define MOXIE_CONCAT(a, b) MOXIE_CONCAT_INNER(a, b)

// Returns early from the enclosing function if `expr` (a Status) is not ok.
#define MOXIE_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::moxie::Status moxie_status_ = (expr);      \
    if (!moxie_status_.ok()) return moxie_status_; \
  } while (0)

// `MOXIE_ASSIGN_OR_RETURN(auto x, MakeX())`: unwraps a Result or returns its Status.
#define MOXIE_ASSIGN_OR_RETURN(lhs, expr) \
  MOXIE_ASSIGN_OR_RETURN_IMPL(MOXIE_CONCAT(moxie_result_, __LINE__), lhs, expr)
#define MOXIE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

// Invariant check: a failure is a bug in Moxie, never a user error.
#define MOXIE_CHECK(cond)                                                                \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: MOXIE_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
