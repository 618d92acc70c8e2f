// The pin-owner side table (phys/pin_owners.h) as GUP fills and empties it:
// who pins, through which entry point, released on unpin by the same owner
// first; internal pins (undone fast walks, long-term re-pinning) leave no
// record.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class PinOwnersTest : public ::testing::Test {
 protected:
  PinOwnersTest() : m(config()), mm(Mm::create(m.vm)) { current().set_mm(mm.get()); }
  ~PinOwnersTest() override { current().set_mm(nullptr); }
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32), Bytes::MiB(8));
    c.thp = ThpMode::kAlways;
    return c;
  }
  VirtAddr populated(uint64_t n) {
    const VirtAddr a = testing::map_anon(*mm, n * PAGE_SIZE);
    testing::fill_pages(*mm, a, n * PAGE_SIZE, 3);
    lru_add_drain_all(*m.ms);
    return a;
  }
  PinOwners& owners() { return m.ms->pin_owners(); }
  std::vector<PinOwner> owners_at(VirtAddr a) {
    return owners().owners_of(page_folio(testing::page_at(*mm, a)));
  }
  testing::VmMachine m;
  MmHandle mm;
};

TEST_F(PinOwnersTest, EachPinningCallRecordsItsOwnerPerFolio) {
  const VirtAddr a = populated(4);
  std::vector<Page*> pages(4);
  {
    PinOwnerScope scope("buffer A");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 4, FOLL_WRITE | FOLL_LONGTERM, pages.data()), 4);
  }
  EXPECT_EQ(owners().nr_folios(), 4u);
  const auto rec = owners_at(a + 2 * PAGE_SIZE);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].kind, PinOwnerKind::kTask);
  EXPECT_EQ(rec[0].pid, current().pid());
  EXPECT_EQ(rec[0].name, current().comm());
  EXPECT_EQ(rec[0].label, "buffer A");
  EXPECT_EQ(rec[0].entry, "pin_user_pages_fast");
  EXPECT_TRUE(rec[0].longterm);
  EXPECT_EQ(rec[0].pins, 1u);
  EXPECT_VM_VALID(m.vm);
  unpin_user_pages(pages);
  EXPECT_EQ(owners().nr_folios(), 0u);
}

TEST_F(PinOwnersTest, GetReferencesAreNotPins) {
  const VirtAddr a = populated(2);
  std::vector<Page*> pages(2);
  ASSERT_EQ(get_user_pages_fast(a.value(), 2, FOLL_WRITE, pages.data()), 2);
  EXPECT_EQ(owners().nr_folios(), 0u);
  for (Page* p : pages)
    put_page(p);
}

TEST_F(PinOwnersTest, EveryPinEntryPointNamesItself) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  ASSERT_EQ(pin_user_pages_unlocked(a.value(), 1, &page, FOLL_WRITE), 1);
  {
    ReadGuard g(mm->mmap_lock);
    ASSERT_EQ(pin_user_pages(a.value(), 1, FOLL_WRITE, &page), 1);
    ASSERT_EQ(pin_user_pages_remote(*mm, a.value(), 1, FOLL_WRITE, &page, nullptr), 1);
  }
  const auto rec = owners_at(a);
  ASSERT_EQ(rec.size(), 3u);
  EXPECT_EQ(rec[0].entry, "pin_user_pages_unlocked");
  EXPECT_EQ(rec[1].entry, "pin_user_pages");
  EXPECT_EQ(rec[2].entry, "pin_user_pages_remote");
  EXPECT_LT(rec[0].seq, rec[1].seq);
  EXPECT_LT(rec[1].seq, rec[2].seq);
  folio_add_pin(page_folio(page));
  EXPECT_EQ(owners_at(a).back().entry, "folio_add_pin");
  for (int i = 0; i < 4; ++i)
    unpin_user_page(page);
  EXPECT_TRUE(owners_at(a).empty());
  EXPECT_VM_VALID(m.vm);
}

TEST_F(PinOwnersTest, ALargeFolioRunIsOneRecordHoldingEveryPage) {
  const VirtAddr raw = testing::map_anon(*mm, 2 * HPAGE_PMD_SIZE);
  const VirtAddr h((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  ASSERT_TRUE(write_user<uint8_t>(*mm, h, 1).ok());
  ASSERT_TRUE(pmd_leaf(testing::pmd_at(*mm, h)));
  std::vector<Page*> pages(HPAGE_PMD_NR);
  ASSERT_EQ(pin_user_pages_fast(h.value(), HPAGE_PMD_NR, FOLL_WRITE, pages.data()),
            static_cast<long>(HPAGE_PMD_NR));
  const auto rec = owners_at(h);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].pins, HPAGE_PMD_NR);
  // Partial unpins take pins off the record.
  unpin_user_pages(std::span<Page* const>(pages.data(), 100));
  EXPECT_EQ(owners_at(h)[0].pins, HPAGE_PMD_NR - 100);
  EXPECT_VM_VALID(m.vm);
  unpin_user_page_range_dirty_lock(pages[100], HPAGE_PMD_NR - 100, true);
  EXPECT_EQ(owners().nr_folios(), 0u);
}

