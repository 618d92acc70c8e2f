// Memory hot(un)plug (KERNEL-SPEC 7): block states and their errors,
// offline_pages with movable, pinned, long-term pinned, unmovable and
// hugetlb memory, onlining and zone choice, hot-add.
#include "pinmm/hotplug/memory_hotplug.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/memory_map.h"
#include "pinmm/phys/page_isolation.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/concurrency.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

using std::chrono::milliseconds;

// 64 MiB in 2 MiB blocks: ZONE_NORMAL [0, 48 MiB), ZONE_MOVABLE [48, 64 MiB)
// (blocks 24..31), with room to hot-add 8 MiB. THP always.
MachineConfig hotplug_machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64), Bytes::MiB(16));
  c.thp = ThpMode::kAlways;
  c.hotplug.space = Bytes::MiB(8);
  return c;
}

class Hotplug : public ::testing::Test {
 protected:
  explicit Hotplug(MachineConfig c = hotplug_machine())
      : m(std::move(c)), hp(*m.ms), mm(Mm::create(m.vm)) {
    current().set_mm(mm.get());
  }
  ~Hotplug() override {
    current().set_mm(nullptr);
    current().clear_signals();
  }

  static constexpr uint64_t kFirstMovableBlock = 24;
  uint64_t block_of(const Page* page) const {
    return m.ms->page_to_pfn(page).value() / m.ms->block_pages().value();
  }
  VirtAddr populate(uint64_t pages, uint64_t seed) {
    return testing::map_pattern(*mm, pages, seed);
  }
  void expect_pattern(VirtAddr a, uint64_t pages, uint64_t seed) {
    testing::expect_pattern(*mm, a, pages, seed);
  }
  void expect_all_valid() {
    EXPECT_ALL_LAYERS_VALID(m.vm);
    const auto r = hp.validate();
    EXPECT_TRUE(r.ok()) << r.to_string();
  }

  testing::VmMachine m;
  MemoryHotplug hp;
  MmHandle mm;
};

// KERNEL-SPEC 7.1: the strings, and writing the state a block already has.
// Linux 6.12 (tools/oracle/hotplug_pins.c): "online" and "online_movable" to
// an online block, "offline" to an offline one and "bogus" are all EINVAL.
TEST_F(Hotplug, StateFileAcceptsTheKernelStringsAndRefusesTheCurrentState) {
  const uint64_t b = kFirstMovableBlock + 7;
  EXPECT_EQ(hp.state_show(b), "online");
  EXPECT_EQ(hp.state_store(b, "online"), -EINVAL);
  EXPECT_EQ(hp.state_store(b, "online_movable"), -EINVAL);
  EXPECT_EQ(hp.state_store(b, "bogus"), -EINVAL);
  EXPECT_EQ(hp.state_store(b, "Offline"), -EINVAL);  // sysfs_streq is case-sensitive
  EXPECT_EQ(hp.state_store(b, "offline\n"), 0);      // a trailing newline is fine
  EXPECT_EQ(hp.state_show(b), "offline");
  EXPECT_EQ(hp.state_store(b, "offline"), -EINVAL);
  EXPECT_EQ(hp.state_store(b, "online"), 0);
  EXPECT_EQ(hp.state_show(b), "online");
  // Blocks of the hot-add space have no state file until memory is added.
  EXPECT_EQ(hp.state_store(33, "online"), -ENOENT);
  EXPECT_EQ(hp.state_show(33), "");
  expect_all_valid();
}

