// FOLL_LONGTERM pins (KERNEL-SPEC 5): memory in ZONE_MOVABLE or CMA is
// migrated before it stays pinned; ZONE_NORMAL memory is pinned in place;
// a migration failure drops every pin and returns -ENOMEM.
#include <gtest/gtest.h>

#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class Longterm : public ::testing::Test {
 protected:
  explicit Longterm(MachineConfig c = movable_machine()) : m(std::move(c)), mm(Mm::create(m.vm)) {
    current().set_mm(mm.get());
  }
  ~Longterm() override { current().set_mm(nullptr); }
  // 32 MiB, 16 MiB of it ZONE_MOVABLE (where user memory goes first).
  static MachineConfig movable_machine() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32), Bytes::MiB(16));
    c.thp = ThpMode::kAlways;
    return c;
  }
  VirtAddr populated(uint64_t n) {
    const VirtAddr a = testing::map_anon(*mm, n * PAGE_SIZE);
    for (uint64_t i = 0; i < n; ++i)
      EXPECT_TRUE(write_user<uint64_t>(*mm, a + i * PAGE_SIZE, 0xa000 + i).ok());
    lru_add_drain_all(*m.ms);
    return a;
  }
  long pin(VirtAddr a, uint64_t n, std::vector<Page*>& pages, Foll extra = FOLL_NONE) {
    pages.assign(n, nullptr);
    mm->mmap_lock.down_read();
    const long r = pin_user_pages(a.value(), n, FOLL_LONGTERM | FOLL_WRITE | extra, pages.data());
    mm->mmap_lock.up_read();
    return r;
  }
  int64_t stat(NodeStatItem i) { return m.ms->node(0).stats().get(i); }
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(Longterm, MovableMemoryIsMigratedBeforeItStaysPinned) {
  constexpr uint64_t kPages = 16;
  const VirtAddr a = populated(kPages);
  ASSERT_EQ(page_zone(testing::page_at(*mm, a))->type(), ZONE_MOVABLE);
  std::vector<Page*> pages;
  // The slow path must pin and migrate, never fail for want of a
  // pinnable page (the 2022 and 2024 regressions).
  ASSERT_EQ(pin(a, kPages, pages), static_cast<long>(kPages));
  for (uint64_t i = 0; i < kPages; ++i) {
    Folio* f = page_folio(pages[i]);
    EXPECT_TRUE(folio_is_longterm_pinnable(f)) << i;
    EXPECT_EQ(page_zone(pages[i])->type(), ZONE_NORMAL);
    EXPECT_TRUE(folio_maybe_dma_pinned(f));
    EXPECT_EQ(testing::page_at(*mm, a + i * PAGE_SIZE), pages[i]);
    EXPECT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), 0xa000 + i);
  }
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), static_cast<int64_t>(kPages));
  // Pinned twice (before and after the migration), unpinned once in between.
  EXPECT_EQ(stat(NR_FOLL_PIN_ACQUIRED), 2 * static_cast<int64_t>(kPages));
  EXPECT_EQ(stat(NR_FOLL_PIN_RELEASED), static_cast<int64_t>(kPages));
  unpin_user_pages(pages);
  EXPECT_EQ(stat(NR_FOLL_PIN_ACQUIRED), stat(NR_FOLL_PIN_RELEASED));
  EXPECT_VM_VALID(m.vm);
}

TEST_F(Longterm, ShortTermPinsStayWhereTheyAre) {
  const VirtAddr a = populated(4);
  std::vector<Page*> pages(4);
  {
    ReadGuard g(mm->mmap_lock);
    ASSERT_EQ(pin_user_pages(a.value(), 4, FOLL_WRITE, pages.data()), 4);
  }
  EXPECT_EQ(page_zone(pages[0])->type(), ZONE_MOVABLE);
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), 0);
  unpin_user_pages(pages);
}

TEST_F(Longterm, FaultsInsideTheScopeAvoidMovableMemory) {
  // Nothing populated: the pin's own faults allocate outside ZONE_MOVABLE,
  // so nothing needs migrating.
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE);
  std::vector<Page*> pages;
  ASSERT_EQ(pin(a, 4, pages), 4);
  for (Page* p : pages)
    EXPECT_EQ(page_zone(p)->type(), ZONE_NORMAL);
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), 0);
  EXPECT_EQ(current().flags() & PF_MEMALLOC_PIN, 0u);  // the scope ended
  unpin_user_pages(pages);
}

