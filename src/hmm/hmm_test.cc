// hmm_range_fault (KERNEL-SPEC 9.1-9.2): the per-entry rules, the request
// flags, orders of huge mappings, errors, restarts, and that no reference is
// taken; and a mirror racing with munmap/mprotect/migration.
#include "pinmm/hmm/hmm.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "pinmm/hmm/memremap.h"
#include "pinmm/migrate/move_pages.h"
#include "pinmm/vm/device_map.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

// A minimal mirror in lib/test_hmm.c's style: an interval subscription, a
// driver lock, and a fault loop retrying -EBUSY within the default timeout.
class Mirror : public MmuIntervalNotifierOps {
 public:
  Mirror(Mm& mm, VirtAddr start, uint64_t len) : mm_(mm) {
    EXPECT_EQ(mmu_interval_notifier_insert(&sub_, mm, start.value(), len, this), 0);
  }
  ~Mirror() override { mmu_interval_notifier_remove(&sub_); }

  bool invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange& range,
                  uint64_t cur_seq) override {
    std::lock_guard<std::mutex> g(lock);
    mmu_interval_set_seq(sub, cur_seq);
    // Tear down what the device holds for the range.
    for (auto& [addr, pfn] : device_ptes) {
      if (addr >= range.start.value() && addr < range.end.value()) pfn = 0;
    }
    invalidations++;
    return true;
  }

  // One hmm_range_fault call with a fresh sequence, under the mmap lock.
  int fault_once(HmmRange& r) {
    r.notifier = &sub_;
    r.notifier_seq = mmu_interval_read_begin(&sub_);
    ReadGuard g(mm_.mmap_lock);
    return hmm_range_fault(&r);
  }
  // The driver's loop: retry -EBUSY until read_retry holds under the lock.
  // A driver gives up after HMM_RANGE_DEFAULT_TIMEOUT (lib/test_hmm.c, and
  // dmirror here); this test mirror only stops at the hang bound, so a
  // loaded machine that needs more than a second cannot fail a test.
  int fault(HmmRange& r) {
    const auto deadline = std::chrono::steady_clock::now() + testing::kProgressBound;
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline) return -EBUSY;
      const int rc = fault_once(r);
      if (rc == -EBUSY) continue;
      if (rc != 0) return rc;
      std::lock_guard<std::mutex> g(lock);
      if (mmu_interval_read_retry(&sub_, r.notifier_seq)) continue;
      const uint64_t n = (r.end - r.start) >> PAGE_SHIFT;
      for (uint64_t i = 0; i < n; ++i) {
        if (r.hmm_pfns[i] & HMM_PFN_VALID)
          device_ptes[(r.start + i * PAGE_SIZE).value()] = r.hmm_pfns[i];
      }
      return 0;
    }
  }

  std::mutex lock;
  std::map<uint64_t, uint64_t> device_ptes;  // the device's page table
  uint64_t invalidations = 0;

 private:
  Mm& mm_;
  MmuIntervalNotifier sub_;
};

class Hmm : public ::testing::Test {
 protected:
  explicit Hmm(MachineConfig c = config()) : m(std::move(c)), mm(Mm::create(m.vm)) {
    current().set_mm(mm.get());
  }
  ~Hmm() override { current().set_mm(nullptr); }
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(64));
    c.thp = ThpMode::kAlways;
    c.hugepages.push_back({Bytes::MiB(2), 2, std::nullopt});
    return c;
  }
  HmmRange range(VirtAddr a, uint64_t pages, std::vector<uint64_t>& pfns, uint64_t defaults = 0,
                 uint64_t mask = 0) {
    pfns.assign(pages, 0);
    HmmRange r;
    r.start = a;
    r.end = a + pages * PAGE_SIZE;
    r.hmm_pfns = pfns.data();
    r.default_flags = defaults;
    r.pfn_flags_mask = mask;
    return r;
  }
  uint64_t pfn_of(VirtAddr a) { return m.ms->page_to_pfn(testing::page_at(*mm, a)).value(); }

  testing::VmMachine m;
  MmHandle mm;
};

