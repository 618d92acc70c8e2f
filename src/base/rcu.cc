#include "pinmm/base/rcu.h"

#include <urcu/urcu-memb.h>

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

struct Callback {
  rcu_head head;  // first member: liburcu hands back &head
  std::function<void()> fn;
};

void run_callback(rcu_head* head) {
  tsan_acquire_grace();
  auto* cb = reinterpret_cast<Callback*>(head);
  cb->fn();
  delete cb;
}

}  // namespace

void register_thread() { ensure_registered(); }

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

void call(std::function<void()> fn) {
  ensure_registered();
  auto* cb = new Callback{{}, std::move(fn)};
  urcu_memb_call_rcu(&cb->head, run_callback);
}

void barrier() {
  MM_BUG_ON(in_read_section());
  ensure_registered();
  urcu_memb_barrier();
}

}  // namespace pinmm::rcu
