// The GUP slow path and its entry points (KERNEL-SPEC 2, 3.6, 4.2).
#include <gtest/gtest.h>

#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/vm/device_map.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class Gup : public ::testing::Test {
 protected:
  Gup() : m(config()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~Gup() override {
    current().set_mm(nullptr);
    current().clear_signals();
  }
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32));
    c.thp = ThpMode::kAlways;
    return c;
  }
  unsigned long at(VirtAddr a) const { return a.value(); }
  // `n` populated private anonymous pages.
  VirtAddr populated(uint64_t n, uint8_t value = 1) {
    const VirtAddr a = testing::map_anon(*mm, n * PAGE_SIZE);
    testing::fill_pages(*mm, a, n * PAGE_SIZE, value);
    lru_add_drain_all(*m.ms);  // no per-CPU batch reference left
    return a;
  }
  // Holds the mmap lock for reading, as callers of get/pin_user_pages do.
  struct ReadLocked {
    explicit ReadLocked(Mm& locked_mm) : held(locked_mm) { held.mmap_lock.down_read(); }
    ~ReadLocked() { held.mmap_lock.up_read(); }
    Mm& held;
  };
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(Gup, GetUserPagesTakesOneReferencePerPage) {
  const VirtAddr a = populated(4);
  std::vector<Page*> pages(4);
  {
    ReadLocked l(*mm);
    EXPECT_EQ(get_user_pages(at(a), 4, FOLL_WRITE, pages.data()), 4);
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(pages[i], testing::page_at(*mm, a + i * PAGE_SIZE));
    EXPECT_EQ(folio_ref_count(page_folio(pages[i])), 2);
    put_page(pages[i]);
  }
  EXPECT_FALSE(mm->test_flag(MMF_HAS_PINNED));
}

TEST_F(Gup, FaultsInWhatIsMissing) {
  const VirtAddr a = testing::map_anon(*mm, 2 * PAGE_SIZE);
  std::vector<Page*> pages(2);
  {
    ReadLocked l(*mm);
    // A read maps the shared zero page; a write allocates.
    EXPECT_EQ(get_user_pages(at(a), 1, FOLL_NONE, pages.data()), 1);
    EXPECT_EQ(get_user_pages(at(a + PAGE_SIZE), 1, FOLL_WRITE, pages.data() + 1), 1);
  }
  EXPECT_EQ(pages[0], m.ms->zero_page());
  EXPECT_NE(pages[1], m.ms->zero_page());
  EXPECT_EQ(testing::page_at(*mm, a + PAGE_SIZE), pages[1]);
  put_page(pages[0]);
  put_page(pages[1]);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(Gup, PinUserPagesPinsAndMarksTheMm) {
  const VirtAddr a = populated(2);
  std::vector<Page*> pages(2);
  {
    ReadLocked l(*mm);
    EXPECT_EQ(pin_user_pages(at(a), 2, FOLL_WRITE, pages.data()), 2);
  }
  EXPECT_TRUE(mm->test_flag(MMF_HAS_PINNED));
  EXPECT_EQ(folio_ref_count(page_folio(pages[0])), 1 + GUP_PIN_COUNTING_BIAS);
  EXPECT_EQ(m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED), 2);
  unpin_user_pages(pages);
  EXPECT_EQ(folio_ref_count(page_folio(pages[0])), 1);
}

TEST_F(Gup, InvalidArgumentsPerEntryPoint) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  ReadLocked l(*mm);
  EXPECT_EQ(get_user_pages(at(a), 1, FOLL_LONGTERM, &page), -EINVAL);
  EXPECT_EQ(get_user_pages(at(a), 1, FOLL_PIN, &page), -EINVAL);
  EXPECT_EQ(get_user_pages_remote(*mm, at(a), 1, FOLL_LONGTERM, &page, nullptr), -EINVAL);
  EXPECT_EQ(pin_user_pages(at(a), 1, FOLL_GET, &page), 0);
  EXPECT_EQ(pin_user_pages(at(a), 1, FOLL_WRITE, nullptr), 0);
  EXPECT_EQ(pin_user_pages_remote(*mm, at(a), 1, FOLL_TOUCH, &page, nullptr), 0);
  EXPECT_EQ(get_user_pages(at(a), 0, FOLL_WRITE, &page), 0);
  EXPECT_EQ(page, nullptr);
}

TEST_F(Gup, PartialCountHidesTheErrorThatStoppedTheWalk) {
  const VirtAddr a = populated(4);
  ASSERT_TRUE(vm_munmap(*mm, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE).ok());
  std::vector<Page*> pages(4);
  ReadLocked l(*mm);
  EXPECT_EQ(get_user_pages(at(a), 4, FOLL_WRITE, pages.data()), 2);
  put_page(pages[0]);
  put_page(pages[1]);
  EXPECT_EQ(get_user_pages(at(a + 2 * PAGE_SIZE), 2, FOLL_WRITE, pages.data()), -EFAULT);
}

