// dmirror: the HMM test device of the kernel's lib/test_hmm.c.
//
// A DmirrorDevice is one /dev/hmm_dmirrorN: device memory (ZONE_DEVICE
// chunks of the machine's device space, private or coherent) with a free
// list, grown a chunk at a time. A Dmirror is one open file of it: it
// mirrors the opening process's address space in its own page table,
// filled through hmm_range_fault under the interval-notifier protocol
// (KERNEL-SPEC 9.3), and offers the driver's ioctls (KERNEL-SPEC 10.3):
//
//   READ / WRITE        device access through the mirror: a missing (or,
//                       for WRITE, read-only) entry is faulted in with
//                       hmm_range_fault, 64 pages per call; cmd.faults
//                       counts the fault rounds
//   MIGRATE_TO_DEV      migrate_vma of system pages into device memory,
//                       then READ the range back
//   MIGRATE_TO_SYS      migrate_vma of this device's pages back to RAM
//   SNAPSHOT            one byte per page describing the CPU mapping
//                       (HMM_DMIRROR_PROT_*), without faulting
//   EXCLUSIVE           make_device_exclusive_range + an atomic mapping
//   CHECK_EXCLUSIVE     -EPERM while any page is still mapped atomically
//   RELEASE             evict every chunk of the device (migrate_device_range)
//
// Device-private pages keep their contents in their own frames (the frame
// store covers the device space), so no backing page is needed; coherent
// pages are CPU-addressable and mapped by normal PTEs.
//
// Thread safety: a Dmirror's mutex guards its page table; the device reads
// and writes frames only under it, and the invalidate callback takes it, so
// once an invalidation returns the device no longer touches the range.
// A DmirrorDevice's lock guards its free list and counters. Commands on one
// Dmirror may run from several threads (hmm-tests' anon_teardown).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/base/thread_annotations.h"
#include "pinmm/base/types.h"
#include "pinmm/base/validate.h"
#include "pinmm/hmm/hmm.h"
#include "pinmm/migrate/migrate_device.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/mmu_notifier.h"

namespace pinmm {

class MemorySystem;
class Dmirror;

// lib/test_hmm_uapi.h.
enum HmmDmirrorIoctl : unsigned {
  HMM_DMIRROR_READ = 0,
  HMM_DMIRROR_WRITE = 1,
  HMM_DMIRROR_MIGRATE_TO_DEV = 2,
  HMM_DMIRROR_MIGRATE_TO_SYS = 3,
  HMM_DMIRROR_SNAPSHOT = 4,
  HMM_DMIRROR_EXCLUSIVE = 5,
  HMM_DMIRROR_CHECK_EXCLUSIVE = 6,
  HMM_DMIRROR_RELEASE = 7,
};

enum HmmDmirrorProt : uint8_t {
  HMM_DMIRROR_PROT_ERROR = 0xFF,
  HMM_DMIRROR_PROT_NONE = 0x00,
  HMM_DMIRROR_PROT_READ = 0x01,
  HMM_DMIRROR_PROT_WRITE = 0x02,
  HMM_DMIRROR_PROT_PMD = 0x04,
  HMM_DMIRROR_PROT_PUD = 0x08,
  HMM_DMIRROR_PROT_ZERO = 0x10,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL = 0x20,
  HMM_DMIRROR_PROT_DEV_PRIVATE_REMOTE = 0x30,
  HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL = 0x40,
  HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE = 0x50,
};

// struct hmm_dmirror_cmd; `ptr` is the caller's buffer of npages pages
// (npages bytes for SNAPSHOT).
struct HmmDmirrorCmd {
  uint64_t addr = 0;
  void* ptr = nullptr;
  uint64_t npages = 0;
  uint64_t cpages = 0;  // out
  uint64_t faults = 0;  // out
};

enum class DmirrorMemory : uint8_t { kPrivate, kCoherent };

// One device and its memory (struct dmirror_device).
class DmirrorDevice {
 public:
  // `chunk` pages are added per memremap_pages (default: one section).
  DmirrorDevice(MemorySystem& ms, DmirrorMemory type, int id, int nid = 0,
                PageCount chunk = PageCount(0));
  ~DmirrorDevice();
  DmirrorDevice(const DmirrorDevice&) = delete;
  DmirrorDevice& operator=(const DmirrorDevice&) = delete;

