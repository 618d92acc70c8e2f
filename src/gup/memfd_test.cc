// memfd_pin_folios (KERNEL-SPEC 2.6): argument checks, one entry per
// distinct folio, the offset into the first folio, allocation of holes,
// max_folios, migration out of ZONE_MOVABLE, hugetlbfs files.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

class MemfdPin : public ::testing::Test {
 protected:
  MemfdPin() : m(config()) {}
  // 32 MiB, 16 MiB of it ZONE_MOVABLE (where page-cache pages go first),
  // two 2 MiB hugetlb pages.
  static MachineConfig config() {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(32), Bytes::MiB(16));
    c.hugepages.push_back({Bytes::MiB(2), 2, std::nullopt});
    return c;
  }
  std::shared_ptr<File> shmem(uint64_t pages) {
    return File::create(m.vm, FsType::kTmpfs, "memfd:buf", pages * PAGE_SIZE);
  }
  // Writes `byte` at the start of page `index` through the page cache.
  void write_page(File& f, uint64_t index, uint8_t byte) {
    const std::byte b{byte};
    ASSERT_TRUE(f.pwrite(std::span<const std::byte>(&b, 1), index * PAGE_SIZE).ok());
  }
  uint8_t read_page(File& f, uint64_t index) {
    std::byte b{0xff};
    EXPECT_TRUE(f.pread(std::span<std::byte>(&b, 1), index * PAGE_SIZE).ok());
    return static_cast<uint8_t>(b);
  }
  uint64_t nrpages(File& f) {
    SpinGuard g(f.mapping().i_pages_lock);
    return f.mapping().nrpages;
  }
  int64_t acquired() { return m.ms->node(0).stats().get(NR_FOLL_PIN_ACQUIRED); }
  testing::VmMachine m;
};

TEST_F(MemfdPin, ArgumentErrors) {
  auto f = shmem(4);
  auto ext4 = File::create(m.vm, FsType::kExt4, "disk", 4 * PAGE_SIZE);
  std::vector<Folio*> folios(8);
  uint64_t off = 0;
  const int64_t last = 4 * PAGE_SIZE - 1;
  EXPECT_EQ(memfd_pin_folios(f.get(), -1, last, folios.data(), 8, &off), -EINVAL);
  EXPECT_EQ(memfd_pin_folios(f.get(), 100, 99, folios.data(), 8, &off), -EINVAL);
  EXPECT_EQ(memfd_pin_folios(f.get(), 0, last, folios.data(), 0, &off), -EINVAL);
  EXPECT_EQ(memfd_pin_folios(nullptr, 0, last, folios.data(), 8, &off), -EINVAL);
  EXPECT_EQ(memfd_pin_folios(ext4.get(), 0, last, folios.data(), 8, &off), -EINVAL);
  EXPECT_EQ(memfd_pin_folios(f.get(), 0, last + 1, folios.data(), 8, &off), -EINVAL);
  EXPECT_EQ(acquired(), 0);
  EXPECT_EQ(nrpages(*f), 0u);  // nothing allocated on the way
}

TEST_F(MemfdPin, PinsEveryFolioOnceAndAllocatesTheHoles) {
  auto f = shmem(4);
  write_page(*f, 1, 0x11);
  lru_add_drain_all(*m.ms);
  std::vector<Folio*> folios(8, nullptr);
  uint64_t off = 99;
  // Start 5 bytes into page 1: pages 1..3, page 2 and 3 allocated.
  ASSERT_EQ(memfd_pin_folios(f.get(), PAGE_SIZE + 5, 4 * PAGE_SIZE - 1, folios.data(), 8, &off), 3);
  EXPECT_EQ(off, 5u);
  EXPECT_EQ(nrpages(*f), 3u);
  for (int i = 0; i < 3; ++i) {
    Folio* folio = folios[i];
    EXPECT_EQ(folio->page.index(), static_cast<uint64_t>(i + 1));
    EXPECT_TRUE(folio_maybe_dma_pinned(folio));
    EXPECT_TRUE(folio_is_longterm_pinnable(folio)) << "pinned folios left ZONE_MOVABLE";
    EXPECT_EQ(folio_mapping(folio), &f->mapping());
    const auto owners = m.ms->pin_owners().owners_of(folio);
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0].entry, "memfd_pin_folios");
    EXPECT_TRUE(owners[0].longterm);
  }
  EXPECT_EQ(folios[3], nullptr);
  EXPECT_EQ(read_page(*f, 1), 0x11);  // migrated with its contents
  EXPECT_VM_VALID(m.vm);
  unpin_folios(std::span<Folio* const>(folios.data(), 3));
  EXPECT_EQ(m.ms->pin_owners().nr_folios(), 0u);
  EXPECT_EQ(acquired(), m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  EXPECT_VM_VALID(m.vm);
}

TEST_F(MemfdPin, MovablePageCacheFoliosMigrateFirst) {
  auto f = shmem(2);
  write_page(*f, 0, 0xa0);
  write_page(*f, 1, 0xa1);
  lru_add_drain_all(*m.ms);
  Folio* before = filemap_get_folio(f->mapping(), 0);
  ASSERT_NE(before, nullptr);
  ASSERT_EQ(page_zone(&before->page)->type(), ZONE_MOVABLE);
  folio_put(before);
  const int64_t migrated = m.ms->events().get(PGMIGRATE_SUCCESS);
  std::vector<Folio*> folios(2);
  uint64_t off = 0;
  ASSERT_EQ(memfd_pin_folios(f.get(), 0, 2 * PAGE_SIZE - 1, folios.data(), 2, &off), 2);
  EXPECT_EQ(m.ms->events().get(PGMIGRATE_SUCCESS) - migrated, 2);
  for (Folio* folio : folios)
    EXPECT_EQ(page_zone(&folio->page)->type(), ZONE_NORMAL);
  EXPECT_NE(folios[0], before);
  EXPECT_EQ(read_page(*f, 0), 0xa0);
  EXPECT_EQ(read_page(*f, 1), 0xa1);
  unpin_folio(folios[0]);
  unpin_folio(folios[1]);
  EXPECT_VM_VALID(m.vm);
}