TEST_F(Gup, VmaChecksGiveTheirErrno) {
  const VirtAddr ro = testing::map_anon(*mm, PAGE_SIZE, PROT_READ);
  auto dev = File::create_device(m.vm, "pfnmap", [](Vma& vma) -> Result<void> {
    return remap_pfn_range(vma, vma.vm_start, Pfn(16), PAGE_SIZE);
  });
  auto pfn = vm_mmap(*mm, VirtAddr(0), PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, dev);
  ASSERT_TRUE(pfn.ok());
  Page* page = nullptr;
  ReadLocked l(*mm);
  EXPECT_EQ(get_user_pages(at(ro), 1, FOLL_WRITE, &page), -EFAULT);
  EXPECT_EQ(get_user_pages(at(*pfn), 1, FOLL_NONE, &page), -EFAULT);
  EXPECT_EQ(get_user_pages(at(ro), 1, FOLL_ANON, &page), 1);
  put_page(page);
}

TEST_F(Gup, NofaultDoesNotFault) {
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE);
  Page* page = nullptr;
  ReadLocked l(*mm);
  EXPECT_EQ(get_user_pages(at(a), 1, FOLL_WRITE | FOLL_NOFAULT, &page), -EFAULT);
  EXPECT_EQ(testing::page_at(*mm, a), nullptr);
}

TEST_F(Gup, FatalSignalStopsTheWalk) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  current().send_signal(Signal::kKill);
  ReadLocked l(*mm);
  EXPECT_EQ(get_user_pages(at(a), 1, FOLL_WRITE, &page), -EINTR);
}