  MemorySystem& ms() const { return ms_; }
  DmirrorMemory type() const { return type_; }
  int id() const { return id_; }
  // The pgmap owner every chunk carries (dev_private_owner, pgmap_owner).
  const void* owner() const { return this; }
  unsigned select_flags() const {
    return type_ == DmirrorMemory::kPrivate ? MIGRATE_VMA_SELECT_DEVICE_PRIVATE
                                            : MIGRATE_VMA_SELECT_DEVICE_COHERENT;
  }

  // dmirror_devmem_alloc_page: a page handed out by zone_device_page_init
  // (refcount 1, locked), adding a chunk when the free list is empty;
  // nullptr if the device space is full.
  Page* dmirror_devmem_alloc_page() EXCLUDES(lock_, devmem_lock_);
  // Whether `page` is one of this device's.
  bool owns(const Page* page) const;
  // RELEASE: every chunk evicted to RAM and unregistered.
  void dmirror_device_remove_chunks() EXCLUDES(lock_, devmem_lock_);
  // The open file whose pages these are (for migrate_to_ram).
  void set_page_mirror(const Page* page, Dmirror* mirror);
  Dmirror* page_mirror(const Page* page) const;

  // Pages handed out and returned (calloc / cfree), chunks registered.
  uint64_t nr_allocated() const EXCLUDES(lock_);
  uint64_t nr_freed() const EXCLUDES(lock_);
  size_t nr_chunks() const EXCLUDES(devmem_lock_);
  // Evicts every chunk's pages back to RAM (what closing a mirror does).
  void evict_all() EXCLUDES(devmem_lock_);
  // Every free-list page is a free page (refcount 0) of a live chunk, each
  // page of a chunk is either free or handed out, and the counters agree:
  // handed-out pages = allocated - freed - freed while their chunk was
  // being removed.
  ValidationReport validate() const EXCLUDES(lock_, devmem_lock_);

 private:
  struct Chunk {
    DevPagemap pagemap;
    DmirrorDevice* device = nullptr;
    std::atomic<bool> remove{false};
    std::vector<std::atomic<Dmirror*>> mirrors;  // per page
  };
  static void dmirror_devmem_free(Page* page);
  static uint32_t dmirror_devmem_fault(VmFaultInfo& vmf);
  static const DevPagemapOps kOps;

  Chunk* chunk_of(const Page* page) const;
  Result<void> dmirror_allocate_chunk() REQUIRES(devmem_lock_) EXCLUDES(lock_);
  void dmirror_device_evict_chunk(Chunk& chunk);

  MemorySystem& ms_;
  const DmirrorMemory type_;
  const int id_;
  const int nid_;
  const PageCount chunk_pages_;
  mutable Mutex devmem_lock_{LockRank::kDevmemLock};
  std::vector<std::unique_ptr<Chunk>> chunks_ GUARDED_BY(devmem_lock_);
  mutable SpinLock lock_{LockRank::kLeaf};
  std::vector<Page*> free_pages_ GUARDED_BY(lock_);
  uint64_t calloc_ GUARDED_BY(lock_) = 0;
  uint64_t cfree_ GUARDED_BY(lock_) = 0;
  uint64_t freed_on_removal_ GUARDED_BY(lock_) = 0;  // freed while their chunk went away
};

// One open file of a DmirrorDevice, mirroring `mm` (struct dmirror).
class Dmirror : public MmuIntervalNotifierOps {
 public:
  // dmirror_fops_open: an interval subscription over the whole address
  // space. ok() is false if it failed (the mm is exiting).
  Dmirror(DmirrorDevice& device, Mm& mm);
  // dmirror_fops_release: the subscription goes and the device's memory is
  // evicted to RAM.
  ~Dmirror() override;
  Dmirror(const Dmirror&) = delete;
  Dmirror& operator=(const Dmirror&) = delete;
  bool ok() const { return insert_rc_ == 0; }

