// Simulated DMA devices that pin user memory: an RDMA NIC (long-term pins)
// and a direct-I/O request (short-term pins).
//
// RdmaNic models ib_umem_get / ib_umem_release (drivers/infiniband/core/
// umem.c): registering a memory region pins it with pin_user_pages_remote(
// FOLL_LONGTERM | FOLL_WRITE) under the mm's mmap lock, owned by the device
// and the region's label in the pin-owner table; deregistering unpins with
// unpin_user_pages_dirty_lock(dirty = true). Long-term pinning migrates the
// pages out of ZONE_MOVABLE and CMA first (unless the machine's long-term
// policy is in-place), which is what lets those blocks be offlined and the
// CMA areas allocated while the region stays registered.
//
// The NIC's DMA engine is a thread of its own that reads and writes the
// pinned frames directly, never through page tables: if a pinned page were
// migrated or freed under it, its writes would land in the wrong frame and
// the CPU would not see them (the data check in the tests).
//
// direct_io() is one O_DIRECT request: pin_user_pages_fast(FOLL_PIN
// [| FOLL_WRITE]) for the length of the transfer, copy, unpin (dirtying
// the pages it wrote), as iov_iter_extract_pages / bio_release_pages do.
//
// Thread safety: registration, deregistration and DMA calls may come from
// any thread; a region's pages are immutable while it is registered, and
// the region table is guarded by the NIC's lock (a driver mutex: DMA to a
// region copies frames under it, which takes no other lock).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "pinmm/base/errno.h"
#include "pinmm/base/locks.h"
#include "pinmm/base/types.h"
#include "pinmm/base/validate.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;
class Mm;

class RdmaNic {
 public:
  RdmaNic(MemorySystem& ms, std::string name);
  // Stops the engine and deregisters every region.
  ~RdmaNic();
  RdmaNic(const RdmaNic&) = delete;
  RdmaNic& operator=(const RdmaNic&) = delete;

  const std::string& name() const { return name_; }

  // ib_umem_get: [addr, addr + len) of `mm` (page aligned) pinned for
  // long-term DMA. Returns the region's key. EINVAL: unaligned or empty;
  // other errnos are pin_user_pages_remote's (EFAULT, ENOMEM …); a partial
  // pin is undone and is EFAULT.
  Result<uint32_t> reg_mr(Mm& mm, VirtAddr addr, uint64_t len, std::string label) EXCLUDES(lock_);
  // ib_umem_release. ENOENT for an unknown key.
  Result<void> dereg_mr(uint32_t key) EXCLUDES(lock_);

  // One DMA transfer into / out of a region, straight to its frames.
  // EINVAL: outside the region; ENOENT: unknown key.
  Result<void> dma_write(uint32_t key, uint64_t offset, std::span<const std::byte> data)
      EXCLUDES(lock_);
  Result<void> dma_read(uint32_t key, uint64_t offset, std::span<std::byte> out) EXCLUDES(lock_);

  // The DMA engine: a thread running queued work until stopped. Work runs
  // in order; drain() waits until the queue is empty.
  void start_engine();
  void submit(std::function<void()> work);
  void drain();
  void stop_engine();

  // The pages of a region (for tests and reports).
  std::vector<Page*> region_pages(uint32_t key) const EXCLUDES(lock_);
  size_t nr_regions() const EXCLUDES(lock_);
  // Every page of every region is pinned (folio_maybe_dma_pinned) and, with
  // the machine's long-term policy "migrate", long-term pinnable.
  ValidationReport validate() const EXCLUDES(lock_);

 private:
  struct Region {
    std::string label;
    std::vector<Page*> pages;
  };
  // The frame bytes for [offset, offset + n) of region r, page by page.
  template <typename Fn>
  Result<void> for_each_chunk(uint32_t key, uint64_t offset, uint64_t n, Fn fn) EXCLUDES(lock_);
  void engine_loop();

  MemorySystem& ms_;
  const std::string name_;
  mutable Mutex lock_{LockRank::kDriver};
  std::map<uint32_t, Region> regions_ GUARDED_BY(lock_);
  uint32_t next_key_ GUARDED_BY(lock_) = 1;

  Mutex queue_lock_{LockRank::kLeaf};  // never held while work runs
  std::condition_variable_any queue_cv_;
  std::deque<std::function<void()>> queue_ GUARDED_BY(queue_lock_);
  bool stopping_ GUARDED_BY(queue_lock_) = false;
  unsigned running_ GUARDED_BY(queue_lock_) = 0;
  std::thread engine_;
};

// One O_DIRECT transfer between `buf` and [addr, addr + len) of the
// current task's mm: pinned (FOLL_PIN, FOLL_WRITE when reading from the
// "disk" into memory) for the length of the copy only. Returns the bytes
// transferred, or the pin's errno (EFAULT for a partial pin, after undoing
// it). `label` names the pins in the owner table.
Result<uint64_t> direct_io(MemorySystem& ms, VirtAddr addr, std::span<std::byte> buf,
                           bool to_memory, const std::string& label);

}  // namespace pinmm