// A pure snapshot (no fault flags): present entries report their PFN and
// write permission, holes are 0, addresses outside any VMA are errors.
TEST_F(Hmm, SnapshotReportsWhatThePageTablesHold) {
  const VirtAddr a = testing::map_pattern(*mm, 4, 1);  // pages 0..3 written
  Mirror mirror(*mm, VirtAddr(a.value() - 2 * PAGE_SIZE), 8 * PAGE_SIZE);
  ASSERT_TRUE(vm_munmap(*mm, a + 3 * PAGE_SIZE, PAGE_SIZE).ok());
  ASSERT_TRUE(do_madvise(*mm, a + 2 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED).ok());
  ASSERT_TRUE(do_mprotect(*mm, a + PAGE_SIZE, PAGE_SIZE, PROT_READ).ok());
  std::vector<uint64_t> pfns;
  HmmRange r = range(a, 4, pfns);
  const auto refs_before = testing::page_at(*mm, a)->refcount();
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(pfns[0], pfn_of(a) | HMM_PFN_VALID | HMM_PFN_WRITE);
  EXPECT_EQ(pfns[1], pfn_of(a + PAGE_SIZE) | HMM_PFN_VALID) << "read-only after mprotect";
  EXPECT_EQ(pfns[2], 0u) << "zapped: not present, faultable";
  EXPECT_EQ(pfns[3], HMM_PFN_ERROR) << "no VMA";
  EXPECT_EQ(testing::page_at(*mm, a)->refcount(), refs_before) << "no reference is taken";
  EXPECT_EQ(hmm_pfn_to_pfn(pfns[0]).value(), pfn_of(a));
  EXPECT_EQ(hmm_pfn_to_map_order(pfns[0]), 0u);
}

// default_flags = REQ_FAULT: holes are faulted for read (anonymous memory
// gets the zero page, read-only); REQ_WRITE write-faults; a read-only VMA
// refuses the write with -EPERM; no VMA is -EFAULT.
TEST_F(Hmm, FaultFlagsFaultWhatIsAskedFor) {
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE);
  Mirror mirror(*mm, a, 8 * PAGE_SIZE);
  std::vector<uint64_t> pfns;
  HmmRange r = range(a, 2, pfns, HMM_PFN_REQ_FAULT);
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(hmm_pfn_to_pfn(pfns[0]), m.ms->zero_pfn());
  EXPECT_EQ(pfns[0] & ~HMM_PFN_FLAGS, m.ms->zero_pfn().value());
  EXPECT_EQ(pfns[0] & HMM_PFN_FLAGS, HMM_PFN_VALID) << "the zero page is read-only";

  r = range(a, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_NE(hmm_pfn_to_pfn(pfns[0]), m.ms->zero_pfn()) << "the write fault COWed the zero page";
  EXPECT_EQ(pfns[0], pfn_of(a) | HMM_PFN_VALID | HMM_PFN_WRITE);

  // Per-page requests: default REQ_FAULT, mask REQ_WRITE, page 3 asks to write.
  r = range(a + 2 * PAGE_SIZE, 2, pfns, HMM_PFN_REQ_FAULT, HMM_PFN_REQ_WRITE);
  pfns[1] = HMM_PFN_REQ_WRITE;
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(pfns[0] & HMM_PFN_FLAGS, HMM_PFN_VALID);
  EXPECT_EQ(pfns[1] & HMM_PFN_FLAGS, HMM_PFN_VALID | HMM_PFN_WRITE);

  ASSERT_TRUE(do_mprotect(*mm, a, 4 * PAGE_SIZE, PROT_READ).ok());
  r = range(a, 1, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
  EXPECT_EQ(mirror.fault(r), -EPERM);
  r = range(a + 4 * PAGE_SIZE, 1, pfns, HMM_PFN_REQ_FAULT);
  EXPECT_EQ(mirror.fault(r), -EFAULT) << "no VMA there";
}

// VM_IO/VM_PFNMAP and unreadable VMAs: errors without a fault request,
// -EFAULT with one.
TEST_F(Hmm, PfnMapsAndUnreadableVmasAreErrors) {
  const VirtAddr a = testing::map_anon(*mm, 2 * PAGE_SIZE, PROT_NONE);
  Mirror mirror(*mm, a, 2 * PAGE_SIZE);
  std::vector<uint64_t> pfns;
  HmmRange r = range(a, 2, pfns);
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(pfns[0], HMM_PFN_ERROR);
  EXPECT_EQ(pfns[1], HMM_PFN_ERROR);
  r = range(a, 2, pfns, HMM_PFN_REQ_FAULT);
  EXPECT_EQ(mirror.fault(r), -EFAULT);

  auto dev = File::create_device(m.vm, "fb0", [&](Vma& vma) -> Result<void> {
    return remap_pfn_range(vma, vma.vm_start, Pfn(0x100), PAGE_SIZE);
  });
  auto d = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dev);
  ASSERT_TRUE(d.ok());
  Mirror dm(*mm, *d, PAGE_SIZE);
  r = range(*d, 1, pfns);
  ASSERT_EQ(dm.fault(r), 0);
  EXPECT_EQ(pfns[0], HMM_PFN_ERROR);
  r = range(*d, 1, pfns, HMM_PFN_REQ_FAULT);
  EXPECT_EQ(dm.fault(r), -EFAULT);
}

