// A property: any sequence of CPU writes, device writes and reads, and
// migrations to device memory and back (whole ranges or parts, through
// either of two devices, private or coherent), leaves every page holding
// what was last written to it, whoever wrote it and wherever it now lives;
// and every layer's invariants hold at the end, with every device page
// back on its free list once the memory is unmapped.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <vector>

#include "pinmm/devices/dmirror.h"
#include "testing/migrate.h"
#include "testing/vm.h"

namespace pinmm {
namespace {

constexpr uint64_t kPages = 32;

MachineConfig machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(32));
  c.device_space = Bytes::MiB(8);
  return c;
}

enum Op : int { kCpuWrite, kDevWrite, kDevRead, kToDevice, kToSystem, kCpuRead, kNrOps };

RC_GTEST_PROP(DmirrorProperty, DataFollowsEveryMigration, ()) {
  const bool coherent = *rc::gen::arbitrary<bool>();
  testing::VmMachine m(machine());
  MmHandle mm = Mm::create(m.vm);
  current().set_mm(mm.get());
  const DmirrorMemory type = coherent ? DmirrorMemory::kCoherent : DmirrorMemory::kPrivate;
  {
    DmirrorDevice dev0(*m.ms, type, 0, 0, PageCount(512));
    DmirrorDevice dev1(*m.ms, type, 1, 0, PageCount(512));
    Dmirror fd0(dev0, *mm), fd1(dev1, *mm);
    Dmirror* fds[] = {&fd0, &fd1};
    const VirtAddr a = testing::map_anon(*mm, kPages * PAGE_SIZE);
    RC_ASSERT(do_madvise(*mm, a, kPages * PAGE_SIZE, MADV_NOHUGEPAGE).ok());
    std::vector<uint64_t> model(kPages, 0);
    uint64_t stamp = 0;
    const auto ops = *rc::gen::container<std::vector<std::tuple<int, int, int, int>>>(
        rc::gen::tuple(rc::gen::inRange(0, static_cast<int>(kNrOps)), rc::gen::inRange(0, 2),
                       rc::gen::inRange(0, static_cast<int>(kPages)),
                       rc::gen::inRange(1, static_cast<int>(kPages) + 1)));
    for (const auto& [op, dev, first, len] : ops) {
      const uint64_t start = static_cast<uint64_t>(first);
      const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(len), kPages - start);
      const VirtAddr at = a + start * PAGE_SIZE;
      std::vector<std::byte> buf(n * PAGE_SIZE);
      HmmDmirrorCmd cmd;
      cmd.addr = at.value();
      cmd.ptr = buf.data();
      cmd.npages = n;
      switch (op) {
        case kCpuWrite:
          for (uint64_t i = 0; i < n; ++i) {
            model[start + i] = ++stamp;
            RC_ASSERT(write_user<uint64_t>(*mm, at + i * PAGE_SIZE, stamp).ok());
          }
          break;
        case kDevWrite:
          for (uint64_t i = 0; i < n; ++i) {
            model[start + i] = ++stamp;
            std::memcpy(buf.data() + i * PAGE_SIZE, &stamp, sizeof stamp);
          }
          RC_ASSERT(fds[dev]->ioctl(HMM_DMIRROR_WRITE, &cmd) == 0);
          break;
        case kDevRead:
          RC_ASSERT(fds[dev]->ioctl(HMM_DMIRROR_READ, &cmd) == 0);
          for (uint64_t i = 0; i < n; ++i) {
            uint64_t v = 0;
            std::memcpy(&v, buf.data() + i * PAGE_SIZE, sizeof v);
            RC_ASSERT(v == model[start + i]);
          }
          break;
        case kToDevice:
          // Pages already in the other device's memory stay there (-ENOENT
          // when none of the range could move, as test_hmm reports it).
          (void)fds[dev]->ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
          break;
        case kToSystem:
          RC_ASSERT(fds[dev]->ioctl(HMM_DMIRROR_MIGRATE_TO_SYS, &cmd) == 0);
          break;
        default:
          for (uint64_t i = 0; i < n; ++i)
            RC_ASSERT(*read_user<uint64_t>(*mm, at + i * PAGE_SIZE) == model[start + i]);
          break;
      }
    }
    for (uint64_t i = 0; i < kPages; ++i)
      RC_ASSERT(*read_user<uint64_t>(*mm, a + i * PAGE_SIZE) == model[i]);
    RC_ASSERT(vm_munmap(*mm, a, kPages * PAGE_SIZE).ok());
    RC_ASSERT(dev0.validate().ok());
    RC_ASSERT(dev1.validate().ok());
    RC_ASSERT(dev0.nr_allocated() == dev0.nr_freed());
    RC_ASSERT(dev1.nr_allocated() == dev1.nr_freed());
  }
  mm.reset();
  current().set_mm(nullptr);
  RC_ASSERT(validate_vm(m.vm).ok());
  RC_ASSERT(m.ms->validate().ok());
}

}  // namespace
}  // namespace pinmm
