// RdmaNic and direct_io: long-term pins migrated out of ZONE_MOVABLE and
// CMA with the device as owner; DMA straight into the pinned frames while
// the machine migrates, offlines and allocates CMA around them; short-term
// O_DIRECT pins.
#include "pinmm/devices/rdma_nic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "pinmm/cma/cma.h"
#include "pinmm/gup/pin.h"
#include "pinmm/hotplug/memory_hotplug.h"
#include "pinmm/phys/pin_owners.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

// 64 MiB, the upper 32 MiB movable, an 8 MiB CMA area: user memory lands in
// ZONE_MOVABLE and CMA first.
MachineConfig nic_machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(64), Bytes::MiB(32));
  c.cma.push_back({"reserved", Bytes::MiB(8), 0, 0});
  return c;
}

class RdmaNicTest : public ::testing::Test {
 protected:
  RdmaNicTest() : m(nic_machine()), mm(Mm::create(m.vm)), nic(*m.ms, "rdma0") {
    current().set_mm(mm.get());
  }
  ~RdmaNicTest() override { current().set_mm(nullptr); }

  testing::VmMachine m;
  MmHandle mm;
  RdmaNic nic;
};

TEST_F(RdmaNicTest, RegistrationPinsLongTermOutsideMovableWithTheDeviceAsOwner) {
  constexpr uint64_t kPages = 512;
  const VirtAddr a = testing::map_pattern(*mm, kPages, 3);
  uint64_t movable_before = 0;
  for (uint64_t i = 0; i < kPages; ++i)
    movable_before +=
        !folio_is_longterm_pinnable(page_folio(testing::page_at(*mm, a + i * PAGE_SIZE)));
  EXPECT_GT(movable_before, 0u) << "the test needs pages in ZONE_MOVABLE or CMA";
  auto key = nic.reg_mr(*mm, a, kPages * PAGE_SIZE, "mr1");
  ASSERT_TRUE(key.ok()) << key.error().name();
  const std::vector<Page*> pages = nic.region_pages(*key);
  ASSERT_EQ(pages.size(), kPages);
  for (uint64_t i = 0; i < kPages; ++i) {
    Folio* f = page_folio(pages[i]);
    ASSERT_TRUE(folio_is_longterm_pinnable(f)) << i;
    ASSERT_TRUE(folio_maybe_dma_pinned(f)) << i;
    ASSERT_EQ(pages[i], testing::page_at(*mm, a + i * PAGE_SIZE)) << "the pin is the mapped page";
  }
  const auto owners = m.ms->pin_owners().owners_of(page_folio(pages[0]));
  ASSERT_EQ(owners.size(), 1u);
  EXPECT_EQ(owners[0].kind, PinOwnerKind::kDevice);
  EXPECT_EQ(owners[0].name, "rdma0");
  EXPECT_EQ(owners[0].label, "mr1");
  EXPECT_TRUE(owners[0].longterm);
  testing::expect_pattern(*mm, a, kPages, 3);
  EXPECT_VALID(nic);

  // DMA into the region shows through the CPU mapping.
  const uint64_t stamp = 0xfeedface;
  ASSERT_TRUE(nic.dma_write(*key, 5 * PAGE_SIZE, std::as_bytes(std::span(&stamp, 1))).ok());
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 5 * PAGE_SIZE), stamp);
  EXPECT_EQ(nic.dma_write(*key, kPages * PAGE_SIZE, std::as_bytes(std::span(&stamp, 1))).error(),
            Errno(EINVAL));
  ASSERT_TRUE(nic.dereg_mr(*key).ok());
  EXPECT_EQ(nic.dereg_mr(*key).error(), Errno(ENOENT));
  for (Page* p : pages)
    ASSERT_FALSE(folio_maybe_dma_pinned(page_folio(p)));
  EXPECT_TRUE(folio_test_dirty(page_folio(pages[0]))) << "unpin_user_pages_dirty_lock";
  EXPECT_TRUE(m.ms->pin_owners().owners_of(page_folio(pages[0])).empty());
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

