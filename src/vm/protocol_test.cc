// The protocols other layers build on: MMU notifiers, waiting on migration
// entries without a reference, the device-private fault hook, device-
// exclusive and hwpoison entries, the TLB guarantee, and fork's early COW of
// maybe-pinned pages.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/memremap.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using testing::map_anon;
using testing::page_at;
using testing::pte_at;
using testing::read_byte;
using testing::VmMachine;

struct RecordingNotifier : MmuNotifierOps {
  std::vector<std::tuple<MmuNotifyEvent, uint64_t, uint64_t>> starts;
  int ends = 0;
  int releases = 0;
  int invalidate_range_start(const MmuNotifierRange& r) override {
    starts.emplace_back(r.event, r.start.value(), r.end.value());
    return 0;
  }
  void invalidate_range_end(const MmuNotifierRange&) override { ++ends; }
  void release(Mm&) override { ++releases; }
};

TEST(MmuNotifier, EveryPageTableChangeIsBracketed) {
  VmMachine m;
  RecordingNotifier rec;
  {
    MmHandle mm = Mm::create(m.vm);
    mm->notifiers().subscribe(&rec);
    const VirtAddr a = map_anon(*mm, 4 * PAGE_SIZE);
    testing::fill_pages(*mm, a, 4 * PAGE_SIZE, 1);
    EXPECT_TRUE(rec.starts.empty());  // populating empty entries needs no invalidation
    auto child = dup_mm(*mm);         // COW write-protects the parent
    ASSERT_TRUE(child.ok());
    ASSERT_TRUE(write_user<uint8_t>(*mm, a, 2).ok());  // COW replaces a page
    ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ).ok());
    ASSERT_TRUE(do_madvise(*mm, a + 2 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED).ok());
    ASSERT_TRUE(vm_munmap(*mm, a + 3 * PAGE_SIZE, PAGE_SIZE).ok());
    const std::vector<MmuNotifyEvent> want = {MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_CLEAR,
                                              MMU_NOTIFY_PROTECTION_VMA, MMU_NOTIFY_CLEAR,
                                              MMU_NOTIFY_UNMAP};
    ASSERT_EQ(rec.starts.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(std::get<0>(rec.starts[i]), want[i]) << i;
    EXPECT_EQ(std::get<1>(rec.starts[1]), a.value());
    EXPECT_EQ(std::get<2>(rec.starts[1]), a.value() + PAGE_SIZE);
    EXPECT_EQ(rec.ends, static_cast<int>(want.size()));
  }
  EXPECT_EQ(rec.releases, 1);  // exit_mmap
}

// A fault on a migration entry sleeps on the folio's lock bit, holding no
// reference, and retries when the migrating thread unlocks (KERNEL-SPEC 6.4).
TEST(MigrationEntry, FaultWaitsWithoutAReference) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 0x42).ok());
  lru_add_drain_all(*m.ms);
  Page* page = page_at(*mm, a);
  Folio* folio = page_folio(page);
  // Play the migrating thread: lock the folio and replace the PTE by a
  // writable migration entry (keeping the mapping's reference).
  folio_lock(folio);
  pmd_t* pmd = pmd_offset(*mm, a);
  LockedPte lp = pte_offset_map_lock(*mm, pmd, a);
  const pte_t orig = ptep_get(lp.pte);
  set_pte(lp.pte, swp_entry_to_pte(make_writable_migration_entry(page_to_pfn(page))));
  pte_unmap_unlock(lp);
  mm->tlb().flush();
  const int refs = folio_ref_count(folio);

  std::atomic<bool> done{false};
  std::thread reader([&] {
    EXPECT_EQ(read_byte(*mm, a), 0x42);
    done = true;
  });
  while (m.vm.migration_waits() == 0)
    std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(done.load());
  EXPECT_EQ(folio_ref_count(folio), refs);  // the waiter took no reference
  EXPECT_TRUE(folio->page.test(PG_waiters));
  // "Migration" done: restore the entry, unlock, and the reader proceeds.
  lp = pte_offset_map_lock(*mm, pmd, a);
  set_pte(lp.pte, orig);
  pte_unmap_unlock(lp);
  folio_unlock(folio);
  reader.join();
  EXPECT_TRUE(done.load());
  EXPECT_VM_VALID(m.vm);
}

