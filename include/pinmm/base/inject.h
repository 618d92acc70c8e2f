// Fault injection: named failure points that tests, scenarios and the
// stress command arm.
//
// Linux counterpart: the fault-injection framework (fail_page_alloc,
// should_fail() with its interval and probability) and the ad-hoc delays
// developers add to widen race windows. Code under test calls
// should_fail(point) where a failure is possible and maybe_delay(point)
// where a race window can be widened. Points are armed to fail the Nth hit
// from now (once), every Nth hit, every hit, or each hit with a
// probability (from a seeded generator, so one seed and one order of hits
// give one outcome); a window point can sleep or run a hook, which lets a
// test hold the window open until another thread has provably entered it.
// Unarmed, both calls cost one relaxed load.
//
// Thread safety: all methods may be called from any thread; arming and the
// hit counts are kept under a leaf lock. Hooks run without it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <span>
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

// What arming a point does: should_fail points fail, window points
// (maybe_delay) open a race window.
enum class InjectKind : uint8_t { kFail, kWindow };

struct InjectPointInfo {
  std::string_view name;
  InjectKind kind;
  std::string_view layer;
  std::string_view what;  // what a hit means, and what failing it does
};

// Every point the engine has, in one table (the CLI lists it; scenarios and
// stress arm only these).
std::span<const InjectPointInfo> inject_points();
const InjectPointInfo* find_inject_point(std::string_view name);

class Injector {
 public:
  // The nth hit of `point` from now (n >= 1) fails; later hits pass.
  void fail_nth(std::string_view point, uint64_t n) EXCLUDES(lock_);
  void fail_once(std::string_view point) { fail_nth(point, 1); }
  // Every hit fails until cleared.
  void fail_always(std::string_view point) EXCLUDES(lock_);
  // Every nth hit (n >= 1) fails until cleared: hits n, 2n, 3n …
  void fail_every(std::string_view point, uint64_t n) EXCLUDES(lock_);
  // Each hit fails with `probability` (0..1) until cleared.
  void fail_random(std::string_view point, double probability) EXCLUDES(lock_);
  // The generator of fail_random (default seed 1).
  void seed(uint64_t seed) EXCLUDES(lock_);
  // Every hit sleeps for `delay` until cleared.
  void delay(std::string_view point, std::chrono::microseconds delay) EXCLUDES(lock_);
  // Every hit of a window point runs `hook` on the hitting thread (after any
  // delay), without the injector's lock, until cleared.
  void on_hit(std::string_view point, std::function<void()> hook) EXCLUDES(lock_);
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
    uint64_t every = 0;    // every nth hit fails (0: none)
    double probability = 0;
    bool fail_all = false;
    std::chrono::microseconds delay{0};
    std::function<void()> hook;
    uint64_t hits = 0;
    uint64_t failures = 0;
    bool armed() const {
      return fail_at != 0 || every != 0 || probability > 0 || fail_all || delay.count() != 0 ||
             hook != nullptr;
    }
  };
  bool should_fail_slow(std::string_view point) EXCLUDES(lock_);
  void delay_slow(std::string_view point) EXCLUDES(lock_);
  void recount_armed() REQUIRES(lock_);

  mutable Mutex lock_{LockRank::kLeaf};
  std::map<std::string, Rule, std::less<>> rules_ GUARDED_BY(lock_);
  std::mt19937_64 rng_ GUARDED_BY(lock_){1};
  std::atomic<uint32_t> armed_{0};
};

}  // namespace pinmm
