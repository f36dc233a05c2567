#pragma once

#include <string>
#include <utility>
#include <variant>

namespace vigil {

// The outcome of an operation that can fail in an expected way: ok, or an error message
// meant for a person (it names what failed and why). Never throws.
class [[nodiscard]] Status {
 public:
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

 private:
  Status() = default;
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}

  bool failed_ = false;
  std::string message_;
};

// A value or an error message. REQUIRES: value() only when ok(), error() only when !ok().
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  static Result Error(std::string message) { return Result(ErrorText{std::move(message)}); }

  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  struct ErrorText {
    std::string message;
  };
  explicit Result(ErrorText e) : v_(std::move(e)) {}

  std::variant<T, ErrorText> v_;
};

}  // namespace vigil
