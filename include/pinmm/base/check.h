// Invariant checks: MM_BUG_ON, MM_WARN_ON_ONCE, MM_DCHECK.
//
// Linux counterpart: VM_BUG_ON_PAGE / VM_BUG_ON_FOLIO, WARN_ON_ONCE and
// VM_WARN_ON. A broken invariant is a bug in pinmm: MM_BUG_ON aborts after
// printing the condition and, when given an object, that object's state
// (mm_describe(obj), found by argument-dependent lookup: phys/ describes pages
// and folios, higher layers describe theirs). MM_WARN_ON_ONCE prints once per
// call site, counts every hit, and evaluates to the condition like the
// kernel's WARN_ON_ONCE. MM_DCHECK is MM_BUG_ON in debug builds
// (PINMM_DEBUG) and compiles to nothing otherwise.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace pinmm {

[[noreturn]] void mm_bug(const char* cond, const char* file, int line, const std::string& state);
// Called on every hit of a warning; prints only when `first` is true.
void mm_warn(const char* cond, const char* file, int line, bool first, const std::string& state);
// Number of MM_WARN_ON_ONCE hits in this process (tests assert it stays put).
uint64_t mm_warn_count();

namespace check_detail {
inline std::string describe_all() { return {}; }
template <typename T>
std::string describe_all(const T& obj) {
  return mm_describe(obj);  // ADL: defined next to the type being described
}
}  // namespace check_detail

}  // namespace pinmm

#define MM_BUG_ON(cond, ...)                                             \
  do {                                                                   \
    if (__builtin_expect(!!(cond), 0))                                   \
      ::pinmm::mm_bug(#cond, __FILE__, __LINE__,                         \
                      ::pinmm::check_detail::describe_all(__VA_ARGS__)); \
  } while (0)

#define MM_WARN_ON_ONCE(cond, ...)                                               \
  ({                                                                             \
    static std::atomic<bool> pinmm_warned_{false};                               \
    const bool pinmm_cond_ = !!(cond);                                           \
    if (__builtin_expect(pinmm_cond_, 0))                                        \
      ::pinmm::mm_warn(#cond, __FILE__, __LINE__,                                \
                       !pinmm_warned_.exchange(true, std::memory_order_relaxed), \
                       ::pinmm::check_detail::describe_all(__VA_ARGS__));        \
    pinmm_cond_;                                                                 \
  })

#ifdef PINMM_DEBUG
#define MM_DCHECK(cond, ...) MM_BUG_ON(!(cond), ##__VA_ARGS__)
inline constexpr bool kPinmmDebug = true;
#else
#define MM_DCHECK(cond, ...) \
  do {                       \
    (void)sizeof(!(cond));   \
  } while (0)
inline constexpr bool kPinmmDebug = false;
#endif