  // dmirror_fops_unlocked_ioctl: -EINVAL for an unaligned address, an empty
  // or overflowing range, or an unknown command; otherwise the command's
  // result.
  int ioctl(unsigned command, HmmDmirrorCmd* cmd);

  DmirrorDevice& device() const { return device_; }
  Mm& mm() const { return mm_; }

  // Test hooks: how many entries the mirror holds, and invalidations seen.
  size_t nr_mirrored() const EXCLUDES(mutex_);
  uint64_t nr_invalidations() const { return invalidations_.load(std::memory_order_relaxed); }

  // The device-page fault path (dmirror_devmem_fault) and eviction erase
  // the mirror's entry for a page going back to RAM.
  void erase(VirtAddr addr) EXCLUDES(mutex_);

 private:
  enum Tag : uint8_t { kRead = 0, kAtomic = 1, kWrite = 3 };
  struct Entry {
    Page* page;
    Tag tag;
  };

  bool invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange& range,
                  uint64_t cur_seq) override;

  int dmirror_read(HmmDmirrorCmd* cmd);
  int dmirror_write(HmmDmirrorCmd* cmd);
  int dmirror_migrate_to_device(HmmDmirrorCmd* cmd);
  int dmirror_migrate_to_system(HmmDmirrorCmd* cmd);
  int dmirror_snapshot(HmmDmirrorCmd* cmd);
  int dmirror_exclusive(HmmDmirrorCmd* cmd);
  int dmirror_check_atomic(const HmmDmirrorCmd& cmd) EXCLUDES(mutex_);

  // dmirror_fault: hmm_range_fault in 64-page pieces, storing the results.
  int dmirror_fault(VirtAddr start, VirtAddr end, bool write);
  int dmirror_range_fault(HmmRange* range);
  // Copies between the mirror's pages and `buf`; -ENOENT at the first page
  // without (or, writing, without a writable) entry; *done counts pages.
  int dmirror_do_read(VirtAddr start, VirtAddr end, std::byte* buf, uint64_t* done)
      REQUIRES(mutex_);
  int dmirror_do_write(VirtAddr start, VirtAddr end, const std::byte* buf, uint64_t* done)
      REQUIRES(mutex_);
  // Reads the range back into cmd->ptr (after a migration or EXCLUSIVE).
  int read_back(HmmDmirrorCmd* cmd) EXCLUDES(mutex_);
  uint8_t dmirror_mkentry(uint64_t hmm_pfn) const;

  // migrate_vma over cmd's range in 64-page batches within each VMA (mmap
  // lock held): setup with `select`, then `between` (allocate, copy,
  // migrate_vma_pages …), then finalize. -EINVAL at a hole or an unreadable
  // VMA, or setup's error.
  int migrate_batches(const HmmDmirrorCmd& cmd, unsigned select,
                      const std::function<void(MigrateVma&)>& between);
  // migrate_vma steps for MIGRATE_TO_DEV.
  void dmirror_migrate_alloc_and_copy(MigrateVma& args);
  void dmirror_migrate_finalize_and_map(const MigrateVma& args) EXCLUDES(mutex_);

  friend class DmirrorDevice;
  // dmirror_devmem_fault_alloc_and_copy: RAM pages for this device's pages.
  void dmirror_devmem_fault_alloc_and_copy(MigrateVma& args);

  DmirrorDevice& device_;
  Mm& mm_;
  MmuIntervalNotifier notifier_;
  int insert_rc_ = 0;
  mutable Mutex mutex_{LockRank::kNotifierLock};
  std::map<uint64_t, Entry> pt_ GUARDED_BY(mutex_);  // virtual page number → entry
  std::atomic<uint64_t> invalidations_{0};
};

}  // namespace pinmm