// A PMD-mapped THP and 2 MiB hugetlb pages: every page carries the PMD
// order and consecutive PFNs.
TEST_F(Hmm, HugeMappingsReportTheirOrder) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr thp((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint64_t>(*mm, thp, 1).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, thp)));
  Mirror mirror(*mm, thp, HPAGE_PMD_SIZE);
  std::vector<uint64_t> pfns;
  HmmRange r = range(thp + 7 * PAGE_SIZE, 3, pfns, HMM_PFN_REQ_FAULT);
  ASSERT_EQ(mirror.fault(r), 0);
  const uint64_t head = pmd_pfn(testing::pmd_at(*mm, thp)).value();
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(hmm_pfn_to_pfn(pfns[i]).value(), head + 7 + i);
    EXPECT_EQ(hmm_pfn_to_map_order(pfns[i]), 9u);
    EXPECT_TRUE(pfns[i] & HMM_PFN_WRITE);
  }

  auto htlb = File::create(m.vm, FsType::kHugetlbfs, "huge", HPAGE_PMD_SIZE);
  auto h = vm_mmap(*mm, VirtAddr(0), HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, htlb);
  ASSERT_TRUE(h.ok());
  Mirror hm(*mm, *h, HPAGE_PMD_SIZE);
  r = range(*h + 5 * PAGE_SIZE, 2, pfns);
  ASSERT_EQ(hm.fault(r), 0);
  // Not faulted yet, but its PMD table exists (the THP above shares it):
  // hmm_vma_walk_hugetlb_entry reports the empty entry with the hstate's
  // order and, as its PFN, the page's offset in the huge page (pte_pfn of
  // an empty entry is 0), and no VALID.
  ASSERT_NE(pmd_offset(*mm, *h), nullptr);
  EXPECT_FALSE(pfns[0] & HMM_PFN_VALID) << "not faulted yet";
  EXPECT_EQ(hmm_pfn_to_map_order(pfns[0]), 9u);
  EXPECT_EQ(hmm_pfn_to_pfn(pfns[0]).value(), 5u);
  r = range(*h + 5 * PAGE_SIZE, 2, pfns, HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE);
  ASSERT_EQ(hm.fault(r), 0);
  EXPECT_EQ(hmm_pfn_to_map_order(pfns[0]), 9u);
  EXPECT_EQ(hmm_pfn_to_pfn(pfns[1]).value(), hmm_pfn_to_pfn(pfns[0]).value() + 1);
  EXPECT_TRUE(folio_test_hugetlb(page_folio(m.ms->pfn_to_page(hmm_pfn_to_pfn(pfns[0])))));
}