TEST_F(RdmaNicTest, BadRegistrations) {
  EXPECT_EQ(nic.reg_mr(*mm, VirtAddr(0x1001), PAGE_SIZE, "x").error(), Errno(EINVAL));
  EXPECT_EQ(nic.reg_mr(*mm, VirtAddr(0x1000), 0, "x").error(), Errno(EINVAL));
  EXPECT_EQ(nic.reg_mr(*mm, VirtAddr(0x1000), PAGE_SIZE, "x").error(), Errno(EFAULT));
  const VirtAddr a = testing::map_anon(*mm, 4 * PAGE_SIZE, PROT_READ);
  EXPECT_EQ(nic.reg_mr(*mm, a, 4 * PAGE_SIZE, "ro").error(), Errno(EFAULT))
      << "FOLL_WRITE on a read-only mapping";
  EXPECT_EQ(nic.nr_regions(), 0u);
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// The NIC's engine writes a stamp into every page of its region, round
// after round, reading each back through the pins, while the CPU side
// migrates other memory, offlines every movable block and allocates the
// whole CMA area. No write is ever lost, and offlining and CMA succeed
// because the pins were taken outside ZONE_MOVABLE and CMA.
TEST_F(RdmaNicTest, ConcurrentDmaDuringMigrationOfflineAndCma) {
  constexpr uint64_t kPages = 256;
  const VirtAddr a = testing::map_pattern(*mm, kPages, 1);
  const VirtAddr other = testing::map_pattern(*mm, 1024, 2);  // what offlining must move
  auto key = nic.reg_mr(*mm, a, kPages * PAGE_SIZE, "mr1");
  ASSERT_TRUE(key.ok());
  nic.start_engine();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0}, lost{0};
  std::function<void()> round = [&] {
    const uint64_t r = rounds.load() + 1;
    for (uint64_t i = 0; i < kPages; ++i) {
      const uint64_t v = (r << 32) | i;
      uint64_t back = 0;
      (void)nic.dma_write(*key, i * PAGE_SIZE + 8, std::as_bytes(std::span(&v, 1)));
      (void)nic.dma_read(*key, i * PAGE_SIZE + 8, std::as_writable_bytes(std::span(&back, 1)));
      if (back != v) lost.fetch_add(1);
    }
    rounds.store(r);
    if (!stop.load()) nic.submit(round);
  };
  nic.submit(round);

  MemoryHotplug hp(*m.ms);
  CmaAreas cma(*m.ms);
  std::vector<uint64_t> offlined;
  for (const MemoryBlock& b : m.ms->memory_blocks()) {
    if (b.present && b.state == MemoryBlockState::kOnline && b.zone == ZONE_MOVABLE) {
      ASSERT_EQ(hp.state_store(b.id, "offline"), 0) << "memory" << b.id;
      offlined.push_back(b.id);
    }
  }
  EXPECT_FALSE(offlined.empty());
  Cma* area = cma.find("reserved");
  ASSERT_NE(area, nullptr);
  Page* got = cma.cma_alloc(area, area->count(), 0, true);
  ASSERT_NE(got, nullptr) << "the pins are outside CMA";
  const uint64_t rounds_during = rounds.load();
  stop.store(true);
  nic.drain();
  nic.stop_engine();
  EXPECT_GT(rounds.load(), 0u);
  EXPECT_EQ(lost.load(), 0u);
  EXPECT_VALID(nic);
  // The CPU sees the last round's stamps through its page tables.
  for (uint64_t i = 0; i < kPages; ++i)
    ASSERT_EQ(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE + 8), (rounds.load() << 32) | i) << i;
  testing::expect_pattern(*mm, other, 1024, 2);
  EXPECT_TRUE(cma.cma_release(area, got, area->count()));
  for (uint64_t id : offlined)
    ASSERT_EQ(hp.state_store(id, "online_movable"), 0);
  ASSERT_TRUE(nic.dereg_mr(*key).ok());
  (void)rounds_during;
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

// O_DIRECT: pinned only for the copy; a read into memory dirties the page.
TEST_F(RdmaNicTest, DirectIoPinsForTheLengthOfOneTransfer) {
  const VirtAddr a = testing::map_pattern(*mm, 4, 9);
  std::vector<std::byte> disk(2 * PAGE_SIZE, std::byte{0x5a});
  auto r = direct_io(*m.ms, a + 100, disk, /*to_memory=*/true, "O_DIRECT read");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, disk.size());
  EXPECT_EQ(testing::read_byte(*mm, a + 100), 0x5a);
  EXPECT_EQ(testing::read_byte(*mm, a + 2 * PAGE_SIZE + 99), 0x5a);
  EXPECT_EQ(*read_user<uint64_t>(*mm, a + 3 * PAGE_SIZE), 9u * 100000 + 3);
  for (uint64_t i = 0; i < 3; ++i)
    EXPECT_FALSE(folio_maybe_dma_pinned(page_folio(testing::page_at(*mm, a + i * PAGE_SIZE))));
  std::vector<std::byte> out(8);
  ASSERT_TRUE(direct_io(*m.ms, a + 3 * PAGE_SIZE, out, /*to_memory=*/false, "O_DIRECT write").ok());
  uint64_t v = 0;
  std::memcpy(&v, out.data(), 8);
  EXPECT_EQ(v, 9u * 100000 + 3);
  EXPECT_EQ(direct_io(*m.ms, VirtAddr(0x1000), out, false, "x").error(), Errno(EFAULT));
  EXPECT_ALL_LAYERS_VALID(m.vm);
}

}  // namespace
}  // namespace pinmm
