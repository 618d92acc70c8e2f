// migrate_pages: the per-folio state machine, the interplay matrix of
// KERNEL-SPEC 6.9, the return-value and counter rules of 6.6, modes and
// failure injection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/vm/huge_memory.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"

namespace pinmm {
namespace {

using testing::FolioList;
using ::testing::HasSubstr;
using testing::isolate_at;
using testing::migrate_to;
using testing::nid_at;

class Migrate : public ::testing::Test {
 protected:
  Migrate() : m(testing::two_node_machine()), mm(Mm::create(m.vm)) {}

  int64_t event(VmEventItem e) { return m.ms->events().get(e); }
  int64_t isolated() {
    return m.ms->node(0).stats().get(NR_ISOLATED_ANON) +
           m.ms->node(1).stats().get(NR_ISOLATED_ANON) +
           m.ms->node(0).stats().get(NR_ISOLATED_FILE) +
           m.ms->node(1).stats().get(NR_ISOLATED_FILE);
  }
  // One private anonymous page on node 0 holding `pattern` in every byte.
  VirtAddr anon_page(uint8_t pattern) {
    const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
    std::vector<std::byte> buf(PAGE_SIZE, std::byte{pattern});
    EXPECT_TRUE(copy_to_user(*mm, a, buf).ok());
    EXPECT_EQ(nid_at(*mm, a), 0);
    return a;
  }
  bool page_holds(VirtAddr a, uint8_t pattern, uint64_t len = PAGE_SIZE) {
    std::vector<std::byte> buf(len);
    if (!copy_from_user(*mm, buf, a).ok()) return false;
    for (std::byte b : buf)
      if (b != std::byte{pattern}) return false;
    return true;
  }