TEST_F(PinOwnersTest, UnpinTakesTheUnpinnersOwnPinsFirstThenTheOldest) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  {
    PinOwnerScope nic(PinOwnerKind::kDevice, "rdma0", "mr 1");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE | FOLL_LONGTERM, &page), 1);
  }
  {
    PinOwnerScope dio("read 7");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  }
  {
    PinOwnerScope nic(PinOwnerKind::kDevice, "gpu0", "buf");
    ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  }
  // The direct-I/O owner completes: its record goes, not the NIC's older one.
  {
    PinOwnerScope dio("read 7");
    unpin_user_page(page);
  }
  auto rec = owners_at(a);
  ASSERT_EQ(rec.size(), 2u);
  EXPECT_EQ(rec[0].name, "rdma0");
  EXPECT_EQ(rec[0].kind, PinOwnerKind::kDevice);
  EXPECT_EQ(rec[1].name, "gpu0");
  // A device's pins are its own whichever thread unpins for it.
  std::thread([&] {
    PinOwnerScope gpu(PinOwnerKind::kDevice, "gpu0", "buf");
    unpin_user_page(page);
  }).join();
  rec = owners_at(a);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].name, "rdma0");
  // An unpin by someone with no record of its own takes the oldest.
  unpin_user_page(page);
  EXPECT_TRUE(owners_at(a).empty());
  EXPECT_VM_VALID(m.vm);
}

TEST_F(PinOwnersTest, LongtermMigrationLeavesOnlyTheFinalPinsRecorded) {
  // ZONE_MOVABLE memory (where user memory goes first): the long-term pin
  // unpins, migrates and re-pins internally; only the pins the caller got
  // are recorded, on the new folios.
  const VirtAddr a = populated(4);
  std::vector<Folio*> before;
  for (int i = 0; i < 4; ++i) {
    before.push_back(page_folio(testing::page_at(*mm, a + i * PAGE_SIZE)));
    ASSERT_EQ(page_zone(&before.back()->page)->type(), ZONE_MOVABLE);
  }
  std::vector<Page*> pages(4);
  {
    ReadGuard g(mm->mmap_lock);
    ASSERT_EQ(pin_user_pages(a.value(), 4, FOLL_WRITE | FOLL_LONGTERM, pages.data()), 4);
  }
  for (int i = 0; i < 4; ++i) {
    Folio* now = page_folio(pages[i]);
    EXPECT_NE(now, before[i]);
    EXPECT_TRUE(owners().owners_of(before[i]).empty());
    EXPECT_EQ(owners().owners_of(now).size(), 1u);
  }
  EXPECT_EQ(owners().nr_folios(), 4u);
  EXPECT_VM_VALID(m.vm);
  unpin_user_pages_dirty_lock(pages, true);
  EXPECT_EQ(owners().nr_folios(), 0u);
}

TEST_F(PinOwnersTest, TheZeroPageIsNeverRecorded) {
  const VirtAddr a = testing::map_anon(*mm, PAGE_SIZE, PROT_READ);
  ASSERT_EQ(testing::read_byte(*mm, a), 0);
  Page* page = nullptr;
  ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_NONE, &page), 1);
  EXPECT_TRUE(is_zero_page(page));
  EXPECT_EQ(owners().nr_folios(), 0u);
  unpin_user_page(page);
}

TEST_F(PinOwnersTest, ValidateCatchesARecordWithoutItsPins) {
  const VirtAddr a = populated(1);
  Page* page = nullptr;
  ASSERT_EQ(pin_user_pages_fast(a.value(), 1, FOLL_WRITE, &page), 1);
  // Dropping the pin behind the table's back leaves a stale record.
  gup_put_folio(page_folio(page), 1, FOLL_PIN);
  const auto report = m.ms->validate();
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.to_string().find("records hold 1 pins, the folio has 0"), std::string::npos)
      << report.to_string();
  owners().release(page_folio(page), 1);
  EXPECT_VM_VALID(m.vm);
}

// Concurrent pinners and unpinners of the same pages keep the table and the
// pin counts consistent (run under ThreadSanitizer).
TEST_F(PinOwnersTest, ConcurrentPinAndUnpinKeepTheTableConsistent) {
  const VirtAddr a = populated(16);
  auto worker = [&](int id) {
    Task task(1000 + id, "pinner");
    CurrentTask ct(task);
    current().set_mm(mm.get());
    PinOwnerScope scope(PinOwnerKind::kDevice, "dev" + std::to_string(id), "");
    std::vector<Page*> pages(16);
    for (int i = 0; i < 200; ++i) {
      const long n = pin_user_pages_fast(a.value(), 16, FOLL_WRITE, pages.data());
      ASSERT_EQ(n, 16);
      unpin_user_pages(pages);
    }
  };
  std::thread t1(worker, 1), t2(worker, 2);
  t1.join();
  t2.join();
  EXPECT_EQ(owners().nr_folios(), 0u);
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