TEST_F(Longterm, MigrationFailureDropsEveryPinAndReturnsEnomem) {
  const VirtAddr a = populated(4);
  Folio* busy = page_folio(testing::page_at(*mm, a + 2 * PAGE_SIZE));
  folio_get(busy);  // someone else's reference: this folio cannot move
  std::vector<Page*> pages;
  EXPECT_EQ(pin(a, 4, pages), -ENOMEM);
  EXPECT_EQ(stat(NR_FOLL_PIN_ACQUIRED), stat(NR_FOLL_PIN_RELEASED));
  EXPECT_FALSE(folio_maybe_dma_pinned(busy));
  EXPECT_EQ(folio_ref_count(busy), 2);
  // The caller only sees -ENOMEM; the machine's blocker log says which
  // folio would not move, and why.
  BlockedOperation op;
  ASSERT_TRUE(m.ms->blocker_log().last(&op));
  EXPECT_EQ(op.operation, "pin_user_pages(FOLL_LONGTERM)");
  EXPECT_EQ(op.err, -ENOMEM);
  ASSERT_EQ(op.blockers.size(), 1u);
  EXPECT_EQ(op.blockers[0].pfn, folio_pfn(busy));
  EXPECT_EQ(op.blockers[0].reason, BlockReason::kReferenced);
  EXPECT_EQ(op.blockers[0].refcount, 3);  // mapping, ours, the isolation
  EXPECT_EQ(op.blockers[0].expected_refs, 2);
  folio_put(busy);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_ISOLATED_ANON), 0);
  EXPECT_VM_VALID(m.vm);
}

// KERNEL-SPEC 5: a failed migration drops every pin of the call, the
// pinnable pages' as well. A range of two ZONE_NORMAL pages (pinnable,
// faulted inside a memalloc_pin scope) and two ZONE_MOVABLE pages, one of
// which cannot move: -ENOMEM, and no page of the range keeps a pin (a pin
// left on the pinnable pages would be a leak validate() reports).
TEST_F(Longterm, MixedRangeMigrationFailureDropsThePinnablePagesPinsToo) {
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE);
  ASSERT_TRUE(do_madvise(*mm, a, 4 * PAGE_SIZE, MADV_NOHUGEPAGE).ok());
  {
    const unsigned scope = memalloc_pin_save();
    for (uint64_t i = 0; i < 2; ++i)
      ASSERT_TRUE(write_user<uint64_t>(*mm, a + i * PAGE_SIZE, 0xa000 + i).ok());
    memalloc_pin_restore(scope);
  }
  for (uint64_t i = 2; i < 4; ++i)
    ASSERT_TRUE(write_user<uint64_t>(*mm, a + i * PAGE_SIZE, 0xa000 + i).ok());
  lru_add_drain_all(*m.ms);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(page_zone(testing::page_at(*mm, a + i * PAGE_SIZE))->type(),
              i < 2 ? ZONE_NORMAL : ZONE_MOVABLE)
        << i;
  }
  Folio* busy = page_folio(testing::page_at(*mm, a + 3 * PAGE_SIZE));
  folio_get(busy);  // someone else's reference: this folio cannot move
  std::vector<Page*> pages;
  EXPECT_EQ(pin(a, 4, pages), -ENOMEM);
  lru_add_drain_all(*m.ms);  // page 2 moved: its new folio sat in a batch
  for (uint64_t i = 0; i < 4; ++i) {
    Folio* f = page_folio(testing::page_at(*mm, a + i * PAGE_SIZE));
    EXPECT_FALSE(folio_maybe_dma_pinned(f)) << "page " << i << " kept a pin";
    EXPECT_EQ(folio_ref_count(f), f == busy ? 2 : 1) << "page " << i;
  }
  EXPECT_EQ(stat(NR_FOLL_PIN_ACQUIRED), stat(NR_FOLL_PIN_RELEASED));
  EXPECT_EQ(m.ms->pin_owners().nr_folios(), 0u);
  folio_put(busy);
  EXPECT_VM_VALID(m.vm);
  EXPECT_VALID(*m.ms);
  for (uint64_t i = 0; i < 4; ++i)
    EXPECT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), 0xa000 + i);
}

// validate() names a pin nobody recorded: the check that makes every test
// and scenario that ends with the audit a leak detector.
TEST_F(Longterm, ValidateReportsAPinWithoutARecordAsLeaked) {
  const VirtAddr a = populated(1);
  Folio* f = page_folio(testing::page_at(*mm, a));
  ASSERT_EQ(try_grab_folio(f, 1, FOLL_PIN), 0);  // a bare grab records nothing
  const auto report = m.ms->validate();
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.to_string().find("the folio holds 1 pins, the pin-owner table records 0: 1 "
                                    "leaked"),
            std::string::npos)
      << report.to_string();
  gup_put_folio(f, 1, FOLL_PIN);
  EXPECT_VALID(*m.ms);
}