  testing::VmMachine m;
  MmHandle mm;
};

// ---- KERNEL-SPEC 6.9, row by row ----

TEST_F(Migrate, NobodyHoldsThePageItMigrates) {
  const VirtAddr a = anon_page(0x5a);
  const Pfn old_pfn = page_to_pfn(testing::page_at(*mm, a));
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(isolated(), 1);
  unsigned nr = 0;
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, &nr), 0);
  EXPECT_EQ(nr, 1u);
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(nid_at(*mm, a), 1);
  EXPECT_NE(page_to_pfn(testing::page_at(*mm, a)), old_pfn);
  EXPECT_TRUE(page_holds(a, 0x5a));
  // The mapping is as it was: writable, exclusive.
  const pte_t pte = testing::pte_at(*mm, a);
  EXPECT_TRUE(pte_write(pte));
  EXPECT_TRUE(PageAnonExclusive(testing::page_at(*mm, a)));
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), 1);
  EXPECT_EQ(event(PGMIGRATE_FAIL), 0);
  EXPECT_EQ(isolated(), 0);
  EXPECT_EQ(m.ms->pfn_to_page(old_pfn)->refcount(), 0);  // the source went back to the allocator
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, ExtraReferenceFailsWithEagainUntilDropped) {
  const VirtAddr a = anon_page(0x11);
  Folio* folio = page_folio(testing::page_at(*mm, a));
  folio_get(folio);  // a FOLL_GET reference
  {
    FolioList list;
    ASSERT_TRUE(isolate_at(*mm, a, list));
    MigratePagesStats st;
    EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, nullptr, &st), 1);
    EXPECT_EQ(list.size(), 1u);  // left for the caller to put back
    EXPECT_EQ(st.nr_failed_pages, 1u);
  }
  // FOLL_GET does not protect PageAnonExclusive: the page was unmapped,
  // failed the refcount check and was mapped again, unchanged.
  EXPECT_EQ(page_folio(testing::page_at(*mm, a)), folio);
  EXPECT_TRUE(pte_write(testing::pte_at(*mm, a)));
  EXPECT_TRUE(PageAnonExclusive(&folio->page));
  EXPECT_EQ(event(PGMIGRATE_FAIL), 1);
  EXPECT_EQ(isolated(), 0);
  folio_put(folio);

  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 0);
  EXPECT_EQ(nid_at(*mm, a), 1);
  EXPECT_TRUE(page_holds(a, 0x11));
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, PinnedAnonExclusivePageIsRefusedAtUnmap) {
  const VirtAddr a = anon_page(0x22);
  Folio* folio = page_folio(testing::page_at(*mm, a));
  folio_ref_add(folio, GUP_PIN_COUNTING_BIAS);  // what FOLL_PIN adds to a small folio
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 1);
  // PageAnonExclusive could not be cleared: the entry was put back at once
  // and the page never became shared.
  EXPECT_TRUE(PageAnonExclusive(&folio->page));
  EXPECT_TRUE(pte_write(testing::pte_at(*mm, a)));
  EXPECT_EQ(page_folio(testing::page_at(*mm, a)), folio);
  EXPECT_FALSE(folio_ref_sub_and_test(folio, GUP_PIN_COUNTING_BIAS));
  putback_movable_pages(&list.head);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, PinnedPageCacheFolioUnmapsButFailsTheRefcountCheck) {
  auto file = File::create(m.vm, FsType::kTmpfs, "shm", PAGE_SIZE);
  auto r = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(write_user<uint32_t>(*mm, *r, 0xfeedu).ok());
  Folio* folio = page_folio(testing::page_at(*mm, *r));
  folio_ref_add(folio, GUP_PIN_COUNTING_BIAS);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, *r, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 1);
  EXPECT_EQ(page_folio(testing::page_at(*mm, *r)), folio);
  EXPECT_EQ(*read_user<uint32_t>(*mm, *r), 0xfeedu);
  EXPECT_FALSE(folio_ref_sub_and_test(folio, GUP_PIN_COUNTING_BIAS));
  putback_movable_pages(&list.head);

  ASSERT_TRUE(isolate_at(*mm, *r, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 0);
  Folio* moved = page_folio(testing::page_at(*mm, *r));
  EXPECT_NE(moved, folio);
  EXPECT_EQ(filemap_get_folio(file->mapping(), 0), moved);
  folio_put(moved);
  EXPECT_EQ(*read_user<uint32_t>(*mm, *r), 0xfeedu);
  EXPECT_EQ(m.ms->node(1).stats().get(NR_SHMEM), 1);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_SHMEM), 0);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, LruBatchReferenceBlocksUntilDrained) {
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 7).ok());
  Folio* folio = page_folio(testing::page_at(*mm, a));
  // Fresh from the fault, the folio sits in this CPU's LRU add batch, which
  // holds a reference; it is not on an LRU list yet and cannot be isolated.
  EXPECT_EQ(folio_ref_count(folio), 2);
  EXPECT_FALSE(folio_test_lru(folio));
  FolioList list;
  folio_get(folio);
  EXPECT_FALSE(isolate_folio_to_list(folio, &list.head));
  folio_put(folio);
  lru_add_drain_all(*m.ms);
  EXPECT_EQ(folio_ref_count(folio), 1);
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 0);
  EXPECT_EQ(nid_at(*mm, a), 1);
}

// Thread 001's question: a fault that meets a migration entry waits without
// a reference, so the migration it waits for still succeeds. The order is
// fixed: the migration holds its entries (at migrate.after_unmap) until the
// reader is provably waiting on one, then moves the folio.
TEST_F(Migrate, ConcurrentWaiterInMigrationEntryWaitDoesNotBlockMigration) {
  const VirtAddr a = anon_page(0x33);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  testing::Progress entries_installed;
  std::atomic<bool> waiter_seen{false};
  m.ms->injector().on_hit(inject_point_migrate::kAfterUnmap, [&] {
    entries_installed.advance();
    waiter_seen = testing::wait_until([&] { return m.vm.migration_waits() > 0; });
  });
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token) {
    ASSERT_TRUE(entries_installed.wait_for(1));
    EXPECT_TRUE(is_swap_pte(testing::pte_at(*mm, a)));
    EXPECT_TRUE(page_holds(a, 0x33));  // faults on the entry and waits
  });
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_ASYNC), 0);
  threads.stop_and_join();
  m.ms->injector().clear_all();
  EXPECT_TRUE(waiter_seen.load());
  EXPECT_EQ(m.vm.migration_waits(), 1u);
  EXPECT_EQ(nid_at(*mm, a), 1);
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), 1);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