// Offlining a free movable block takes its pages out of the zone; onlining
// it again gives them back, with the block's pageblocks movable.
TEST_F(Hotplug, FreeBlockLeavesTheZoneAndComesBack) {
  Zone& z = m.ms->zone(0, ZONE_MOVABLE);
  const uint64_t b = kFirstMovableBlock + 7;  // the top block: the zone shrinks
  const uint64_t nr = m.ms->block_pages().value();
  const Pfn start = m.ms->memory_blocks()[b].start_pfn;
  const uint64_t present = z.present_pages(), managed = z.managed_pages(),
                 spanned = z.spanned_pages();
  const int64_t free = z.stats().get(NR_FREE_PAGES);
  ASSERT_EQ(hp.state_store(b, "offline"), 0);
  EXPECT_EQ(z.present_pages(), present - nr);
  EXPECT_EQ(z.managed_pages(), managed - nr);
  EXPECT_EQ(z.spanned_pages(), spanned - nr) << "offlining the top block shrinks the span";
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), free - static_cast<int64_t>(nr));
  EXPECT_EQ(m.ms->pfn_to_online_page(start), nullptr);
  EXPECT_TRUE(m.ms->pfn_valid(start)) << "offline memory is still present";
  const PhysMemoryMap map = snapshot_memory_map(*m.ms);
  EXPECT_EQ(map.count(PageblockState::kOffline), 1u);
  EXPECT_EQ(map.blocks.back().state, PageblockState::kOffline);
  expect_all_valid();

  // The shrunk ZONE_MOVABLE no longer touches the block, so plain "online"
  // would pick the kernel zone (contig-zones: neither zone intersects). Linux
  // 6.12 says the same of a DIMM's first block once offline: valid_zones
  // "Normal Movable" (tools/oracle/hotplug_pins.c).
  EXPECT_EQ(hp.valid_zones(b), "Normal Movable");
  ASSERT_EQ(hp.state_store(b, "online_movable"), 0);
  EXPECT_EQ(m.ms->memory_blocks()[b].zone, ZONE_MOVABLE);
  EXPECT_EQ(z.present_pages(), present);
  EXPECT_EQ(z.managed_pages(), managed);
  EXPECT_EQ(z.spanned_pages(), spanned);
  EXPECT_EQ(z.stats().get(NR_FREE_PAGES), free);
  EXPECT_EQ(m.ms->pageblock_flags().get(start), MIGRATE_MOVABLE);
  expect_all_valid();
}

// Offlining a block in the middle leaves the span alone (shrink_zone_span
// moves only the ends) and offline_pages rejects a range with holes.
TEST_F(Hotplug, MiddleBlockLeavesAHoleInTheSpan) {
  Zone& z = m.ms->zone(0, ZONE_MOVABLE);
  const uint64_t spanned = z.spanned_pages();
  ASSERT_EQ(hp.state_store(kFirstMovableBlock + 3, "offline"), 0);
  EXPECT_EQ(z.spanned_pages(), spanned);
  // valid_zones of an offline block: the default zone first, then the other.
  EXPECT_EQ(hp.valid_zones(kFirstMovableBlock + 3), "Movable Normal");
  EXPECT_EQ(hp.valid_zones(kFirstMovableBlock + 4), "Movable");
  expect_all_valid();
  ASSERT_EQ(hp.state_store(kFirstMovableBlock + 3, "online_kernel"), 0);
  EXPECT_EQ(m.ms->memory_blocks()[kFirstMovableBlock + 3].zone, ZONE_NORMAL)
      << "online_kernel puts it in ZONE_NORMAL, inside ZONE_MOVABLE's span";
  EXPECT_EQ(hp.valid_zones(kFirstMovableBlock + 3), "Normal");
  expect_all_valid();
}