// A CPU fault on a device-private entry asks the page's pagemap to migrate
// it back (the HMM side fills this hook in).
uint32_t test_migrate_to_ram(VmFaultInfo& vmf);
void test_page_free(Page*) {}
constexpr DevPagemapOps kTestOps{test_page_free, test_migrate_to_ram};
struct TestDevice {
  DevPagemap pgmap{MEMORY_DEVICE_PRIVATE, &kTestOps, nullptr, nullptr};
  int calls = 0;
  Page* original = nullptr;  // the system page to map back
};

uint32_t test_migrate_to_ram(VmFaultInfo& vmf) {
  auto* dev = static_cast<TestDevice*>(page_pgmap(vmf.page)->driver_data);
  ++dev->calls;
  // Restore the original page (what migrate_vma would do, in miniature).
  LockedPte lp = pte_offset_map_lock(vmf.vma->vm_mm(), vmf.pmd, vmf.address);
  set_pte(lp.pte, pte_mkyoung(pte_mkwrite(
                      pte_mkdirty(pfn_pte(page_to_pfn(dev->original), vmf.vma->vm_page_prot)))));
  pte_unmap_unlock(lp);
  return 0;
}

TEST(DevicePrivate, CpuFaultCallsMigrateToRam) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 0x37).ok());
  TestDevice dev;
  dev.pgmap.driver_data = &dev;
  dev.original = page_at(*mm, a);
  // A stand-in device page carrying the pagemap (a real one lives in ZONE_DEVICE).
  Page* device_page = alloc_pages(*m.ms, GFP_KERNEL, Order(0));
  set_page_pgmap(device_page, &dev.pgmap);
  pmd_t* pmd = pmd_offset(*mm, a);
  LockedPte lp = pte_offset_map_lock(*mm, pmd, a);
  const pte_t orig = ptep_get(lp.pte);
  set_pte(lp.pte, swp_entry_to_pte(make_writable_device_private_entry(page_to_pfn(device_page))));
  pte_unmap_unlock(lp);
  EXPECT_EQ(read_byte(*mm, a), 0x37);
  EXPECT_EQ(dev.calls, 1);
  EXPECT_EQ(folio_ref_count(page_folio(device_page)), 1);  // the fault's reference was dropped
  EXPECT_EQ(pte_at(*mm, a), orig);
  set_page_pgmap(device_page, nullptr);
  init_list_head(&device_page->lru);
  free_page(device_page);
  EXPECT_VM_VALID(m.vm);
}

// What make_device_exclusive_range does to one mapped small anon page
// (6.12): the PTE becomes a device-exclusive entry that keeps the mapping's
// reference but gives up its mapcount.
void make_exclusive_by_hand(Mm& mm, VirtAddr a) {
  Page* page = page_at(mm, a);
  Folio* folio = page_folio(page);
  folio_lock(folio);
  LockedPte lp = pte_offset_map_lock(mm, pmd_offset(mm, a), a);
  const pte_t old = ptep_get(lp.pte);
  const Pfn pfn = page_to_pfn(page);
  set_pte(lp.pte, swp_entry_to_pte(pte_write(old) ? make_writable_device_exclusive_entry(pfn)
                                                  : make_readable_device_exclusive_entry(pfn)));
  folio_remove_rmap_ptes(folio, page, 1, mm.vma_lookup(a));
  pte_unmap_unlock(lp);
  folio_unlock(folio);
  mm.tlb().flush();
}

