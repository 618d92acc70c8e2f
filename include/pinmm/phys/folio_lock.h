// The folio lock and waiting on folio flag bits.
//
// Linux counterpart: folio_lock/folio_trylock/folio_unlock and
// folio_wait_bit_common() with the hashed folio_wait_table (mm/filemap.c).
// The lock is the PG_locked bit. A waiter sleeps on a wait-queue bucket
// chosen by the folio's address and never holds a reference to the folio:
// it can wait on a folio that is freed and reused meanwhile, and a waiter's
// presence does not change the folio's refcount (so migration's expected
// count check is not disturbed by threads waiting on a migration entry).
//
// Thread safety: a waiter sets PG_waiters and re-checks the bit under the
// bucket lock; a waker clears the bit with a full read-modify-write and, if
// PG_waiters was set, wakes the bucket under its lock. Either the waiter sees
// the bit clear, or the waker sees PG_waiters and finds the waiter queued.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <functional>

#include "pinmm/base/list.h"
#include "pinmm/base/locks.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class FolioWaitTable {
 public:
  static constexpr unsigned kBuckets = 256;  // PAGE_WAIT_TABLE_SIZE

  // Sleeps until `bit` of the folio's head page is clear. If `unlock` is
  // given it runs once the waiter is queued (and PG_waiters set), before
  // sleeping: migration_entry_wait drops the page-table lock there. Returns
  // at once (after running unlock) if the bit is already clear.
  void wait_bit(Folio* folio, unsigned bit, const std::function<void()>& unlock = {});
  // Wakes every waiter of (folio, bit); clears PG_waiters when no waiter of
  // the folio remains.
  void wake_bit(Folio* folio, unsigned bit);

 private:
  struct Waiter {
    ListHead link;  // first member: a list node is a Waiter
    const Folio* folio;
    unsigned bit;
    bool woken;
  };
  struct Bucket {
    Bucket();
    Mutex lock{LockRank::kWaitQueue};
    std::condition_variable_any cv;
    ListHead waiters GUARDED_BY(lock);
  };
  Bucket& bucket_of(const Folio* folio);

  std::array<Bucket, kBuckets> buckets_;
};

void folio_lock(Folio* folio);
bool folio_trylock(Folio* folio);
void folio_unlock(Folio* folio);
// Waits until the folio is unlocked, without taking the lock.
void folio_wait_locked(Folio* folio);
// Waits while PG_writeback is set.
void folio_wait_writeback(Folio* folio);
// Clears PG_writeback and wakes its waiters.
void folio_end_writeback(Folio* folio);

}  // namespace pinmm
