#include "pinmm/phys/folio_lock.h"

#include "pinmm/phys/memory_system.h"

namespace pinmm {

FolioWaitTable::Bucket::Bucket() NO_THREAD_SAFETY_ANALYSIS { init_list_head(&waiters); }

FolioWaitTable::Bucket& FolioWaitTable::bucket_of(const Folio* folio) {
  // hash_ptr(folio, PAGE_WAIT_TABLE_BITS)
  const uint64_t h = (reinterpret_cast<uintptr_t>(folio) >> 6) * 0x9E3779B97F4A7C15ull;
  return buckets_[h >> (64 - 8)];
}

void FolioWaitTable::wait_bit(Folio* folio, unsigned bit, const std::function<void()>& unlock) {
  Bucket& b = bucket_of(folio);
  Waiter w{{}, folio, bit, false};
  b.lock.lock();
  list_add_tail(&w.link, &b.waiters);
  // Announce the waiter, then re-check: pairs with the waker's clearing
  // read-modify-write, which returns PG_waiters if it was set before.
  folio->page.set(PG_waiters);
  const bool must_sleep = folio->page.test(bit, std::memory_order_seq_cst);
  if (!must_sleep) list_del_init(&w.link);
  if (unlock) unlock();
  while (must_sleep && !w.woken)
    b.cv.wait(b.lock);
  b.lock.unlock();
}

void FolioWaitTable::wake_bit(Folio* folio, unsigned bit) {
  Bucket& b = bucket_of(folio);
  MutexGuard g(b.lock);
  bool others = false;
  for (ListHead* pos = b.waiters.load_next(); pos != &b.waiters;) {
    ListHead* next = pos->load_next();
    auto* w = reinterpret_cast<Waiter*>(pos);  // link is the first member
    if (w->folio == folio && w->bit == bit) {
      list_del_init(&w->link);
      w->woken = true;
    } else if (w->folio == folio) {
      others = true;
    }
    pos = next;
  }
  if (!others) folio->page.clear(PG_waiters);
  b.cv.notify_all();
}

bool folio_trylock(Folio* folio) { return !folio->page.test_and_set(PG_locked); }

void folio_lock(Folio* folio) {
  while (!folio_trylock(folio)) {
    page_memory_system(&folio->page).wait_table().wait_bit(folio, PG_locked);
  }
}

void folio_unlock(Folio* folio) {
  const uint64_t old = page_detail::ref(folio->page.flags_).fetch_and(~(uint64_t{1} << PG_locked));
  MM_BUG_ON(!(old & (uint64_t{1} << PG_locked)), folio);
  if (old & (uint64_t{1} << PG_waiters))
    page_memory_system(&folio->page).wait_table().wake_bit(folio, PG_locked);
}

void folio_wait_locked(Folio* folio) {
  if (folio_test_locked(folio))
    page_memory_system(&folio->page).wait_table().wait_bit(folio, PG_locked);
}

void folio_wait_writeback(Folio* folio) {
  while (folio_test_writeback(folio)) {
    page_memory_system(&folio->page).wait_table().wait_bit(folio, PG_writeback);
  }
}

void folio_end_writeback(Folio* folio) {
  const uint64_t old =
      page_detail::ref(folio->page.flags_).fetch_and(~(uint64_t{1} << PG_writeback));
  MM_BUG_ON(!(old & (uint64_t{1} << PG_writeback)), folio);
  if (old & (uint64_t{1} << PG_waiters)) {
    page_memory_system(&folio->page).wait_table().wake_bit(folio, PG_writeback);
  }
}

}  // namespace pinmm