// The first case: a block full of movable anonymous, file and THP
// pages offlines, the contents stay, and the counters say what moved.
TEST_F(Hotplug, BlockOfMovablePagesOfflinesAndKeepsTheData) {
  const VirtAddr anon = populate(1200, 1);  // more than two blocks' worth
  auto file = File::create(m.vm, FsType::kTmpfs, "shm", 256 * PAGE_SIZE);
  auto f = vm_mmap(*mm, VirtAddr(0), 256 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, file);
  ASSERT_TRUE(f.ok());
  for (uint64_t i = 0; i < 256; ++i)
    ASSERT_TRUE(write_user<uint64_t>(*mm, *f + i * PAGE_SIZE, 0xf11e0000 + i).ok());
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr thp((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint64_t>(*mm, thp, 0x7472).ok());
  lru_add_drain_all(*m.ms);
  ASSERT_TRUE(folio_test_large(page_folio(testing::page_at(*mm, thp))));

  // Offline every movable block that holds any of it but the THP's own.
  const uint64_t thp_block = block_of(testing::page_at(*mm, thp));
  auto used_pages = [&](uint64_t b) {
    uint64_t used = 0;
    const MemoryBlock& mb = m.ms->memory_blocks()[b];
    for (Pfn p = mb.start_pfn; p < mb.start_pfn + mb.nr_pages; ++p)
      used += m.ms->pfn_to_page(p)->refcount() > 0 || m.ms->pfn_to_page(p)->is_tail() ? 1 : 0;
    return used;
  };
  // Offline every movable block that holds some of it (what moves goes to
  // the other blocks, or to ZONE_NORMAL once the movable zone is gone).
  uint64_t offlined = 0;
  for (uint64_t b = kFirstMovableBlock; b < kFirstMovableBlock + 8; ++b) {
    const uint64_t used = used_pages(b);
    if (used == 0) continue;
    const int64_t migrated0 = m.ms->vmstat()[PGMIGRATE_SUCCESS];
    OfflineResult res;
    ASSERT_EQ(hp.state_store(b, "offline", {}, &res), 0) << "block " << b << ": " << res.reason;
    // Every used page of the block moved (a THP as its 512 base pages).
    EXPECT_EQ(m.ms->vmstat()[PGMIGRATE_SUCCESS] - migrated0, static_cast<int64_t>(used));
    EXPECT_EQ(res.pages_migrated, used);
    ++offlined;
  }
  ASSERT_GE(offlined, 2u);
  expect_pattern(anon, 1200, 1);
  for (uint64_t i = 0; i < 256; ++i)
    EXPECT_EQ(*read_user<uint64_t>(*mm, *f + i * PAGE_SIZE), 0xf11e0000 + i);
  EXPECT_EQ(*read_user<uint64_t>(*mm, thp), 0x7472u);
  EXPECT_NE(block_of(testing::page_at(*mm, thp)), thp_block) << "the THP moved";
  expect_all_valid();
}

// A short-term pin in a movable block: isolation succeeds (ZONE_MOVABLE is
// assumed movable), migration keeps failing, and offlining spins until the
// task gets a signal, then names the pin's owner. After the unpin it works.
// Linux 6.12 with a vmsplice'd page (tools/oracle/hotplug_pins.c): 98 failed
// migrations in 2 s, EINTR at SIGALRM, the block back online, and offline
// succeeds once the pipe is closed.
TEST_F(Hotplug, ShortTermPinSpinsUntilASignalAndNamesThePinner) {
  const VirtAddr a = populate(16, 2);
  Page* page = nullptr;
  {
    PinOwnerScope owner("dma-buffer");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  }
  ASSERT_EQ(page_zone(page)->type(), ZONE_MOVABLE);
  const uint64_t b = block_of(page);

  OfflineResult res;
  int rc = 0;
  const int64_t failed0 = m.ms->events().get(PGMIGRATE_FAIL);
  std::atomic<bool> retried{false};
  {
    Task t(500, "memhotplug");
    testing::ScopedThreads threads;
    threads.spawn([&](std::stop_token) {
      CurrentTask scope(t);
      rc = hp.state_store(b, "offline", {}, &res);
    });
    // The signal comes once offlining has provably retried: two failed
    // migration passes over the pinned page.
    threads.spawn([&](std::stop_token) {
      retried =
          testing::wait_until([&] { return m.ms->events().get(PGMIGRATE_FAIL) >= failed0 + 2; });
      t.send_signal(Signal::kInterrupt);  // any signal stops it, not only fatal ones
    });
  }
  EXPECT_TRUE(retried.load()) << "offlining never retried";
  EXPECT_EQ(rc, -EINTR);
  EXPECT_EQ(res.reason, "signal backoff");
  EXPECT_GT(res.migrate_attempts, 1u) << "it retried";
  EXPECT_EQ(hp.state_show(b), "online") << "a failed offline goes back to online";
  ASSERT_FALSE(res.blocked.blockers.empty());
  const PageBlocker& blk = res.blocked.blockers.front();
  EXPECT_EQ(blk.pfn, m.ms->page_to_pfn(page));
  EXPECT_EQ(blk.reason, BlockReason::kPinned);
  EXPECT_EQ(blk.pins, 1u);
  ASSERT_EQ(blk.owners.size(), 1u);
  EXPECT_EQ(blk.owners[0].label, "dma-buffer");
  EXPECT_EQ(blk.owners[0].entry, "pin_user_pages_fast");
  EXPECT_FALSE(blk.owners[0].longterm);
  // The machine's blocker log has the same story.
  BlockedOperation last;
  ASSERT_TRUE(m.ms->blocker_log().last(&last));
  EXPECT_EQ(last.operation, "offline_pages");
  EXPECT_EQ(last.err, -EINTR);
  EXPECT_EQ(last.blockers.front().owners[0].label, "dma-buffer");
  expect_all_valid();

  unpin_user_page(page);
  ASSERT_EQ(hp.state_store(b, "offline"), 0);
  expect_pattern(a, 16, 2);
  expect_all_valid();
}

// The same pin with a deadline (what `timeout` around the write does) and
// with the bounded retry policy.
TEST_F(Hotplug, DeadlineAndBoundedRetriesEndTheSpin) {
  const VirtAddr a = populate(4, 3);
  Page* page = nullptr;
  ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  const uint64_t b = block_of(page);
  OfflineOptions opt;
  opt.deadline = std::chrono::steady_clock::now() + milliseconds(50);
  OfflineResult res;
  EXPECT_EQ(hp.state_store(b, "offline", opt, &res), -EINTR);
  EXPECT_EQ(res.reason, "signal backoff");
  OfflineOptions bounded;
  bounded.retry = OfflineRetryPolicy::kBounded;
  bounded.max_attempts = 7;
  EXPECT_EQ(hp.state_store(b, "offline", bounded, &res), -EBUSY);
  EXPECT_EQ(res.reason, "retry limit");
  EXPECT_EQ(res.migrate_attempts, 7u);
  EXPECT_EQ(res.attempts.size(), 7u);
  EXPECT_EQ(res.attempts.back().failed, 1u);
  unpin_user_page(page);
  expect_all_valid();
}

// Long-term pins taken before offlining: GUP migrated the pages out of
// ZONE_MOVABLE, so every movable block offlines. Linux 6.12 with io_uring's
// registration (tools/oracle/hotplug_pins.c): 16384 pages migrated, then every
// block of the DIMM offlines with the pins held.
TEST_F(Hotplug, LongtermPinsWereMigratedSoOffliningSucceeds) {
  const VirtAddr a = populate(64, 4);
  std::vector<Page*> pages(64);
  {
    PinOwnerScope owner(PinOwnerKind::kDevice, "rdma0", "mr1");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 64, FOLL_WRITE | FOLL_LONGTERM, pages.data()), 64);
  }
  for (Page* p : pages)
    ASSERT_EQ(page_zone(p)->type(), ZONE_NORMAL);
  for (uint64_t b = kFirstMovableBlock; b < kFirstMovableBlock + 8; ++b)
    ASSERT_EQ(hp.state_store(b, "offline"), 0) << "block " << b;
  expect_pattern(a, 64, 4);
  unpin_user_pages(pages);
  expect_all_valid();
}