// Device-private entries: the caller's own device's pages are reported
// (VALID, WRITE as the entry says) without a fault; another owner's read
// as 0 without a fault request.
TEST(HmmDevicePrivate, OwnPagesAreReportedOthersAreNot) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(32));
  c.device_space = Bytes::MiB(2);
  testing::VmMachine m(c);
  MmHandle mm = Mm::create(m.vm);
  static const int kMe = 0, kOther = 0;
  static const DevPagemapOps ops{[](Page*) {}, [](VmFaultInfo&) -> uint32_t { return 0; }};
  DevPagemap pgmap;
  pgmap.type = MEMORY_DEVICE_PRIVATE;
  pgmap.ops = &ops;
  pgmap.owner = &kMe;
  const Pfn dev = *memremap_pages(*m.ms, &pgmap, 0, PageCount(4));
  const VirtAddr a = testing::map_pattern(*mm, 2, 6);
  Mirror mirror(*mm, a, 2 * PAGE_SIZE);
  // Put device-private entries where the CPU pages were (as migrate_vma
  // does), read them, and put the CPU pages back.
  std::vector<pte_t> saved;
  {
    ReadGuard g(mm->mmap_lock);
    for (uint64_t i = 0; i < 2; ++i) {
      const VirtAddr at = a + i * PAGE_SIZE;
      LockedPte lp = pte_offset_map_lock(*mm, pmd_offset(*mm, at), at);
      saved.push_back(ptep_get(lp.pte));
      const swp_entry_t e = i == 0 ? make_writable_device_private_entry(dev)
                                   : make_readable_device_private_entry(dev + PageCount(1));
      set_pte(lp.pte, swp_entry_to_pte(e));
      pte_unmap_unlock(lp);
    }
  }
  std::vector<uint64_t> pfns(2, 0);
  HmmRange r;
  r.start = a;
  r.end = a + 2 * PAGE_SIZE;
  r.hmm_pfns = pfns.data();
  r.default_flags = HMM_PFN_REQ_FAULT;
  r.dev_private_owner = &kMe;
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(pfns[0], dev.value() | HMM_PFN_VALID | HMM_PFN_WRITE);
  EXPECT_EQ(pfns[1], (dev + PageCount(1)).value() | HMM_PFN_VALID);
  r.default_flags = 0;
  r.dev_private_owner = &kOther;
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(pfns[0], 0u) << "another owner's device page: not present for us";
  {
    ReadGuard g(mm->mmap_lock);
    for (uint64_t i = 0; i < 2; ++i) {
      const VirtAddr at = a + i * PAGE_SIZE;
      LockedPte lp = pte_offset_map_lock(*mm, pmd_offset(*mm, at), at);
      set_pte(lp.pte, saved[i]);
      pte_unmap_unlock(lp);
    }
  }
  testing::expect_pattern(*mm, a, 2, 6);
  memunmap_pages(*m.ms, &pgmap);
  EXPECT_VM_VALID(m.vm);
}

// A changed sequence is -EBUSY at once; a poisoned entry is -EFAULT when a
// fault is asked for and 0 otherwise; bad arguments are -EINVAL.
TEST_F(Hmm, BusyPoisonAndArgumentErrors) {
  const VirtAddr a = testing::map_pattern(*mm, 2, 3);
  Mirror mirror(*mm, a, 2 * PAGE_SIZE);
  std::vector<uint64_t> pfns;
  HmmRange r = range(a, 2, pfns);
  MmuIntervalNotifier* sub = nullptr;
  {
    // Take a sequence, then invalidate: the call sees the change first.
    ASSERT_EQ(mirror.fault_once(r), 0);
    sub = r.notifier;
    r.notifier_seq = mmu_interval_read_begin(sub);
    ASSERT_TRUE(do_madvise(*mm, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED).ok());
    ReadGuard g(mm->mmap_lock);
    EXPECT_EQ(hmm_range_fault(&r), -EBUSY);
  }
  // Poison page 0's entry for a moment (what memory_failure leaves).
  auto swap_entry = [&](pte_t v) {
    ReadGuard g(mm->mmap_lock);
    LockedPte lp = pte_offset_map_lock(*mm, pmd_offset(*mm, a), a);
    const pte_t old = ptep_get(lp.pte);
    set_pte(lp.pte, v);
    pte_unmap_unlock(lp);
    return old;
  };
  const pte_t orig = testing::pte_at(*mm, a);
  swap_entry(swp_entry_to_pte(make_hwpoison_entry(pte_pfn(orig))));
  r = range(a, 1, pfns);
  ASSERT_EQ(mirror.fault(r), 0);
  EXPECT_EQ(pfns[0], 0u);
  r = range(a, 1, pfns, HMM_PFN_REQ_FAULT);
  EXPECT_EQ(mirror.fault(r), -EFAULT);
  swap_entry(orig);
  EXPECT_VM_VALID(m.vm);

  HmmRange bad = range(a, 1, pfns);
  bad.end = bad.start;
  bad.notifier = sub;
  EXPECT_EQ(hmm_range_fault(&bad), -EINVAL);
  bad.notifier = nullptr;
  EXPECT_EQ(hmm_range_fault(&bad), -EINVAL);
}