// ---- the state machine ----

TEST_F(Migrate, FolioFreedUnderUsCountsAsMigrated) {
  const VirtAddr a = anon_page(0x44);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  ASSERT_TRUE(vm_munmap(*mm, a, PAGE_SIZE).ok());
  rcu::barrier();  // munmap's page tables are freed after a grace period
  const int64_t free_before = m.free_pages();
  unsigned nr = 0;
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, &nr), 0);
  EXPECT_EQ(nr, 1u);
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), 1);
  EXPECT_EQ(m.free_pages(), free_before + 1);  // nothing allocated, the source freed
}

TEST_F(Migrate, ReadOnlySharedAfterForkRestoresReadEntries) {
  const VirtAddr a = anon_page(0x55);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  Folio* folio = page_folio(testing::page_at(*mm, a));
  EXPECT_EQ(folio_mapcount(folio), 2);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 0);
  Page* p = testing::page_at(*mm, a);
  EXPECT_EQ(testing::page_at(**child, a), p);
  EXPECT_EQ(folio_mapcount(page_folio(p)), 2);
  EXPECT_FALSE(PageAnonExclusive(p));
  EXPECT_FALSE(pte_write(testing::pte_at(*mm, a)));
  // COW still works on the new page.
  ASSERT_TRUE(write_user<uint8_t>(**child, a, 0x66).ok());
  EXPECT_TRUE(page_holds(a, 0x55));
  EXPECT_EQ(testing::read_byte(**child, a), 0x66);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, ThpMigratesWhole) {
  const VirtAddr a = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h(((a.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK));
  std::vector<std::byte> buf(HPAGE_PMD_SIZE);
  for (size_t i = 0; i < buf.size(); ++i)
    buf[i] = std::byte(i * 7);
  ASSERT_TRUE(copy_to_user(*mm, h, buf).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  EXPECT_EQ(isolated(), HPAGE_PMD_NR);
  unsigned nr = 0;
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, &nr), 0);
  EXPECT_EQ(nr, HPAGE_PMD_NR);
  EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  EXPECT_EQ(nid_at(*mm, h), 1);
  std::vector<std::byte> back(HPAGE_PMD_SIZE);
  ASSERT_TRUE(copy_from_user(*mm, back, h).ok());
  EXPECT_EQ(back, buf);
  EXPECT_EQ(event(THP_MIGRATION_SUCCESS), 1);
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), static_cast<int64_t>(HPAGE_PMD_NR));
  EXPECT_EQ(isolated(), 0);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, HugetlbMigratesToAFreePoolPage) {
  auto r = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(write_user<uint64_t>(*mm, *r + 4096 * 3, 0xabcdefull).ok());
  Folio* folio = page_folio(testing::page_at(*mm, *r));
  ASSERT_TRUE(folio_test_hugetlb(folio));
  ASSERT_EQ(folio_nid(folio), 0);
  const auto& pools = m.ms->hugetlb();
  const HstateCounts node1_before = pools.counts_node(HugetlbPools::kPmdIndex, 1);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, *r, list));
  EXPECT_FALSE(folio_test_hugetlb_migratable(folio));
  EXPECT_EQ(migrate_to(*m.ms, list, 1), 0);
  Folio* moved = page_folio(testing::page_at(*mm, *r));
  EXPECT_NE(moved, folio);
  EXPECT_EQ(folio_nid(moved), 1);
  EXPECT_TRUE(folio_test_hugetlb_migratable(moved));
  EXPECT_EQ(*read_user<uint64_t>(*mm, *r + 4096 * 3), 0xabcdefull);
  EXPECT_EQ(pools.counts_node(HugetlbPools::kPmdIndex, 1).free_huge_pages,
            node1_before.free_huge_pages - 1);
  EXPECT_EQ(pools.counts_node(HugetlbPools::kPmdIndex, 0).free_huge_pages, 2u);  // source back
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), static_cast<int64_t>(HPAGE_PMD_NR));
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