// With the long-term pin policy switched off, the pins stay in ZONE_MOVABLE
// and offlining fails, naming the device that pins.
TEST_F(Hotplug, LongtermPinsInPlaceBlockOffliningAndNameThePinner) {
  m.ms->set_longterm_pin_policy(LongtermPinPolicy::kInPlace);
  const VirtAddr a = populate(8, 5);
  std::vector<Page*> pages(8);
  {
    PinOwnerScope owner(PinOwnerKind::kDevice, "rdma0", "mr7");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 8, FOLL_WRITE | FOLL_LONGTERM, pages.data()), 8);
  }
  ASSERT_EQ(page_zone(pages[0])->type(), ZONE_MOVABLE);
  OfflineOptions bounded;
  bounded.retry = OfflineRetryPolicy::kBounded;
  bounded.max_attempts = 3;
  OfflineResult res;
  EXPECT_EQ(hp.state_store(block_of(pages[0]), "offline", bounded, &res), -EBUSY);
  ASSERT_FALSE(res.blocked.blockers.empty());
  const PageBlocker& blk = res.blocked.blockers.front();
  EXPECT_EQ(blk.reason, BlockReason::kPinned);
  ASSERT_EQ(blk.owners.size(), 1u);
  EXPECT_EQ(blk.owners[0].kind, PinOwnerKind::kDevice);
  EXPECT_EQ(blk.owners[0].name, "rdma0");
  EXPECT_EQ(blk.owners[0].label, "mr7");
  EXPECT_TRUE(blk.owners[0].longterm);
  EXPECT_NE(format_blocker(blk).find("device 'rdma0' [mr7] x1 via pin_user_pages_fast longterm"),
            std::string::npos)
      << format_blocker(blk);
  unpin_user_pages(pages);
  expect_all_valid();
}

