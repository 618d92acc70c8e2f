// The composition root (machine.h): one boot wires every subsystem to the
// same physical memory, a bad machine is the boot's errno, and the audit
// covers every layer.
#include "pinmm/machine/machine.h"

#include <gtest/gtest.h>

#include "pinmm/base/task.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/lru.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/mmap.h"

namespace pinmm {
namespace {

MachineConfig small() {
  MachineConfig c = MachineConfig::uniform(Bytes::MiB(512), 1, Bytes::MiB(256), Bytes::MiB(128));
  c.cma.push_back({"reserved", Bytes::MiB(8), 0});
  c.hotplug.space = Bytes::MiB(128);
  return c;
}

TEST(Machine, BootWiresEverySubsystemToOneMemory) {
  auto booted = Machine::boot(small());
  ASSERT_TRUE(booted.ok());
  Machine& m = **booted;
  EXPECT_EQ(&m.vm().ms(), &m.ms());
  EXPECT_EQ(m.config().total_memory(), Bytes::MiB(512));
  EXPECT_EQ(m.hotplug().state_show(2), "online");  // the first movable block
  ASSERT_EQ(m.cma().size(), 1u);
  EXPECT_EQ(m.cma().area(0).count(), Bytes::MiB(8).pages().value());
  const auto r = m.validate();
  EXPECT_TRUE(r.ok()) << r.to_string();
}

TEST(Machine, AMachineThatCannotBootIsItsErrno) {
  MachineConfig c = small();
  c.cma.push_back({"huge", Bytes::GiB(4), 0});  // larger than the node
  auto booted = Machine::boot(c);
  ASSERT_FALSE(booted.ok());
  EXPECT_EQ(booted.error(), Errno(EINVAL));
}

// used_pages() counts what anything holds: a kernel allocation and a
// process's pages while they live, nothing once they are gone.
TEST(Machine, UsedPagesFollowsAllocations) {
  auto m = std::move(Machine::boot(small())).value();
  const int64_t at_boot = m->used_pages();
  Page* k = kmalloc_pages(m->ms(), Order(2), "test", GFP_KERNEL, 0);
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(m->used_pages(), at_boot + 4);
  kfree_pages(k);
  EXPECT_EQ(m->used_pages(), at_boot);
  {
    Task t(100, "p");
    CurrentTask current(t);
    MmHandle mm = Mm::create(m->vm());
    t.set_mm(mm.get());
    auto a = vm_mmap(*mm, VirtAddr(0), 16 * PAGE_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(write_user<uint64_t>(*mm, *a, 1).ok());
    EXPECT_GT(m->used_pages(), at_boot);
    t.set_mm(nullptr);
  }
  lru_add_drain_all(m->ms());    // the folio's last reference was the LRU add batch's
  const auto r = m->validate();  // waits for the page tables' RCU frees
  EXPECT_TRUE(r.ok()) << r.to_string();
  EXPECT_EQ(m->used_pages(), at_boot);
}

// The audit reaches the layers above phys: a CMA pageblock that lost its
// migratetype is CMA's problem, and Machine::validate() reports it.
TEST(Machine, ValidateCoversCma) {
  auto m = std::move(Machine::boot(small())).value();
  const Pfn base = m->cma().area(0).base_pfn();
  m->ms().pageblock_flags().set(base, MIGRATE_MOVABLE);
  const auto broken = m->validate();
  m->ms().pageblock_flags().set(base, MIGRATE_CMA);
  EXPECT_FALSE(broken.ok());
  EXPECT_NE(broken.to_string().find("CMA area 'reserved'"), std::string::npos)
      << broken.to_string();
  EXPECT_TRUE(m->validate().ok());
}

}  // namespace
}  // namespace pinmm
