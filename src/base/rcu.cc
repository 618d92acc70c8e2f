#include "pinmm/base/rcu.h"

#include <urcu/urcu-memb.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "pinmm/base/check.h"

#if defined(__SANITIZE_THREAD__)
#define PINMM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PINMM_TSAN 1
#endif
#endif

#ifdef PINMM_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace pinmm::rcu {

ReadSide kReadSide;

namespace {

// Per-thread registration with liburcu, undone when the thread exits.
struct Registration {
  bool registered = false;
  int nesting = 0;
  ~Registration() {
    if (registered) urcu_memb_unregister_thread();
  }
};
thread_local Registration t_reg;

void ensure_registered() {
  if (!t_reg.registered) {
    urcu_memb_register_thread();
    t_reg.registered = true;
  }
}

#ifdef PINMM_TSAN
// The happens-before edge of a grace period, made visible to TSan: readers
// release it when leaving a section; a synchronizer (or an RCU callback)
// acquires it after the grace period.
char g_grace_period_sync;
#endif

void tsan_release_grace() {
#ifdef PINMM_TSAN
  __tsan_release(&g_grace_period_sync);
#endif
}

void tsan_acquire_grace() {
#ifdef PINMM_TSAN
  __tsan_acquire(&g_grace_period_sync);
#endif
}

// The callbacks of call(), run after a grace period by a worker thread of
// pinmm's own. liburcu's call_rcu worker sleeps 10 ms after every wake-up
// to batch callbacks, which made every barrier() cost 10 ms (a scenario
// step, a quiescent check, a fuzzed operation); this one wakes when work
// arrives, takes everything queued, waits one grace period and runs it.
//
// Thread safety: the queue and the sequence numbers are under m_ (a leaf:
// nothing else is taken with it; callbacks run without it). queued_
// counts callbacks added, done_ those run; barrier() waits for done_ to
// reach the queued_ it saw.
class Deferred {
 public:
  static Deferred& instance() {
    static Deferred d;
    return d;
  }
  void add(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> g(m_);
      queue_.push_back(std::move(fn));
      ++queued_;
    }
    work_.notify_one();
  }
  void barrier() {
    std::unique_lock<std::mutex> g(m_);
    const uint64_t target = queued_;
    done_cv_.wait(g, [&] { return done_ >= target; });
  }

 private:
  Deferred() : worker_([this] { loop(); }) {}
  ~Deferred() {
    {
      std::lock_guard<std::mutex> g(m_);
      stop_ = true;
    }
    work_.notify_one();
    worker_.join();
  }
  void loop() {
    std::unique_lock<std::mutex> g(m_);
    for (;;) {
      work_.wait(g, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      std::vector<std::function<void()>> batch;
      batch.swap(queue_);
      const uint64_t upto = queued_;
      g.unlock();
      synchronize();
      for (auto& fn : batch)
        fn();
      g.lock();
      done_ = upto;
      done_cv_.notify_all();
    }
  }

  std::mutex m_;
  std::condition_variable work_, done_cv_;
  std::vector<std::function<void()>> queue_;
  uint64_t queued_ = 0, done_ = 0;
  bool stop_ = false;
  std::thread worker_;  // last: starts once the rest is built
};

}  // namespace

// The capability is notional: liburcu holds the real state.
void read_lock() NO_THREAD_SAFETY_ANALYSIS {
  ensure_registered();
  ++t_reg.nesting;
  urcu_memb_read_lock();
}

void read_unlock() NO_THREAD_SAFETY_ANALYSIS {
  MM_BUG_ON(t_reg.nesting <= 0);
  tsan_release_grace();
  urcu_memb_read_unlock();
  --t_reg.nesting;
}

bool in_read_section() { return t_reg.nesting > 0; }

void synchronize() {
  MM_BUG_ON(in_read_section());
  ensure_registered();
  urcu_memb_synchronize_rcu();
  tsan_acquire_grace();
}

void call(std::function<void()> fn) { Deferred::instance().add(std::move(fn)); }

void barrier() {
  MM_BUG_ON(in_read_section());
  Deferred::instance().barrier();
}

}  // namespace pinmm::rcu