// cow.c (KERNEL-SPEC 10.5): a R/O pin of an anonymous page shared with a
// child after fork first unshares it, so that the pin and the parent's
// page table agree from then on.
TEST_F(Gup, ReadOnlyPinOfASharedAnonPageUnsharesFirst) {
  const VirtAddr a = populated(1, 0x11);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  Page* shared = testing::page_at(*mm, a);
  ASSERT_FALSE(PageAnonExclusive(shared));
  Page* page = nullptr;
  {
    ReadLocked l(*mm);
    EXPECT_EQ(pin_user_pages(at(a), 1, FOLL_NONE, &page), 1);
  }
  EXPECT_NE(page, shared);  // the parent got its own exclusive copy
  EXPECT_TRUE(PageAnonExclusive(page));
  EXPECT_EQ(testing::page_at(*mm, a), page);
  EXPECT_FALSE(pte_write(testing::pte_at(*mm, a)));  // unshare does not make it writable
  EXPECT_EQ(testing::page_at(**child, a), shared);
  // A write by the parent now reuses the pinned page: the pin sees it.
  ASSERT_TRUE(write_user<uint8_t>(*mm, a, 0x22).ok());
  EXPECT_EQ(testing::page_at(*mm, a), page);
  EXPECT_EQ(static_cast<uint8_t>(*m.ms->frames().frame(page_to_pfn(page))), 0x22);
  EXPECT_EQ(testing::read_byte(**child, a), 0x11);
  unpin_user_page(page);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(Gup, GetReferenceOfASharedAnonPageDoesNotUnshare) {
  const VirtAddr a = populated(1);
  auto child = dup_mm(*mm);
  ASSERT_TRUE(child.ok());
  Page* shared = testing::page_at(*mm, a);
  Page* page = nullptr;
  {
    ReadLocked l(*mm);
    EXPECT_EQ(get_user_pages(at(a), 1, FOLL_NONE, &page), 1);
  }
  EXPECT_EQ(page, shared);
  put_page(page);
}

TEST_F(Gup, ZeroPagePinsAreShortTermOnlyInCowMappings) {
  const VirtAddr a = testing::map_anon(*mm, 2 * PAGE_SIZE);
  (void)testing::read_byte(*mm, a);
  (void)testing::read_byte(*mm, a + PAGE_SIZE);
  Page* page = nullptr;
  {
    ReadLocked l(*mm);
    EXPECT_EQ(pin_user_pages(at(a), 1, FOLL_NONE, &page), 1);
  }
  EXPECT_EQ(page, m.ms->zero_page());  // short-term: the zero page, uncounted
  unpin_user_page(page);
  {
    ReadLocked l(*mm);
    EXPECT_EQ(pin_user_pages(at(a + PAGE_SIZE), 1, FOLL_LONGTERM, &page), 1);
  }
  // Long-term in a COW mapping: unshared into a private anonymous page.
  EXPECT_NE(page, m.ms->zero_page());
  EXPECT_TRUE(PageAnonExclusive(page));
  EXPECT_EQ(testing::page_at(*mm, a + PAGE_SIZE), page);
  unpin_user_page(page);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(Gup, ThpLeafIsGrabbedOncePerPageInOneLookup) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint8_t>(*mm, h, 1).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  lru_add_drain_all(*m.ms);
  std::vector<Page*> pages(HPAGE_PMD_NR);
  {
    ReadLocked l(*mm);
    EXPECT_EQ(pin_user_pages(at(h), HPAGE_PMD_NR, FOLL_WRITE, pages.data()),
              static_cast<long>(HPAGE_PMD_NR));
  }
  Folio* folio = page_folio(pages[0]);
  EXPECT_EQ(folio_ref_count(folio), 1 + static_cast<int>(HPAGE_PMD_NR));
  EXPECT_EQ(folio_pincount(folio), static_cast<int>(HPAGE_PMD_NR));
  for (uint64_t i = 0; i < HPAGE_PMD_NR; ++i)
    ASSERT_EQ(pages[i], folio_page(folio, i));
  unpin_user_pages(pages);
  EXPECT_EQ(folio_ref_count(folio), 1);
  EXPECT_EQ(folio_pincount(folio), 0);
}

// A read-only PMD mapping of an exclusive THP (mprotect PROT_READ): its
// exclusivity lives on the head page, which the slow path must check as
// follow_huge_pmd does; checking the tail page it pins asked for an unshare
// fault that had nothing to do, forever (pinmm stress spun in
// __get_user_pages on it). A GUP-fast-only pin checks the head too.
TEST_F(Gup, ReadOnlyPinOfAReadOnlyExclusiveThpNeedsNoUnshare) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  testing::fill_pages(*mm, h, HPAGE_PMD_SIZE, 3);
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  ASSERT_TRUE(do_mprotect(*mm, h, HPAGE_PMD_SIZE, PROT_READ).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  ASSERT_FALSE(pmd_write(testing::pmd_at(*mm, h)));
  lru_add_drain_all(*m.ms);
  Page* pages[2] = {};
  {
    ReadLocked l(*mm);
    EXPECT_EQ(pin_user_pages(at(h + 5 * PAGE_SIZE), 2, FOLL_NONE, pages), 2);
  }
  Folio* folio = page_folio(pages[0]);
  EXPECT_EQ(pages[0], folio_page(folio, 5));
  EXPECT_EQ(m.ms->vmstat()[THP_SPLIT_PMD], 0) << "no unshare was needed";
  unpin_user_pages(std::span<Page*>(pages, 2));
  EXPECT_EQ(folio_pincount(folio), 0);
}

TEST_F(Gup, SplitPmdKeepsTheFolioWhole) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint8_t>(*mm, h, 1).ok());
  Page* page = nullptr;
  {
    ReadLocked l(*mm);
    EXPECT_EQ(get_user_pages(at(h + 3 * PAGE_SIZE), 1, FOLL_SPLIT_PMD, &page), 1);
  }
  EXPECT_FALSE(pmd_leaf(testing::pmd_at(*mm, h)));
  EXPECT_TRUE(folio_test_large(page_folio(page)));
  EXPECT_EQ(page, testing::page_at(*mm, h + 3 * PAGE_SIZE));
  put_page(page);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(Gup, UnlockedVariantsTakeTheLockThemselves) {
  const VirtAddr a = testing::map_anon(*mm, 3 * PAGE_SIZE);
  std::vector<Page*> pages(3);
  EXPECT_EQ(pin_user_pages_unlocked(at(a), 3, pages.data(), FOLL_WRITE), 3);
  EXPECT_TRUE(mm->mmap_lock.down_write_killable());  // GUP let go of it
  mm->mmap_lock.up_write();
  unpin_user_pages_dirty_lock(pages, true);
  // With `locked`, the caller holds the lock and GUP may drop it (anon
  // faults never do); *locked must be 1 on entry.
  int locked = 0;
  EXPECT_EQ(get_user_pages_remote(*mm, at(a), 3, FOLL_WRITE, pages.data(), &locked), -EINVAL);
  locked = 1;
  mm->mmap_lock.down_read();
  EXPECT_EQ(get_user_pages_remote(*mm, at(a), 3, FOLL_WRITE, pages.data(), &locked), 3);
  EXPECT_EQ(locked, 1);
  mm->mmap_lock.up_read();
  for (Page* p : pages)
    put_page(p);
}

}  // namespace
}  // namespace pinmm
