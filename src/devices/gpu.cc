// gpu: hot ranges migrated in with migrate_vma, the rest mirrored.
#include "pinmm/devices/gpu.h"

#include <cerrno>
#include <vector>

namespace pinmm {

namespace {
// Rounds of migrate-to-RAM-and-retry for a write that met read-only pages
// of our own.
constexpr int kWriteRetries = 8;
}  // namespace

Gpu::Gpu(MemorySystem& ms, Mm& mm, std::string name, GpuOptions options)
    : name_(std::move(name)),
      options_(options),
      device_(std::make_unique<DmirrorDevice>(ms, DmirrorMemory::kPrivate, 0, 0, options.chunk)),
      mirror_(std::make_unique<Dmirror>(*device_, mm)) {}

void Gpu::account(VirtAddr addr, uint64_t size) {
  const uint64_t first = addr.value() / options_.range_size;
  const uint64_t last = (addr.value() + size - 1) / options_.range_size;
  for (uint64_t r = first; r <= last; ++r) {
    bool hot = false;
    {
      SpinGuard g(lock_);
      ++stats_.accesses;
      hot = ++heat_[r] == options_.hot_threshold;
    }
    if (!hot) continue;
    // Cooling starts over: the range is migrated in once per hot streak.
    std::vector<std::byte> bounce(options_.range_size);
    HmmDmirrorCmd cmd;
    cmd.addr = r * options_.range_size;
    cmd.ptr = bounce.data();
    cmd.npages = options_.range_size / PAGE_SIZE;
    // Partial success is the normal case (shared memory stays in RAM); a
    // range that cannot move at all is simply mirrored.
    (void)mirror_->ioctl(HMM_DMIRROR_MIGRATE_TO_DEV, &cmd);
    SpinGuard g(lock_);
    heat_[r] = 0;
    ++stats_.ranges_migrated;
    stats_.pages_migrated += cmd.cpages;
  }
}

int Gpu::transfer(unsigned op, VirtAddr addr, void* buf, uint64_t size) {
  if (size == 0 || size % PAGE_SIZE != 0 || !addr.is_page_aligned()) return -EINVAL;
  account(addr, size);
  HmmDmirrorCmd cmd;
  cmd.addr = addr.value();
  cmd.ptr = buf;
  cmd.npages = size / PAGE_SIZE;
  int rc = mirror_->ioctl(op, &cmd);
  uint64_t faults = cmd.faults;
  // hmm_range_fault reports our own device-private pages as they are,
  // without a fault: one left read-only (an mprotect downgraded its entry,
  // and restoring PROT_WRITE never upgrades a non-present entry) cannot be
  // made writable where it is. Bring the range back to RAM, where a write
  // fault can, and try again; migration is best effort (a page another
  // migration holds locked stays), hence a few rounds.
  for (int round = 0; rc == -EFAULT && op == HMM_DMIRROR_WRITE && round < kWriteRetries; ++round) {
    HmmDmirrorCmd back = cmd;
    (void)mirror_->ioctl(HMM_DMIRROR_MIGRATE_TO_SYS, &back);
    rc = mirror_->ioctl(op, &cmd);
    faults += cmd.faults;
  }
  SpinGuard g(lock_);
  stats_.mirror_faults += faults;
  return rc;
}

int Gpu::read(VirtAddr addr, std::span<std::byte> out) {
  return transfer(HMM_DMIRROR_READ, addr, out.data(), out.size());
}

int Gpu::write(VirtAddr addr, std::span<const std::byte> data) {
  // The mirror's WRITE copies from the buffer only.
  return transfer(HMM_DMIRROR_WRITE, addr, const_cast<std::byte*>(data.data()), data.size());
}

GpuStats Gpu::stats() const {
  SpinGuard g(lock_);
  return stats_;
}

uint64_t Gpu::resident_pages() const { return device_->nr_allocated() - device_->nr_freed(); }

}  // namespace pinmm