TEST(DeviceExclusive, CpuFaultRestoresTheMappingAndItsMapcount) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 0x61).ok());
  lru_add_drain_all(*m.ms);
  Page* page = page_at(*mm, a);
  make_exclusive_by_hand(*mm, a);
  EXPECT_EQ(folio_mapcount(page_folio(page)), 0);
  EXPECT_EQ(folio_ref_count(page_folio(page)), 1);
  EXPECT_VM_VALID(m.vm);  // rmap still finds the entry
  EXPECT_EQ(read_byte(*mm, a), 0x61);
  const pte_t pte = pte_at(*mm, a);
  EXPECT_TRUE(pte_present(pte) && pte_write(pte) && pte_dirty(pte));
  EXPECT_EQ(pte_pfn(pte), page_to_pfn(page));
  EXPECT_EQ(folio_mapcount(page_folio(page)), 1);
  EXPECT_TRUE(PageAnonExclusive(page));
  EXPECT_VM_VALID(m.vm);
}

// exclusive_cow of hmm-tests: fork restores the entry in the parent and
// then shares the page as usual; each process COWs its own copy.
TEST(DeviceExclusive, ForkRestoresTheEntryAndCopiesAsPresent) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint32_t>(*mm, a, 100).ok());
  make_exclusive_by_hand(*mm, a);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE(pte_present(pte_at(*mm, a)));
  EXPECT_EQ(page_at(*mm, a), page_at(**child, a));
  EXPECT_EQ(folio_mapcount(page_folio(page_at(*mm, a))), 2);
  ASSERT_TRUE(write_user<uint32_t>(*mm, a, 101).ok());
  ASSERT_TRUE(write_user<uint32_t>(**child, a, 102).ok());
  EXPECT_EQ(*read_user<uint32_t>(*mm, a), 101u);
  EXPECT_EQ(*read_user<uint32_t>(**child, a), 102u);
  EXPECT_VM_VALID(m.vm);
}

// A fork that meets an exclusive entry whose folio is locked fails.
TEST(DeviceExclusive, ForkFailsWhileTheFolioIsLocked) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  Folio* folio = page_folio(page_at(*mm, a));
  make_exclusive_by_hand(*mm, a);
  folio_lock(folio);
  EXPECT_EQ(dup_mm(*mm).error(), Errno(ENOMEM));
  folio_unlock(folio);
  EXPECT_VM_VALID(m.vm);
}

// exclusive_mprotect: mprotect(PROT_READ) downgrades the entry, so the
// device loses write access; munmap drops the entry's reference.
TEST(DeviceExclusive, MprotectDowngradesAndMunmapDropsTheReference) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());
  lru_add_drain_all(*m.ms);
  Folio* folio = page_folio(page_at(*mm, a));
  folio_get(folio);  // watch it
  make_exclusive_by_hand(*mm, a);
  ASSERT_TRUE(do_mprotect(*mm, a, PAGE_SIZE, PROT_READ).ok());
  const swp_entry_t e = pte_to_swp_entry(pte_at(*mm, a));
  EXPECT_TRUE(is_device_exclusive_entry(e));
  EXPECT_FALSE(is_writable_device_exclusive_entry(e));
  EXPECT_EQ(folio_ref_count(folio), 2);
  ASSERT_TRUE(vm_munmap(*mm, a, PAGE_SIZE).ok());
  EXPECT_EQ(folio_ref_count(folio), 1);
  EXPECT_EQ(mm->get_mm_counter(MM_ANONPAGES), 0);
  folio_put(folio);
  EXPECT_VM_VALID(m.vm);
}