// A migration entry with a fault request: the walk waits for the migration
// and restarts (-EBUSY inside), ending with the new page; without a
// request the entry reads as 0. The migration holds its entries (at
// migrate.after_unmap) until the device's fault is provably waiting.
TEST(HmmMigration, MigrationEntriesAreWaitedFor) {
  testing::VmMachine m(testing::two_node_machine());
  MmHandle mm = Mm::create(m.vm);
  current().set_mm(mm.get());
  const VirtAddr a = testing::map_pattern(*mm, 1, 4);
  Mirror mirror(*mm, a, PAGE_SIZE);
  testing::FolioList list;
  ASSERT_TRUE(testing::isolate_at(*mm, a, list));
  testing::Progress entries_installed;
  std::atomic<bool> waiter_seen{false};
  m.ms->injector().on_hit(inject_point_migrate::kAfterUnmap, [&] {
    entries_installed.advance();
    waiter_seen = testing::wait_until([&] { return m.vm.migration_waits() > 0; });
  });
  std::vector<uint64_t> pfns(1);
  uint64_t snapshot = ~uint64_t{0};
  int rc = -1;
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token) {
    current().set_mm(mm.get());
    ASSERT_TRUE(entries_installed.wait_for(1));
    EXPECT_TRUE(is_swap_pte(testing::pte_at(*mm, a)));
    HmmRange snap;
    snap.start = a;
    snap.end = a + PAGE_SIZE;
    snap.hmm_pfns = pfns.data();
    EXPECT_EQ(mirror.fault(snap), 0);
    snapshot = pfns[0];
    HmmRange r = snap;
    r.default_flags = HMM_PFN_REQ_FAULT;
    rc = mirror.fault(r);
    current().set_mm(nullptr);
  });
  EXPECT_EQ(testing::migrate_to(*m.ms, list, 1), 0);
  threads.stop_and_join();
  m.ms->injector().clear_all();
  EXPECT_TRUE(waiter_seen.load()) << "the fault never waited on the migration entry";
  EXPECT_EQ(snapshot, 0u) << "a snapshot never waits: the entry reads as 0";
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(pfns[0] & HMM_PFN_VALID);
  EXPECT_EQ(hmm_pfn_to_pfn(pfns[0]), m.ms->page_to_pfn(testing::page_at(*mm, a)));
  EXPECT_EQ(testing::nid_at(*mm, a), 1);
  current().set_mm(nullptr);
}