// ---- return values, modes, failure injection ----

TEST_F(Migrate, ReturnsFoliosNotMigratedAndLeavesThemOnTheList) {
  const VirtAddr a = anon_page(1), b = anon_page(2), c = anon_page(3);
  Folio* pinned = page_folio(testing::page_at(*mm, b));
  folio_get(pinned);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  ASSERT_TRUE(isolate_at(*mm, b, list));
  ASSERT_TRUE(isolate_at(*mm, c, list));
  unsigned nr = 0;
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, &nr), 1);
  EXPECT_EQ(nr, 2u);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(folio_of_lru(list.head.load_next()), pinned);
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), 2);
  EXPECT_EQ(event(PGMIGRATE_FAIL), 1);
  EXPECT_EQ(nid_at(*mm, a), 1);
  EXPECT_EQ(nid_at(*mm, b), 0);
  EXPECT_EQ(nid_at(*mm, c), 1);
  putback_movable_pages(&list.head);
  folio_put(pinned);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, TargetAllocationFailureAbortsWithEnomem) {
  const VirtAddr a = anon_page(1), b = anon_page(2), c = anon_page(3);
  FolioList list;
  for (VirtAddr x : {a, b, c})
    ASSERT_TRUE(isolate_at(*mm, x, list));
  int calls = 0;
  MigrationTargetControl mtc;
  mtc.nid = 1;
  MigrationTarget target{[&](Folio* src) -> Folio* {
                           if (++calls == 2) return nullptr;
                           return alloc_migration_target(*m.ms, src, mtc);
                         },
                         {}};
  unsigned nr = 0;
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, target, MIGRATE_SYNC, MR_SYSCALL, &nr), -ENOMEM);
  EXPECT_EQ(nr, 1u);
  EXPECT_EQ(list.size(), 2u);  // the failed one and the untried one
  EXPECT_EQ((nid_at(*mm, a) == 1) + (nid_at(*mm, b) == 1) + (nid_at(*mm, c) == 1), 1);
  EXPECT_EQ(event(PGMIGRATE_FAIL), 1);  // untried folios are not counted
  putback_movable_pages(&list.head);
  EXPECT_EQ(isolated(), 0);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, AsyncModeDoesNotWaitForAFolioLock) {
  const VirtAddr a = anon_page(9);
  Folio* folio = page_folio(testing::page_at(*mm, a));
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  folio_lock(folio);
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_ASYNC), 1);
  EXPECT_EQ(event(PGMIGRATE_FAIL), 1);
  // SYNC sleeps on the lock until its holder lets go.
  std::thread holder([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    folio_unlock(folio);
  });
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC), 0);
  holder.join();
  EXPECT_EQ(nid_at(*mm, a), 1);
}