// An unmovable kernel page refuses isolation: -EBUSY at once, with its
// owner named; a GET reference (not a pin) in a movable block is "extra
// references".
TEST_F(Hotplug, UnmovableKernelPageRefusesIsolation) {
  // A kernel page that is the first unmovable page of its block (others,
  // like page tables, may share a block).
  std::vector<Page*> others;
  Page* kpage = nullptr;
  while (kpage == nullptr) {
    Page* p = kmalloc_pages(*m.ms, Order(0), "nvme-queue");
    ASSERT_NE(p, nullptr);
    const Pfn block = Pfn(block_of(p) * m.ms->block_pages().value());
    SpinGuard g(page_zone(p)->lock);
    if (has_unmovable_pages(*m.ms, block, block + m.ms->block_pages(), MIGRATE_MOVABLE,
                            MEMORY_OFFLINE) == p) {
      kpage = p;
    } else {
      others.push_back(p);
    }
  }
  ASSERT_EQ(page_zone(kpage)->type(), ZONE_NORMAL);
  OfflineResult res;
  EXPECT_EQ(hp.state_store(block_of(kpage), "offline", {}, &res), -EBUSY);
  EXPECT_EQ(res.reason, "failure to isolate range");
  ASSERT_EQ(res.blocked.blockers.size(), 1u);
  EXPECT_EQ(res.blocked.blockers[0].reason, BlockReason::kUnmovable);
  EXPECT_EQ(res.blocked.blockers[0].kernel_owner, "nvme-queue");
  EXPECT_EQ(res.blocked.blockers[0].kind, "slab");
  kfree_pages(kpage);
  for (Page* p : others)
    kfree_pages(p);

  const VirtAddr a = populate(2, 6);
  Page* page = nullptr;
  ASSERT_EQ(get_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  OfflineOptions bounded;
  bounded.retry = OfflineRetryPolicy::kBounded;
  bounded.max_attempts = 2;
  EXPECT_EQ(hp.state_store(block_of(page), "offline", bounded, &res), -EBUSY);
  ASSERT_FALSE(res.blocked.blockers.empty());
  EXPECT_EQ(res.blocked.blockers[0].reason, BlockReason::kReferenced);
  EXPECT_EQ(res.blocked.blockers[0].refcount, 3);  // mapping, GET, isolation
  EXPECT_EQ(res.blocked.blockers[0].expected_refs, 2);
  put_page(page);
  expect_all_valid();
}

// Free hugetlb pool pages are dissolved, in-use ones migrated.
TEST(HotplugHugetlb, FreePoolPagesDissolveAndUsedOnesMigrate) {
  MachineConfig c = hotplug_machine();
  c.hugepages.push_back({Bytes::MiB(2), 2, 0});
  testing::VmMachine m(c);
  MemoryHotplug hp(*m.ms);
  std::vector<uint64_t> blocks;
  for (Pfn pfn{0}; pfn < m.ms->boot_end_pfn(); pfn += m.ms->block_pages()) {
    if (folio_test_hugetlb(page_folio(m.ms->pfn_to_page(pfn))))
      blocks.push_back(pfn.value() / m.ms->block_pages().value());
  }
  ASSERT_EQ(blocks.size(), 2u);
  ASSERT_EQ(hp.state_store(blocks[0], "offline"), 0);
  EXPECT_EQ(m.ms->hugetlb().counts(HugetlbPools::kPmdIndex).nr_huge_pages, 1u);
  EXPECT_VALID(*m.ms);
}

// A notifier may veto MEM_GOING_OFFLINE and MEM_GOING_ONLINE; it sees the
// events in order.
TEST_F(Hotplug, NotifiersSeeTheEventsAndMayVeto) {
  std::vector<MemoryNotifyEvent> seen;
  bool veto = true;
  const int id = hp.register_memory_notifier([&](MemoryNotifyEvent e, const MemoryNotify& n) {
    EXPECT_EQ(n.nr_pages, m.ms->block_pages());
    seen.push_back(e);
    return veto && (e == MEM_GOING_OFFLINE || e == MEM_GOING_ONLINE) ? -EBUSY : 0;
  });
  const uint64_t b = kFirstMovableBlock;
  OfflineResult res;
  EXPECT_EQ(hp.state_store(b, "offline", {}, &res), -EBUSY);
  EXPECT_EQ(res.reason, "notifier failure");
  EXPECT_EQ(hp.state_show(b), "online");
  veto = false;
  ASSERT_EQ(hp.state_store(b, "offline"), 0);
  veto = true;
  EXPECT_EQ(hp.state_store(b, "online"), -EBUSY);
  EXPECT_EQ(hp.state_show(b), "offline");
  veto = false;
  ASSERT_EQ(hp.state_store(b, "online"), 0);
  hp.unregister_memory_notifier(id);
  EXPECT_EQ(seen, (std::vector<MemoryNotifyEvent>{
                      MEM_GOING_OFFLINE, MEM_CANCEL_OFFLINE, MEM_GOING_OFFLINE, MEM_OFFLINE,
                      MEM_GOING_ONLINE, MEM_CANCEL_ONLINE, MEM_GOING_ONLINE, MEM_ONLINE}));
  expect_all_valid();
}

// add_memory's errors, in the order __add_memory finds them: a range
// outside the pluggable range (here: the hot-plug space) is E2BIG
// (register_memory_resource, when mhp_range_allowed() refuses it); one
// that overlaps present memory, boot memory included, is EEXIST (the
// resource request conflicts); then check_hotplug_memory_range's EINVAL
// for a range that is not block aligned.
TEST_F(Hotplug, AddMemoryErrorsAreTheKernels) {
  const Pfn start = m.ms->boot_end_pfn();
  const PageCount block = m.ms->block_pages();
  const PageCount space(m.ms->max_pfn().value() - start.value());
  EXPECT_EQ(hp.add_memory(0, start, space + block, false).error(), Errno(E2BIG));
  EXPECT_EQ(hp.add_memory(0, start, PageCount(0), false).error(), Errno(E2BIG));
  EXPECT_EQ(hp.add_memory(0, start - block, block + block, false).error(), Errno(EEXIST))
      << "boot memory is present";
  EXPECT_EQ(hp.add_memory(0, start + PageCount(1), block, false).error(), Errno(EINVAL));
  EXPECT_EQ(hp.add_memory(0, start, PageCount(block.value() / 2), false).error(), Errno(EINVAL));
  ASSERT_TRUE(hp.add_memory(0, start, block, false).ok());
  EXPECT_EQ(hp.add_memory(0, start, block + block, false).error(), Errno(EEXIST));
  expect_all_valid();
}

// Hot-add: new blocks start offline (memhp_default_state=offline), online
// into ZONE_NORMAL under contig-zones (they touch no zone), and can be
// removed once offline.
TEST_F(Hotplug, HotAddedBlocksOnlineAndGoAway) {
  const Pfn start = m.ms->boot_end_pfn();
  const PageCount nr = m.ms->block_pages() + m.ms->block_pages();
  auto group = hp.add_memory(0, start, nr, /*as_group=*/false);
  ASSERT_TRUE(group.ok());
  EXPECT_EQ(hp.add_memory(0, start, nr, false).error(), Errno(EEXIST));
  const uint64_t b = start.value() / m.ms->block_pages().value();
  EXPECT_EQ(hp.state_show(b), "offline");
  EXPECT_EQ(hp.valid_zones(b), "Normal Movable");
  const uint64_t managed = m.ms->zone(0, ZONE_NORMAL).managed_pages();
  ASSERT_EQ(hp.state_store(b, "online"), 0);
  EXPECT_EQ(m.ms->memory_blocks()[b].zone, ZONE_NORMAL);
  EXPECT_EQ(m.ms->zone(0, ZONE_NORMAL).managed_pages(), managed + m.ms->block_pages().value());
  ASSERT_EQ(hp.state_store(b + 1, "online_movable"), 0);
  EXPECT_EQ(m.ms->memory_blocks()[b + 1].zone, ZONE_MOVABLE);
  expect_all_valid();
  EXPECT_EQ(hp.remove_memory(start, nr).error(), Errno(EBUSY));
  ASSERT_EQ(hp.state_store(b, "offline"), 0);
  ASSERT_EQ(hp.state_store(b + 1, "offline"), 0);
  ASSERT_TRUE(hp.remove_memory(start, nr).ok());
  EXPECT_FALSE(m.ms->pfn_valid(start));
  EXPECT_EQ(hp.stats().blocks_added, 2u);
  EXPECT_EQ(hp.stats().blocks_removed, 2u);
  expect_all_valid();
}

// The auto-movable example of Documentation/admin-guide/mm/memory-hotplug.rst:
// at the default ratio of 301%, an 8 GiB VM takes 24 GiB of hot-plugged
// memory all in ZONE_MOVABLE (24 GiB <= 3.01 x 8 GiB); the next DIMM would
// pass the ratio, so it goes to the kernel zone, and kernel memory
// hot-added that way does not raise the allowance.
TEST(HotplugAutoMovable, EightGiBTakesTwentyFourGiBMovable) {
  MachineConfig c = MachineConfig::uniform(Bytes::GiB(8), 1, Bytes(0));
  c.thp = ThpMode::kNever;
  c.hotplug.space = Bytes::GiB(26);
  c.hotplug.online_policy = OnlinePolicy::kAutoMovable;
  c.hotplug.default_online_type = OnlineType::kOnline;  // memhp_default_state=online
  auto ms = testing::boot(c);
  MemoryHotplug hp(*ms);
  const PageCount dimm = Bytes::GiB(8).pages();
  Pfn next = ms->boot_end_pfn();
  for (int i = 0; i < 3; ++i, next += dimm)
    ASSERT_TRUE(hp.add_memory(0, next, dimm, /*as_group=*/true).ok());
  EXPECT_EQ(ms->zone(0, ZONE_MOVABLE).present_pages(), Bytes::GiB(24).pages().value());
  // One more 1 GiB DIMM: 25 GiB > 24.08 GiB, so all of it is kernel memory.
  auto g = hp.add_memory(0, next, Bytes::GiB(1).pages(), /*as_group=*/true);
  ASSERT_TRUE(g.ok());
  const MemoryGroup& group = ms->memory_groups()[static_cast<size_t>(*g)];
  EXPECT_EQ(group.present_kernel_pages, Bytes::GiB(1).pages().value());
  EXPECT_EQ(group.present_movable_pages, 0u);
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).present_early_pages(), Bytes::GiB(8).pages().value());
  // Hot-added page descriptors came from kernel memory: 64 bytes a page.
  EXPECT_EQ(ms->vmstat()[NR_MEMMAP_PAGES],
            static_cast<int64_t>(Bytes::GiB(25).value() / 64 / 4096));
  const auto r = hp.validate();
  EXPECT_TRUE(r.ok()) << r.to_string();
}

