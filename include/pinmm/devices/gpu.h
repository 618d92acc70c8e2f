// gpu: a device with private memory that runs "kernels" over a process's
// memory without pinning it: hot ranges are migrated into device memory
// with migrate_vma, the rest is reached through a mirror kept with
// hmm_range_fault (the way nouveau's and amdgpu's SVM support works).
//
// Built on dmirror's mechanism (devices/dmirror.h): the GPU owns a
// DmirrorDevice with device-private memory and one Dmirror for the process.
// Each access counts against its range (2 MiB by default); a range accessed
// `hot_threshold` times is migrated to the device (pages that cannot move,
// such as shared memory, stay in RAM and are mirrored). CPU faults on
// migrated pages bring them back (migrate_to_ram); the next hot streak
// migrates them in again. A write that meets one of its own pages left
// read-only by an mprotect (hmm_range_fault reports those without
// faulting, so dmirror answers -EFAULT) migrates the range back to RAM and
// is tried again (a few rounds: migration skips pages locked elsewhere).
//
// Thread safety: one GPU may be driven from several threads; accesses to
// the mirror follow dmirror's locking, and the hotness table has its own
// leaf lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "pinmm/base/locks.h"
#include "pinmm/devices/dmirror.h"

namespace pinmm {

struct GpuOptions {
  uint64_t range_size = HPAGE_PMD_SIZE;  // the unit of hotness and migration
  unsigned hot_threshold = 4;            // accesses before a range moves in
  PageCount chunk = PageCount(0);        // device memory per chunk (0: a section)
};

struct GpuStats {
  uint64_t accesses = 0;         // read/write calls, per range touched
  uint64_t ranges_migrated = 0;  // MIGRATE_TO_DEV calls
  uint64_t pages_migrated = 0;   // pages that moved in
  uint64_t mirror_faults = 0;    // hmm_range_fault rounds (dmirror's cmd.faults)
  bool operator==(const GpuStats&) const = default;
};

class Gpu {
 public:
  Gpu(MemorySystem& ms, Mm& mm, std::string name, GpuOptions options = {});
  Gpu(const Gpu&) = delete;
  Gpu& operator=(const Gpu&) = delete;

  const std::string& name() const { return name_; }

  // A GPU kernel reading or writing [addr, addr + size) of the process
  // (page aligned, size a multiple of pages). 0 or the mirror's errno
  // (-EFAULT without a VMA, -EPERM writing read-only memory, …).
  int read(VirtAddr addr, std::span<std::byte> out) EXCLUDES(lock_);
  int write(VirtAddr addr, std::span<const std::byte> data) EXCLUDES(lock_);

  GpuStats stats() const EXCLUDES(lock_);
  // Device pages holding process memory now.
  uint64_t resident_pages() const;
  DmirrorDevice& device() { return *device_; }
  Dmirror& mirror() { return *mirror_; }

 private:
  // Counts an access to every range [addr, addr + size) touches and
  // migrates those that became hot.
  void account(VirtAddr addr, uint64_t size) EXCLUDES(lock_);
  int transfer(unsigned op, VirtAddr addr, void* buf, uint64_t size) EXCLUDES(lock_);

  const std::string name_;
  const GpuOptions options_;
  std::unique_ptr<DmirrorDevice> device_;
  std::unique_ptr<Dmirror> mirror_;
  mutable SpinLock lock_{LockRank::kLeaf};
  std::map<uint64_t, unsigned> heat_ GUARDED_BY(lock_);  // range index → accesses
  GpuStats stats_ GUARDED_BY(lock_);
};

}  // namespace pinmm