// The "in-place" long-term pin policy: FOLL_LONGTERM pins ZONE_MOVABLE
// memory where it lies, on the slow path and the fast one, and migrates
// nothing.
TEST_F(Longterm, InPlacePolicyPinsMovableMemoryWhereItLies) {
  m.ms->set_longterm_pin_policy(LongtermPinPolicy::kInPlace);
  const VirtAddr a = populated(8);
  const int64_t migrated0 = m.ms->vmstat()[PGMIGRATE_SUCCESS];
  std::vector<Page*> pages;
  ASSERT_EQ(pin(a, 4, pages), 4);
  std::vector<Page*> fast(4);
  ASSERT_EQ(
      pin_user_pages_fast((a + 4 * PAGE_SIZE).value(), 4, FOLL_WRITE | FOLL_LONGTERM, fast.data()),
      4);
  for (Page* p : pages)
    EXPECT_EQ(page_zone(p)->type(), ZONE_MOVABLE);
  for (Page* p : fast)
    EXPECT_EQ(page_zone(p)->type(), ZONE_MOVABLE);
  EXPECT_EQ(m.ms->vmstat()[PGMIGRATE_SUCCESS], migrated0);
  const auto owners = m.ms->pin_owners().owners_of(page_folio(fast[0]));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_TRUE(owners[0].longterm);
  unpin_user_pages(pages);
  unpin_user_pages(fast);
  EXPECT_EQ(longterm_pin_policies().size(), 2u);
  EXPECT_EQ(longterm_pin_policies()[0].name, longterm_pin_policy_name(LongtermPinPolicy::kMigrate));
  EXPECT_EQ(longterm_pin_policies()[1].name, longterm_pin_policy_name(LongtermPinPolicy::kInPlace));
  EXPECT_VM_VALID(m.vm);
}

TEST_F(Longterm, MovableThpIsMigratedWhole) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint64_t>(*mm, h + 5 * PAGE_SIZE, 0x7777).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  ASSERT_EQ(page_zone(testing::page_at(*mm, h))->type(), ZONE_MOVABLE);
  std::vector<Page*> pages;
  ASSERT_EQ(pin(h, HPAGE_PMD_NR, pages), static_cast<long>(HPAGE_PMD_NR));
  Folio* f = page_folio(pages[0]);
  EXPECT_TRUE(folio_is_longterm_pinnable(f));
  EXPECT_EQ(folio_pincount(f), static_cast<int>(HPAGE_PMD_NR));
  EXPECT_EQ(*read_user<uint64_t>(*mm, h + 5 * PAGE_SIZE), 0x7777u);
  unpin_user_pages(pages);
  EXPECT_VM_VALID(m.vm);
}

class LongtermNormalOnly : public Longterm {
 protected:
  LongtermNormalOnly() : Longterm(MachineConfig::tiny(Bytes::MiB(32))) {}
};

TEST_F(LongtermNormalOnly, PinsOfNormalMemoryMigrateNothing) {
  const VirtAddr a = populated(8);
  std::vector<Page*> pages;
  std::vector<Page*> before;
  for (int i = 0; i < 8; ++i)
    before.push_back(testing::page_at(*mm, a + i * PAGE_SIZE));
  ASSERT_EQ(pin(a, 8, pages), 8);
  EXPECT_EQ(pages, before);
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), 0);
  unpin_user_pages(pages);
}

class LongtermCma : public Longterm {
 protected:
  // Most of the machine is CMA, so movable allocations land there.
  LongtermCma() : Longterm(cma_machine()) {}
  static MachineConfig cma_machine() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32));
    c.cma.push_back({"cma0", Bytes::MiB(24), 0});
    return c;
  }
};

TEST_F(LongtermCma, CmaPagesAreMigratedOut) {
  const VirtAddr a = populated(8);
  int in_cma = 0;
  for (int i = 0; i < 8; ++i)
    in_cma += !folio_is_longterm_pinnable(page_folio(testing::page_at(*mm, a + i * PAGE_SIZE)));
  ASSERT_GT(in_cma, 0) << "the test needs user pages in CMA";
  std::vector<Page*> pages;
  ASSERT_EQ(pin(a, 8, pages), 8);
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(folio_is_longterm_pinnable(page_folio(pages[i])));
    EXPECT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE), 0xa000u + i);
  }
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS), in_cma);
  unpin_user_pages(pages);
}

}  // namespace
}  // namespace pinmm