// Without groups each block is judged alone: blocks go movable up to the
// ratio, then kernel. Ratio 0 means always the kernel zone.
TEST(HotplugAutoMovable, BlocksWithoutAGroupFillUpToTheRatio) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
  c.hotplug.space = Bytes::MiB(64);
  c.hotplug.online_policy = OnlinePolicy::kAutoMovable;
  c.hotplug.auto_movable_ratio = 200;  // 32 MiB movable for 16 MiB kernel
  c.hotplug.default_online_type = OnlineType::kOnline;
  auto ms = testing::boot(c);
  MemoryHotplug hp(*ms);
  ASSERT_TRUE(hp.add_memory(0, ms->boot_end_pfn(), Bytes::MiB(40).pages(), false).ok());
  EXPECT_EQ(ms->zone(0, ZONE_MOVABLE).present_pages(), Bytes::MiB(32).pages().value());
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).present_pages(), Bytes::MiB(16 + 8).pages().value());
  hp.set_auto_movable_ratio(0);
  ASSERT_TRUE(
      hp.add_memory(0, ms->boot_end_pfn() + Bytes::MiB(40).pages(), Bytes::MiB(2).pages(), false)
          .ok());
  EXPECT_EQ(ms->zone(0, ZONE_NORMAL).present_pages(), Bytes::MiB(16 + 10).pages().value());
  EXPECT_VALID(*ms);
}

