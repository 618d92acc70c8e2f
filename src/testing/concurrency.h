// Test helpers for concurrency tests that never hope.
//
// A concurrency test either orders its threads deterministically (one
// thread waits until another has provably reached a point) or runs racers
// until they have provably made progress. Neither depends on how fast a
// thread starts or runs: on a loaded 2-core machine a thread may start a
// second late and the test still passes. The only clock is the hang
// detector: a wait that sees no progress for kProgressBound fails the test
// instead of hanging it.
//
// Racers run on ScopedThreads: an ASSERT in the test body returns with the
// threads asked to stop and joined, so the failure is reported as a failure
// rather than std::terminate with a live thread.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <stop_token>
#include <thread>
#include <vector>

namespace pinmm::testing {

// Long enough that only a hang reaches it, even under ASan or TSan on a
// loaded machine.
inline constexpr std::chrono::seconds kProgressBound{300};

// Waits until `done()` holds; false if kProgressBound passed first (the
// caller fails the test). Polls with a yield, then short sleeps, so a
// waiter never starves the thread it waits for on a small machine.
template <typename Done>
[[nodiscard]] bool wait_until(Done done, std::chrono::seconds bound = kProgressBound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  for (unsigned spins = 0; !done(); ++spins) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (spins < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  return true;
}

// Runs body(round) for round = 0, 1, … until at least `min_rounds` rounds
// ran and `done()` holds. Returns the number of rounds, or 0 if
// kProgressBound passed first. The body may ASSERT: a fatal failure ends
// the loop.
template <typename Done, typename Body>
[[nodiscard]] uint64_t repeat_until(uint64_t min_rounds, Done done, Body body,
                                    std::chrono::seconds bound = kProgressBound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  uint64_t round = 0;
  for (; round < min_rounds || !done(); ++round) {
    if (std::chrono::steady_clock::now() > deadline) return 0;
    body(round);
    if (::testing::Test::HasFatalFailure()) return round + 1;
  }
  return round;
}

// Threads that are asked to stop and joined when the object goes out of
// scope (or at stop_and_join). Each body gets a stop_token to poll.
// Declare a ScopedThreads after everything its bodies use.
class ScopedThreads {
 public:
  ScopedThreads() = default;
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;
  ~ScopedThreads() { stop_and_join(); }

  template <typename Fn>
  void spawn(Fn&& fn) {
    threads_.emplace_back(std::forward<Fn>(fn));
  }
  void stop_and_join() {
    for (auto& t : threads_)
      t.request_stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  size_t size() const { return threads_.size(); }

 private:
  std::vector<std::jthread> threads_;
};

// A count that one thread advances and another waits on: "the walker has
// taken batch 7", "the migrator finished a pass".
class Progress {
 public:
  void advance() { n_.fetch_add(1, std::memory_order_release); }
  uint64_t get() const { return n_.load(std::memory_order_acquire); }
  // Waits until the count reaches `target`; false on the hang bound.
  [[nodiscard]] bool wait_for(uint64_t target) const {
    return wait_until([&] { return get() >= target; });
  }

 private:
  std::atomic<uint64_t> n_{0};
};

}  // namespace pinmm::testing
