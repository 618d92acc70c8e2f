// RCU through liburcu (the membarrier flavour, urcu-memb).
//
// Linux counterpart: rcu_read_lock/unlock, synchronize_rcu, call_rcu,
// rcu_barrier, rcu_dereference / rcu_assign_pointer. pinmm uses RCU where
// Linux relies on disabled interrupts or RCU for lockless walks: the GUP-fast
// page-table walk and the freeing of page-table pages.
//
// Threads are registered with liburcu on first use and unregistered when they
// exit.
// RCU is process-wide, like the kernel's: every MemorySystem shares it.
//
// Thread safety: a reader sees every store published before the pointer it
// read through RcuPointer::load (acquire pairs with store's release). Memory
// a reader can reach is freed only after a grace period that started after
// the reader's section ended. Under ThreadSanitizer, read_unlock() releases
// and synchronize()/callbacks acquire a sync object, so TSan sees the grace
// period's happens-before edge that liburcu's membarriers provide.
#pragma once

#include <atomic>
#include <functional>

#include "pinmm/base/thread_annotations.h"

namespace pinmm::rcu {

// The read side of RCU as a capability, so lockless walkers can state
// REQUIRES_SHARED(rcu::kReadSide).
class CAPABILITY("rcu") ReadSide {};
extern ReadSide kReadSide;

void read_lock() ACQUIRE_SHARED(kReadSide);
void read_unlock() RELEASE_SHARED(kReadSide);
// True inside a read section on the calling thread.
bool in_read_section();

// Waits for a grace period: every read section that began before the call has
// ended. Must not be called inside a read section.
void synchronize();
// Runs fn after a grace period, on pinmm's callback worker thread (not
// liburcu's call_rcu thread, which sleeps 10 ms after every wake-up).
void call(std::function<void()> fn);
// Waits until every callback queued by call() so far has run.
void barrier();

class SCOPED_CAPABILITY ReadSection {
 public:
  ReadSection() ACQUIRE_SHARED(kReadSide) { read_lock(); }
  ~ReadSection() RELEASE() { read_unlock(); }
  ReadSection(const ReadSection&) = delete;
  ReadSection& operator=(const ReadSection&) = delete;
};

// An RCU-protected pointer: load() is rcu_dereference, store() is
// rcu_assign_pointer.
template <typename T>
class RcuPointer {
 public:
  RcuPointer() = default;
  explicit RcuPointer(T* p) : p_(p) {}
  T* load() const { return p_.load(std::memory_order_acquire); }
  void store(T* p) { p_.store(p, std::memory_order_release); }
  T* exchange(T* p) { return p_.exchange(p, std::memory_order_acq_rel); }

 private:
  std::atomic<T*> p_{nullptr};
};

}  // namespace pinmm::rcu