TEST_F(Migrate, WritebackFailsWithEbusyUnlessSync) {
  auto file = File::create(m.vm, FsType::kExt4, "data", PAGE_SIZE);
  std::vector<std::byte> buf(PAGE_SIZE, std::byte{0x77});
  ASSERT_TRUE(file->pwrite(buf, 0).ok());
  Folio* folio = filemap_get_folio(file->mapping(), 0);
  ASSERT_NE(folio, nullptr);
  lru_add_drain_all(*m.ms);
  folio_set_writeback(folio);
  for (MigrateMode mode : {MIGRATE_ASYNC, MIGRATE_SYNC_LIGHT}) {
    FolioList list;
    ASSERT_TRUE(isolate_folio_to_list(folio, &list.head));
    MigratePagesStats st;
    EXPECT_EQ(migrate_to(*m.ms, list, 1, mode, nullptr, &st), 1) << migrate_mode_name(mode);
    EXPECT_EQ(st.nr_failed_pages, 1u);
  }
  FolioList list;
  ASSERT_TRUE(isolate_folio_to_list(folio, &list.head));
  folio_put(folio);
  std::thread io([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    folio_end_writeback(folio);
  });
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC), 0);
  io.join();
  std::vector<std::byte> back(PAGE_SIZE);
  ASSERT_TRUE(file->pread(back, 0).ok());
  EXPECT_EQ(back, buf);
  Folio* moved = filemap_get_folio(file->mapping(), 0);
  EXPECT_EQ(folio_nid(moved), 1);
  EXPECT_TRUE(folio_test_dirty(moved));
  folio_put(moved);
  EXPECT_EQ(m.ms->node(1).stats().get(NR_FILE_DIRTY), 1);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_FILE_DIRTY), 0);
}

TEST_F(Migrate, CopyFailureIsPermanentAndRestoresTheMapping) {
  const VirtAddr a = anon_page(0x3c);
  Folio* folio = page_folio(testing::page_at(*mm, a));
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  m.ms->injector().fail_always(inject_point_migrate::kFolioCopy);
  MigratePagesStats st;
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, nullptr, &st), 1);
  // -EHWPOISON is permanent: no further pass of the ASYNC batch, but
  // migrate_pages_sync gives every folio the ASYNC batch failed one SYNC
  // attempt of its own.
  EXPECT_EQ(m.ms->injector().hits(inject_point_migrate::kFolioCopy), 2u);
  EXPECT_EQ(st.nr_failed_pages, 1u);
  m.ms->injector().clear_all();
  EXPECT_EQ(page_folio(testing::page_at(*mm, a)), folio);
  EXPECT_TRUE(pte_write(testing::pte_at(*mm, a)));
  EXPECT_TRUE(page_holds(a, 0x3c));
  putback_movable_pages(&list.head);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, RetryPassesFollowTheKernelConstants) {
  // A folio with an extra reference unmaps, then fails the refcount check
  // in every pass of the move phase: SYNC mode runs one ASYNC batch of 3
  // passes, then the folio on its own for 7 passes (a new target each
  // time); ASYNC mode runs one batch of 10 passes.
  const VirtAddr a = anon_page(1);
  Folio* folio = page_folio(testing::page_at(*mm, a));
  folio_get(folio);
  int allocations = 0;
  MigrationTargetControl mtc;
  mtc.nid = 1;
  MigrationTarget target{[&](Folio* src) {
                           ++allocations;
                           return alloc_migration_target(*m.ms, src, mtc);
                         },
                         {}};
  Injector& inj = m.ms->injector();
  inj.fail_nth(inject_point_migrate::kMoveFolio, 1000);  // counts hits, never fails here
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, target, MIGRATE_SYNC, MR_SYSCALL), 1);
  EXPECT_EQ(allocations, 2);
  EXPECT_EQ(inj.hits(inject_point_migrate::kMoveFolio),
            uint64_t{NR_MAX_MIGRATE_ASYNC_RETRY + NR_MAX_MIGRATE_SYNC_RETRY});
  inj.clear_all();
  inj.fail_nth(inject_point_migrate::kMoveFolio, 1000);
  allocations = 0;
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, target, MIGRATE_ASYNC, MR_SYSCALL), 1);
  EXPECT_EQ(allocations, 1);
  EXPECT_EQ(inj.hits(inject_point_migrate::kMoveFolio), uint64_t{NR_MAX_MIGRATE_PAGES_RETRY});
  inj.clear_all();
  EXPECT_EQ(event(PGMIGRATE_FAIL), 2);
  putback_movable_pages(&list.head);
  folio_put(folio);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(Migrate, TransientMoveFailureIsRetried) {
  const VirtAddr a = anon_page(0x61);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  m.ms->injector().fail_nth(inject_point_migrate::kMoveFolio, 1);
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_ASYNC), 0);
  EXPECT_EQ(m.ms->injector().failures(inject_point_migrate::kMoveFolio), 1u);
  EXPECT_EQ(nid_at(*mm, a), 1);
  EXPECT_TRUE(page_holds(a, 0x61));
}