// A folio that cannot move (someone else's reference): -ENOMEM, and no
// folio of the file keeps a pin, the one that would have moved included.
TEST_F(MemfdPin, AMigrationFailureLeavesNothingPinned) {
  auto f = shmem(3);
  for (uint64_t i = 0; i < 3; ++i)
    write_page(*f, i, static_cast<uint8_t>(0xb0 + i));
  lru_add_drain_all(*m.ms);
  Folio* busy = filemap_get_folio(f->mapping(), 1);  // our reference stays
  ASSERT_NE(busy, nullptr);
  ASSERT_EQ(page_zone(&busy->page)->type(), ZONE_MOVABLE);
  const int64_t acquired0 = acquired();
  std::vector<Folio*> folios(3);
  uint64_t off = 0;
  EXPECT_EQ(memfd_pin_folios(f.get(), 0, 3 * PAGE_SIZE - 1, folios.data(), 3, &off), -ENOMEM);
  for (uint64_t i = 0; i < 3; ++i) {
    Folio* folio = filemap_get_folio(f->mapping(), i);
    ASSERT_NE(folio, nullptr);
    EXPECT_FALSE(folio_maybe_dma_pinned(folio)) << "folio " << i << " kept a pin";
    folio_put(folio);
  }
  EXPECT_EQ(acquired() - acquired0, m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  EXPECT_EQ(m.ms->pin_owners().nr_folios(), 0u);
  folio_put(busy);
  EXPECT_VM_VALID(m.vm);
  EXPECT_VALID(*m.ms);
  for (uint64_t i = 0; i < 3; ++i)
    EXPECT_EQ(read_page(*f, i), 0xb0 + i);
}

TEST_F(MemfdPin, MaxFoliosStopsEarly) {
  auto f = shmem(8);
  std::vector<Folio*> folios(2);
  uint64_t off = 0;
  ASSERT_EQ(memfd_pin_folios(f.get(), 0, 8 * PAGE_SIZE - 1, folios.data(), 2, &off), 2);
  EXPECT_EQ(nrpages(*f), 2u);
  unpin_folios(folios);
}

TEST_F(MemfdPin, HugetlbFoliosComeFromThePoolOncePerHugePage) {
  auto f = File::create(m.vm, FsType::kHugetlbfs, "memfd:huge", 2 * HPAGE_PMD_SIZE);
  HugetlbPools& pools = m.ms->hugetlb();
  ASSERT_EQ(pools.counts(HugetlbPools::kPmdIndex).free_huge_pages, 2u);
  std::vector<Folio*> folios(4, nullptr);
  uint64_t off = 0;
  // From 10 bytes into the second huge page to its end: one folio.
  const int64_t start = static_cast<int64_t>(HPAGE_PMD_SIZE) + 10;
  ASSERT_EQ(memfd_pin_folios(f.get(), start, 2 * HPAGE_PMD_SIZE - 1, folios.data(), 4, &off), 1);
  EXPECT_EQ(off, 10u);
  EXPECT_TRUE(folio_test_hugetlb(folios[0]));
  EXPECT_EQ(folios[0]->page.index(), HPAGE_PMD_NR);
  EXPECT_EQ(folio_pincount(folios[0]), 1);
  EXPECT_EQ(pools.counts(HugetlbPools::kPmdIndex).free_huge_pages, 1u);
  // The whole file: the existing folio again, and the first one allocated.
  std::vector<Folio*> all(4, nullptr);
  ASSERT_EQ(memfd_pin_folios(f.get(), 0, 2 * HPAGE_PMD_SIZE - 1, all.data(), 4, &off), 2);
  EXPECT_EQ(off, 0u);
  EXPECT_EQ(all[1], folios[0]);
  EXPECT_EQ(folio_pincount(folios[0]), 2);
  EXPECT_EQ(pools.counts(HugetlbPools::kPmdIndex).free_huge_pages, 0u);
  unpin_folios(std::span<Folio* const>(all.data(), 2));
  unpin_folio(folios[0]);
  EXPECT_VM_VALID(m.vm);
}

TEST_F(MemfdPin, AnEmptyHugetlbPoolIsEnomemWithNothingPinned) {
  auto f = File::create(m.vm, FsType::kHugetlbfs, "memfd:huge", 4 * HPAGE_PMD_SIZE);
  std::vector<Folio*> folios(4, nullptr);
  uint64_t off = 0;
  EXPECT_EQ(memfd_pin_folios(f.get(), 0, 4 * HPAGE_PMD_SIZE - 1, folios.data(), 4, &off), -ENOMEM);
  EXPECT_EQ(acquired(), m.ms->node(0).stats().get(NR_FOLL_PIN_RELEASED));
  EXPECT_EQ(m.ms->pin_owners().nr_folios(), 0u);
  f->truncate(0).value();
  EXPECT_VM_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
