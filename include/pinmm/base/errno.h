// Errors as values: kernel errno codes and Result<T>.
//
// Linux counterpart: include/uapi/asm-generic/errno-base.h, errno.h and the
// "count or -errno" return convention of mm/ entry points. Kernel-named entry
// points in pinmm keep that convention (they return long: a count, or -EFAULT
// and friends, using the <cerrno> macros, whose values on x86-64 Linux are the
// kernel's). Internal code returns Result<T>, which carries an Errno.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "pinmm/base/check.h"

namespace pinmm {

// A kernel errno value (positive), e.g. Errno(EFAULT). Kernel spelling cannot
// be used for the constants themselves because <cerrno> defines EFAULT & co.
// as macros; their values are the kernel's, so Errno(EFAULT) is exact.
class Errno {
 public:
  constexpr explicit Errno(int code) : code_(code) {}

  // From a kernel-style negative return value (-EFAULT → Errno(EFAULT)).
  static constexpr Errno from_neg(long rc) { return Errno(static_cast<int>(-rc)); }

  constexpr int code() const { return code_; }
  // The kernel-style return value: -code.
  constexpr long neg() const { return -static_cast<long>(code_); }
  // Kernel name ("EFAULT"), or "E<number>" for codes pinmm has no name for.
  std::string name() const;
  // The errno a kernel name stands for ("EBUSY"), if pinmm knows it.
  static std::optional<Errno> from_name(std::string_view name);

  friend constexpr bool operator==(Errno, Errno) = default;

 private:
  int code_;
};

// Kernel-internal codes that have no <cerrno> macro.
inline constexpr int ENOTSUPP = 524;

// [[nodiscard]] value-or-Errno. Result<void> carries only success or an Errno.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Errno err) : v_(std::in_place_index<1>, err) {}             // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    MM_BUG_ON(!ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    MM_BUG_ON(!ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    MM_BUG_ON(!ok());
    return std::get<0>(std::move(v_));
  }
  T value_or(T fallback) const { return ok() ? std::get<0>(v_) : std::move(fallback); }
  Errno error() const {
    MM_BUG_ON(ok());
    return std::get<1>(v_);
  }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Errno> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno err) : err_(err), ok_(false) {}  // NOLINT: implicit by design

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { MM_BUG_ON(!ok_); }
  Errno error() const {
    MM_BUG_ON(ok_);
    return err_;
  }

 private:
  Errno err_{0};
  bool ok_ = true;
};

// Kernel-style "0 or -errno" from a Result<void>.
inline long result_to_rc(const Result<void>& r) { return r.ok() ? 0 : r.error().neg(); }

}  // namespace pinmm

// TRY(expr): evaluate a Result; on error return the Errno from the enclosing
// function (which must return Result<U> or Errno); otherwise yield the value.
#define TRY(expr)                                                  \
  ({                                                               \
    auto&& pinmm_try_result_ = (expr);                             \
    if (!pinmm_try_result_.ok()) return pinmm_try_result_.error(); \
    std::move(pinmm_try_result_).value();                          \
  })