TEST_F(Migrate, TraceEventsCarryTheKernelFields) {
  Tracer& tracer = m.ms->tracer();
  tracer.enable(TraceEvent::mm_migrate_pages);
  tracer.enable(TraceEvent::mm_migrate_pages_start);
  const VirtAddr a = anon_page(1);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC_LIGHT), 0);
  std::vector<std::string> lines;
  for (const TraceRecord& r : tracer.records())
    lines.push_back(r.text);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "mode=MIGRATE_SYNC_LIGHT reason=syscall_or_cpuset");
  EXPECT_EQ(lines[1],
            "nr_succeeded=1 nr_failed=0 nr_thp_succeeded=0 nr_thp_failed=0 nr_thp_split=0 "
            "nr_split=0 mode=MIGRATE_SYNC_LIGHT reason=syscall_or_cpuset");
}

TEST_F(Migrate, ValidateCatchesIsolationBookkeeping) {
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
  const VirtAddr a = anon_page(1);
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, a, list));
  EXPECT_TRUE(validate_migrate(*m.ms, false).ok());
  const auto busy = validate_migrate(*m.ms, true);
  EXPECT_FALSE(busy.ok());
  EXPECT_THAT(busy.to_string(), HasSubstr("nr_isolated_anon is 1"));
  putback_movable_pages(&list.head);
  m.ms->node(0).stats().add(NR_ISOLATED_FILE, -1);
  EXPECT_THAT(validate_migrate(*m.ms, false).to_string(), HasSubstr("a negative count"));
  m.ms->node(0).stats().add(NR_ISOLATED_FILE, 1);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST(MigrateNames, ModesAndReasons) {
  EXPECT_EQ(migrate_mode_name(MIGRATE_ASYNC), "MIGRATE_ASYNC");
  EXPECT_EQ(migrate_reason_name(MR_LONGTERM_PIN), "longterm_pin");
  EXPECT_EQ(migrate_reason_name(MR_CONTIG_RANGE), "contig_range");
  EXPECT_EQ(migrate_reason_name(MR_DAMON), "damon");
  EXPECT_EQ(static_cast<int>(MR_TYPES), 10);
}

}  // namespace
}  // namespace pinmm