// A hwpoison entry (left by memory_failure) makes every access fault with
// VM_FAULT_HWPOISON: SIGBUS for the CPU, EFAULT here.
TEST(HwPoison, AccessToAPoisonedEntryFails) {
  VmMachine m;
  MmHandle mm = Mm::create(m.vm);
  const VirtAddr a = map_anon(*mm, 2 * PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 1).ok());  // page tables for both pages
  Page* victim = alloc_pages(*m.ms, GFP_KERNEL, Order(0));
  ASSERT_NE(victim, nullptr);
  const VirtAddr b = a + PAGE_SIZE;
  ASSERT_EQ(b.value() / PMD_SIZE, a.value() / PMD_SIZE);
  LockedPte lp = pte_offset_map_lock(*mm, pmd_offset(*mm, b), b);
  set_pte(lp.pte, swp_entry_to_pte(make_hwpoison_entry(page_to_pfn(victim))));
  pte_unmap_unlock(lp);
  EXPECT_EQ(read_user<uint8_t>(*mm, b).error(), Errno(EFAULT));
  {
    ReadGuard g(mm->mmap_lock);
    EXPECT_TRUE(any(handle_mm_fault(mm->vma_lookup(b), b, FAULT_FLAG_NONE) & VM_FAULT_HWPOISON));
  }
  EXPECT_EQ(read_byte(*mm, a), 1);  // the neighbour is fine
  EXPECT_VM_VALID(m.vm);
  ASSERT_TRUE(vm_munmap(*mm, a, 2 * PAGE_SIZE).ok());  // zap clears the entry
  EXPECT_EQ(folio_ref_count(page_folio(victim)), 1);
  free_page(victim);
  EXPECT_VM_VALID(m.vm);
}

TEST(TlbModel, FlushWaitsForAccessesInFlight) {
  TlbModel tlb;
  std::atomic<bool> flushed{false};
  std::thread flusher;
  {
    TlbModel::Access access(tlb);
    flusher = std::thread([&] {
      tlb.flush();
      flushed = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_FALSE(flushed.load());  // still waiting for us
  }
  flusher.join();
  EXPECT_TRUE(flushed.load());
  {
    TlbModel::Access later(tlb);  // accesses after a flush do not block the next one
  }
  tlb.flush();
  EXPECT_EQ(tlb.nr_flushes(), 2u);
}

// fork() with MMF_HAS_PINNED: a page that may be pinned is copied for the
// child at once instead of shared (KERNEL-SPEC 3.6).
TEST(ForkPinned, MaybePinnedExclusivePagesAreCopiedForTheChild) {
  VmMachine m;
  MmHandle parent = Mm::create(m.vm);
  const VirtAddr a = map_anon(*parent, 2 * PAGE_SIZE);
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 1).ok());
  ASSERT_TRUE(write_user<uint8_t>(*parent, a + PAGE_SIZE, 2).ok());
  lru_add_drain_all(*m.ms);
  Page* pinned = page_at(*parent, a);
  Page* unpinned = page_at(*parent, a + PAGE_SIZE);
  // What FOLL_PIN does to a small folio, by hand until gup/ exists.
  folio_ref_add(page_folio(pinned), GUP_PIN_COUNTING_BIAS);
  parent->set_flag(MMF_HAS_PINNED);
  auto child = dup_mm(*parent);
  ASSERT_TRUE(child.ok());
  EXPECT_NE(page_at(**child, a), pinned);                // copied
  EXPECT_TRUE(PageAnonExclusive(pinned));                // and the parent keeps it exclusive
  EXPECT_TRUE(pte_write(pte_at(*parent, a)));            // still writable in the parent
  EXPECT_EQ(page_at(**child, a + PAGE_SIZE), unpinned);  // shared as usual
  EXPECT_EQ(read_byte(**child, a), 1);
  // Writes through the pin's page stay visible to the parent's mapping.
  ASSERT_TRUE(write_user<uint8_t>(*parent, a, 9).ok());
  EXPECT_EQ(page_at(*parent, a), pinned);
  EXPECT_EQ(read_byte(**child, a), 1);
  folio_ref_add(page_folio(pinned), -GUP_PIN_COUNTING_BIAS);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
