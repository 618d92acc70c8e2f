// Fault injection: named failure points that tests arm.
//
// Linux counterpart: the fault-injection framework (fail_page_alloc,
// should_fail()) and the ad-hoc delays developers add to widen race windows.
// Code under test calls should_fail(point) where a failure is possible and
// maybe_delay(point) where a race window can be widened. Tests arm points:
// fail the Nth hit from now (once), fail every hit, or sleep at a point.
// Unarmed, both calls cost one relaxed load.
//
// Thread safety: all methods may be called from any thread; arming and the
// hit counts are kept under a leaf lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "pinmm/base/locks.h"

namespace pinmm {

// Well-known points. Layers add theirs here so that the CLI can list them.
namespace inject_point {
inline constexpr std::string_view kAllocPages = "alloc_pages";  // any buddy allocation
inline constexpr std::string_view kAllocPagesMovable =
    "alloc_pages.movable";  // movable migratetype
inline constexpr std::string_view kAllocPagesUnmovable = "alloc_pages.unmovable";
inline constexpr std::string_view kKmallocPages = "kmalloc_pages";  // kernel allocations
}  // namespace inject_point

class Injector {
 public:
  // The nth hit of `point` from now (n >= 1) fails; later hits pass.
  void fail_nth(std::string_view point, uint64_t n) EXCLUDES(lock_);
  void fail_once(std::string_view point) { fail_nth(point, 1); }
  // Every hit fails until cleared.
  void fail_always(std::string_view point) EXCLUDES(lock_);
  // Every hit sleeps for `delay` until cleared.
  void delay(std::string_view point, std::chrono::microseconds delay) EXCLUDES(lock_);
  void clear(std::string_view point) EXCLUDES(lock_);
  void clear_all() EXCLUDES(lock_);

  // True if this hit must fail. Counts the hit while anything is armed.
  bool should_fail(std::string_view point) EXCLUDES(lock_) {
    if (armed_.load(std::memory_order_relaxed) == 0) return false;
    return should_fail_slow(point);
  }
  void maybe_delay(std::string_view point) EXCLUDES(lock_) {
    if (armed_.load(std::memory_order_relaxed) == 0) return;
    delay_slow(point);
  }

  // Hits of `point` counted while it was armed, and failures injected there.
  uint64_t hits(std::string_view point) const EXCLUDES(lock_);
  uint64_t failures(std::string_view point) const EXCLUDES(lock_);
  std::vector<std::string> armed_points() const EXCLUDES(lock_);

 private:
  struct Rule {
    uint64_t fail_at = 0;  // hit number that fails (0: none)
    bool fail_all = false;
    std::chrono::microseconds delay{0};
    uint64_t hits = 0;
    uint64_t failures = 0;
    bool armed() const { return fail_at != 0 || fail_all || delay.count() != 0; }
  };
  bool should_fail_slow(std::string_view point) EXCLUDES(lock_);
  void delay_slow(std::string_view point) EXCLUDES(lock_);
  void recount_armed() REQUIRES(lock_);

  mutable Mutex lock_{LockRank::kLeaf};
  std::map<std::string, Rule, std::less<>> rules_ GUARDED_BY(lock_);
  std::atomic<uint32_t> armed_{0};
};

}  // namespace pinmm