namespace pinmm {
namespace {

// ---- THP splits ----

class MigrateThp : public Migrate {
 protected:
  // A PMD-mapped THP on node 0 whose bytes are i * 7.
  VirtAddr thp() {
    const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
    const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
    data.resize(HPAGE_PMD_SIZE);
    for (size_t i = 0; i < data.size(); ++i)
      data[i] = std::byte(i * 7);
    EXPECT_TRUE(copy_to_user(*mm, h, data).ok());
    EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
    return h;
  }
  bool intact(VirtAddr h) {
    std::vector<std::byte> back(HPAGE_PMD_SIZE);
    return copy_from_user(*mm, back, h).ok() && back == data;
  }
  // alloc_migration_target to node 1, but never a large folio.
  MigrationTarget small_only() {
    return MigrationTarget{[this](Folio* src) -> Folio* {
                             if (folio_test_large(src)) return nullptr;
                             MigrationTargetControl mtc;
                             mtc.nid = 1;
                             return alloc_migration_target(*m.ms, src, mtc);
                           },
                           {}};
  }
  std::vector<std::byte> data;
};

TEST_F(MigrateThp, NoHugeTargetSplitsAndMigratesThePieces) {
  const VirtAddr h = thp();
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  MigratePagesStats st;
  unsigned nr = 0;
  // The split folio counts as one failure, but the list ends empty: 0.
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, small_only(), MIGRATE_SYNC, MR_SYSCALL, &nr, &st), 0);
  EXPECT_EQ(nr, HPAGE_PMD_NR);
  EXPECT_EQ(st.nr_thp_failed, 1u);
  EXPECT_EQ(st.nr_thp_split, 1u);
  EXPECT_EQ(st.nr_split, 1u);
  EXPECT_EQ(list.size(), 0u);
  EXPECT_EQ(event(THP_MIGRATION_FAIL), 1);
  EXPECT_EQ(event(THP_MIGRATION_SPLIT), 1);
  EXPECT_EQ(event(THP_SPLIT_PAGE), 1);
  EXPECT_EQ(event(PGMIGRATE_SUCCESS), static_cast<int64_t>(HPAGE_PMD_NR));
  EXPECT_FALSE(pmd_leaf(testing::pmd_at(*mm, h)));
  for (uint64_t i = 0; i < HPAGE_PMD_NR; i += 37) {
    Page* p = testing::page_at(*mm, h + i * PAGE_SIZE);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(folio_test_large(page_folio(p)));
    EXPECT_EQ(page_to_nid(p), 1);
    EXPECT_TRUE(PageAnonExclusive(p));
  }
  EXPECT_TRUE(intact(h));
  EXPECT_EQ(isolated(), 0);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MigrateThp, SplitFailureAbortsWithEnomem) {
  const VirtAddr h = thp();
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  m.ms->injector().fail_always(inject_point_vm::kSplitFolio);
  MigratePagesStats st;
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, small_only(), MIGRATE_SYNC, MR_SYSCALL, nullptr, &st),
            -ENOMEM);
  m.ms->injector().clear_all();
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(st.nr_thp_failed, 1u);
  EXPECT_EQ(st.nr_failed_pages, HPAGE_PMD_NR);
  EXPECT_EQ(event(THP_SPLIT_PAGE_FAILED), 1);
  putback_movable_pages(&list.head);
  EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  EXPECT_EQ(nid_at(*mm, h), 0);
  EXPECT_TRUE(intact(h));
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MigrateThp, LongtermPinRetriesASplitThatFailedWithEagain) {
  const VirtAddr h = thp();
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  m.ms->injector().fail_nth(inject_point_vm::kSplitFolio, 1);
  MigrationTarget target = small_only();
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, target, MIGRATE_SYNC, MR_LONGTERM_PIN), 0);
  EXPECT_EQ(m.ms->injector().failures(inject_point_vm::kSplitFolio), 1u);
  EXPECT_EQ(event(THP_SPLIT_PAGE), 1);
  EXPECT_EQ(nid_at(*mm, h + 100 * PAGE_SIZE), 1);
  EXPECT_TRUE(intact(h));
}

TEST_F(MigrateThp, OtherReasonsDoNotRetryTheSplit) {
  const VirtAddr h = thp();
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  m.ms->injector().fail_nth(inject_point_vm::kSplitFolio, 1);
  EXPECT_EQ(migrate_pages(*m.ms, &list.head, small_only(), MIGRATE_SYNC, MR_SYSCALL), -ENOMEM);
  putback_movable_pages(&list.head);
  EXPECT_TRUE(intact(h));
}