// The mirror protocol under concurrency: a device thread mirrors the range
// (fault loop + read_retry under its lock) and "DMA-writes" through every
// PFN its page table holds, under the lock; the CPU side migrates and
// mprotects it. The invalidate callback must have cleared every device PTE
// for pages the CPU no longer maps there, so a device write never lands in
// a frame the process does not map at that address: afterwards every page
// the device wrote holds what the device last wrote for that address,
// checked through the CPU's page tables. Each CPU round waits for a device
// pass, and the rounds go on until the device has written.
TEST(HmmConcurrent, ConcurrentMirrorNeverWritesAnUnmappedPage) {
  testing::VmMachine m(testing::two_node_machine());
  MmHandle mm = Mm::create(m.vm);
  current().set_mm(mm.get());
  constexpr uint64_t kPages = 16;
  const VirtAddr a = testing::map_pattern(*mm, kPages, 5);
  Mirror mirror(*mm, a, kPages * PAGE_SIZE);
  std::atomic<uint64_t> writes{0};
  testing::Progress device_passes;
  std::vector<uint64_t> last_stamp(kPages, 0);  // guarded by mirror.lock
  testing::ScopedThreads threads;
  threads.spawn([&](std::stop_token stop) {
    current().set_mm(mm.get());
    std::vector<uint64_t> pfns(kPages);
    for (uint64_t round = 1; !stop.stop_requested(); ++round, device_passes.advance()) {
      // Like a real device, keep the mirror until invalidations clear it;
      // fault again only when some entry is gone.
      bool complete = true;
      {
        std::lock_guard<std::mutex> g(mirror.lock);
        for (uint64_t i = 0; i < kPages; ++i)
          complete = complete && (mirror.device_ptes[(a + i * PAGE_SIZE).value()] & HMM_PFN_WRITE);
      }
      HmmRange r;
      r.start = a;
      r.end = a + kPages * PAGE_SIZE;
      r.hmm_pfns = pfns.data();
      r.default_flags = HMM_PFN_REQ_FAULT | HMM_PFN_REQ_WRITE;
      if (!complete && mirror.fault(r) != 0) continue;  // a busy spell: try again
      // DMA through the device's page table, under the driver lock.
      std::lock_guard<std::mutex> g(mirror.lock);
      for (uint64_t i = 0; i < kPages; ++i) {
        const uint64_t e = mirror.device_ptes[(a + i * PAGE_SIZE).value()];
        if (!(e & HMM_PFN_WRITE)) continue;
        const uint64_t stamp = (round << 8) | i;
        std::memcpy(m.ms->frames().frame(hmm_pfn_to_pfn(e)) + 8, &stamp, sizeof(stamp));
        last_stamp[i] = stamp;
        writes++;
      }
    }
    current().set_mm(nullptr);
  });
  std::vector<VirtAddr> addrs;
  for (uint64_t i = 0; i < kPages; ++i)
    addrs.push_back(a + i * PAGE_SIZE);
  std::vector<int> status(kPages);
  const uint64_t rounds = testing::repeat_until(
      60, [&] { return writes.load() > 0; },
      [&](uint64_t round) {
        ASSERT_TRUE(device_passes.wait_for(device_passes.get() + 1)) << "the device stalled";
        const std::vector<int> nodes(kPages, static_cast<int>(round % 2));
        ASSERT_TRUE(move_pages(*mm, addrs, nodes, status, MPOL_MF_MOVE).ok());
        ASSERT_TRUE(do_mprotect(*mm, a, kPages * PAGE_SIZE, PROT_READ).ok());
        ASSERT_TRUE(do_mprotect(*mm, a, kPages * PAGE_SIZE, PROT_READ | PROT_WRITE).ok());
      });
  threads.stop_and_join();
  ASSERT_NE(rounds, 0u) << "the device never wrote before the hang bound";
  {
    std::lock_guard<std::mutex> g(mirror.lock);
    EXPECT_GT(mirror.invalidations, 0u);
  }
  RecordProperty("device_writes", static_cast<int>(writes.load()));
  // The device's last write to each page reached the page the CPU maps.
  for (uint64_t i = 0; i < kPages; ++i) {
    if (last_stamp[i] == 0) continue;
    auto v = read_user<uint64_t>(*mm, a + i * PAGE_SIZE + 8);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, last_stamp[i]) << "a device write was lost, page " << i;
  }
  testing::expect_pattern(*mm, a, kPages, 5);
  EXPECT_VM_VALID(m.vm);
  current().set_mm(nullptr);
}

}  // namespace
}  // namespace pinmm