// NUMA awareness: the ratio also holds per node, so memory hot-added to a
// node without kernel memory of its own goes to the kernel zone, unless
// auto_movable_numa_aware is off.
TEST(HotplugAutoMovable, NumaAwareRatioPerNode) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(16));
  c.nodes.push_back({Bytes::MiB(16), Bytes::MiB(16)});  // node 1: all movable
  c.hotplug.space = Bytes::MiB(8);
  c.hotplug.online_policy = OnlinePolicy::kAutoMovable;
  c.hotplug.default_online_type = OnlineType::kOnline;
  auto ms = testing::boot(c);
  MemoryHotplug hp(*ms);
  const Pfn s = ms->boot_end_pfn();
  ASSERT_TRUE(hp.add_memory(1, s, ms->block_pages(), false).ok());
  EXPECT_EQ(ms->memory_block_of(s).zone, ZONE_NORMAL) << "node 1 has no kernel memory";
  hp.set_auto_movable_numa_aware(false);
  ASSERT_TRUE(hp.add_memory(1, s + ms->block_pages(), ms->block_pages(), false).ok());
  EXPECT_EQ(ms->memory_block_of(s + ms->block_pages()).zone, ZONE_MOVABLE);
  EXPECT_VALID(*ms);
}

// Concurrency under ThreadSanitizer: threads fault, write, pin and unpin
// anonymous memory while the main thread offlines and onlines the movable
// blocks; nothing written is lost and every invariant holds afterwards.
TEST_F(Hotplug, ConcurrentOfflineOnlineWhileFaultingAndPinning) {
  constexpr int kWorkers = 2;
  constexpr uint64_t kPages = 96;
  std::vector<VirtAddr> bases;
  for (int w = 0; w < kWorkers; ++w)
    bases.push_back(populate(kPages, 10 + w));
  std::atomic<uint64_t> rounds{0};
  std::atomic<int> bad{0};
  testing::ScopedThreads workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.spawn([&, w](std::stop_token stop) {
      current().set_mm(mm.get());
      std::vector<Page*> pages(8);
      for (uint64_t r = 1; !stop.stop_requested(); ++r) {
        for (uint64_t i = 0; i < kPages; ++i) {
          if (!write_user<uint64_t>(*mm, bases[w] + i * PAGE_SIZE + 8, r).ok()) bad++;
        }
        // A short pin, released before the next round.
        const long n = pin_user_pages_fast((bases[w] + (r % 8) * 8 * PAGE_SIZE).value(), 8,
                                           FOLL_WRITE, pages.data());
        if (n == 8) {
          unpin_user_pages(pages);
        } else {
          bad++;
        }
        for (uint64_t i = 0; i < kPages; ++i) {
          auto v = read_user<uint64_t>(*mm, bases[w] + i * PAGE_SIZE + 8);
          EXPECT_TRUE(v.ok() && *v == r) << "worker " << w << " page " << i;
          if (!v.ok() || *v != r) bad++;
        }
        rounds++;
      }
      current().set_mm(nullptr);
    });
  }
  // At least three passes over the movable blocks, and until the workers
  // have done 20 rounds between them and a block holding their pages went
  // offline and came back, so the two really overlap. Offlining is bounded
  // by attempts, not time: a block the workers keep pinning may fail.
  const auto holds_worker_pages = [&](uint64_t b) {
    for (int w = 0; w < kWorkers; ++w)
      for (uint64_t i = 0; i < kPages; i += 8)
        if (Page* p = testing::page_at(*mm, bases[w] + i * PAGE_SIZE); p && block_of(p) == b)
          return true;
    return false;
  };
  uint64_t offlined = 0, offlined_busy = 0;
  const uint64_t passes = testing::repeat_until(
      3, [&] { return rounds.load() >= 20 && offlined_busy > 0; },
      [&](uint64_t) {
        for (uint64_t b = kFirstMovableBlock; b < kFirstMovableBlock + 8; ++b) {
          const bool busy = holds_worker_pages(b);
          OfflineOptions opt;
          opt.retry = OfflineRetryPolicy::kBounded;
          opt.max_attempts = 100;
          if (hp.state_store(b, "offline", opt) == 0) {
            ++offlined;
            offlined_busy += busy ? 1 : 0;
            ASSERT_EQ(hp.state_store(b, "online_movable"), 0);
          }
        }
      });
  workers.stop_and_join();
  ASSERT_NE(passes, 0u) << "no block with the workers' pages went offline before the hang bound";
  EXPECT_EQ(bad.load(), 0);
  RecordProperty("offlined", static_cast<int>(offlined));
  RecordProperty("rounds", static_cast<int>(rounds.load()));
  for (int w = 0; w < kWorkers; ++w)
    expect_pattern(bases[w], kPages, 10 + w);
  expect_all_valid();
}

}  // namespace
}  // namespace pinmm