TEST_F(MigrateThp, PinnedThpDoesNotSplit) {
  const VirtAddr h = thp();
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  Folio* folio = folio_of_lru(list.head.load_next());
  folio_ref_add(folio, 1);  // FOLL_PIN on a large folio: a reference and a pincount
  folio_pincount_add(folio, 1);
  ListHead pieces;
  init_list_head(&pieces);
  folio_lock(folio);
  EXPECT_EQ(split_folio_to_list(folio, &pieces), -EAGAIN);
  folio_unlock(folio);
  EXPECT_TRUE(list_empty(&pieces));
  folio_pincount_add(folio, -1);
  EXPECT_FALSE(folio_ref_sub_and_test(folio, 1));
  putback_movable_pages(&list.head);
  EXPECT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

TEST_F(MigrateThp, PartiallyMappedThpIsSplitBeforeMigrating) {
  const VirtAddr h = thp();
  // Unmapping the second half leaves the folio mapped in part.
  ASSERT_TRUE(vm_munmap(*mm, h + HPAGE_PMD_SIZE / 2, HPAGE_PMD_SIZE / 2).ok());
  Folio* folio = page_folio(testing::page_at(*mm, h));
  ASSERT_TRUE(folio_test_partially_mapped(folio));
  FolioList list;
  ASSERT_TRUE(isolate_at(*mm, h, list));
  MigratePagesStats st;
  EXPECT_EQ(migrate_to(*m.ms, list, 1, MIGRATE_SYNC, nullptr, &st), 0);
  EXPECT_EQ(st.nr_split, 1u);
  // The mapped half moved; the unmapped half was freed under migration.
  EXPECT_EQ(st.nr_succeeded, HPAGE_PMD_NR);
  EXPECT_EQ(nid_at(*mm, h), 1);
  std::vector<std::byte> back(HPAGE_PMD_SIZE / 2);
  ASSERT_TRUE(copy_from_user(*mm, back, h).ok());
  EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin()));
  EXPECT_EQ(isolated(), 0);
  EXPECT_VM_VALID(m.vm);
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

}  // namespace
}  // namespace pinmm

namespace pinmm {
namespace {

// The points the vm and migrate layers name are the catalogue's (the CLI,
// scenarios and stress only arm points it lists).
TEST(InjectCatalogue, LayerPointsAreListed) {
  for (std::string_view p :
       {inject_point_migrate::kMoveFolio, inject_point_migrate::kFolioCopy,
        inject_point_migrate::kAfterUnmap, inject_point_vm::kSplitFolio,
        inject_point_vm::kMigrationEntryWait, inject_point_vm::kAnonVmaPrepare}) {
    EXPECT_NE(find_inject_point(p), nullptr) << p;
  }
  EXPECT_EQ(find_inject_point(inject_point_migrate::kAfterUnmap)->kind, InjectKind::kWindow);
}

}  // namespace
}  // namespace pinmm

namespace pinmm {
namespace {

// The quiescent check looks at movable_ops pages, which are never tails: a
// partially mapped THP's page[1] keeps its mapped-page count where a head
// keeps its mapping (506 = 0x1fa looks like PAGE_MAPPING_MOVABLE) and its
// deferred-split state in the flags. Found by pinmm stress.
TEST(MigrateValidate, TailPagesAreNotMovableOpsPages) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(32));
  c.thp = ThpMode::kAlways;
  testing::VmMachine m(c);
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = testing::map_anon(*mm, HPAGE_PMD_SIZE);
  ASSERT_TRUE(write_user<uint64_t>(*mm, a, 1).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, a)));
  ASSERT_TRUE(vm_munmap(*mm, a + 506 * PAGE_SIZE, 6 * PAGE_SIZE).ok());
  Folio* folio = page_folio(testing::page_at(*mm, a));
  ASSERT_EQ(folio_order(folio), HPAGE_PMD_ORDER);
  EXPECT_EQ(folio_page(folio, 1)->mapping() & PAGE_MAPPING_FLAGS, PAGE_MAPPING_MOVABLE)
      << "the case this test is about";
  EXPECT_MIGRATE_QUIESCENT(*m.ms);
}

}  // namespace
}  // namespace pinmm
