// CMA, the Contiguous Memory Allocator, and alloc_contig_range.
//
// Linux counterpart: mm/cma.c (struct cma, cma_alloc, cma_release, the
// per-area bitmap and its sysfs counters under /sys/kernel/mm/cma/<name>/)
// and alloc_contig_range / free_contig_range / alloc_contig_pages of
// mm/page_alloc.c with the compaction scanner it borrows
// (isolate_migratepages_range). KERNEL-SPEC 8 is the reference. pinmm keeps
// alloc_contig_range here, above migrate/, because it migrates.
//
// A CMA area is a boot reservation (MachineConfig::cma) whose pageblocks
// are MIGRATE_CMA: movable allocations borrow its free pages (the buddy
// allocator's balancing rule), and cma_alloc takes a range back by
// isolating it, migrating what lives there (MR_CONTIG_RANGE) and grabbing
// the freed pages. A pinned page in the range makes the attempt fail with
// -EBUSY after 5 tries, and cma_alloc moves on to the next aligned slot.
// Each failed attempt's blockers (with their pin owners) go to the
// machine's blocker log, and CmaAllocResult says why the call failed.
//
// Not modelled: reclaim_clean_pages_from_list (pinmm's files keep no copy
// on disk to read back, so clean page-cache pages are migrated instead;
// nr_reclaimed is always 0), per-CPU page lists (nothing to drain), and
// alloc_contig_range's undo of isolation after start_isolate_page_range
// failed (6.12 then "undoes" blocks another caller had isolated; pinmm
// leaves them alone).
//
// Thread safety: an area's bitmap is guarded by its lock (cma->lock);
// alloc_contig_range calls are serialised by cma_mutex, as cma_alloc's
// are in the kernel. Allocation and freeing of ordinary pages, faults and
// migration run concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pinmm/base/locks.h"
#include "pinmm/base/validate.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/gfp.h"
#include "pinmm/phys/memory_system.h"

namespace pinmm {

// alloc_contig_range (KERNEL-SPEC 8.3): allocates exactly [start, end) of
// one zone, whose pageblocks are all of `migratetype` (MIGRATE_MOVABLE or
// MIGRATE_CMA). 0: every page is the caller's (order-0 pages with refcount
// 1, or with __GFP_COMP one folio when the range is a power of two and
// aligned; free with free_contig_range). -EINVAL for gfp flags beyond the
// reclaim and action modifiers it accepts, -EBUSY when the range would not
// empty (isolation failed, 5 tries without progress, or a page still busy),
// -EINTR on a fatal signal, -ENOMEM when migration targets ran out.
// `blocked` (optional) gets the pages that kept it from succeeding.
// Emits mm_alloc_contig_migrate_range_info.
int alloc_contig_range(MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype, Gfp gfp,
                       BlockedOperation* blocked = nullptr);
// Frees what alloc_contig_range gave: one folio, or nr order-0 pages.
void free_contig_range(MemorySystem& ms, Pfn pfn, PageCount nr);
// alloc_contig_pages: the first naturally aligned range of nr pages (for a
// power of two) in the zones `gfp` allows on `nid` (then the others) that
// alloc_contig_range can take; nullptr if none.
Page* alloc_contig_pages(MemorySystem& ms, PageCount nr, Gfp gfp, int nid);

// The sysfs counters of one area (/sys/kernel/mm/cma/<name>/).
struct CmaAreaStats {
  uint64_t alloc_pages_success = 0;
  uint64_t alloc_pages_fail = 0;
  uint64_t release_pages_success = 0;
  bool operator==(const CmaAreaStats&) const = default;
};

// Why a cma_alloc call failed, with what blocked each slot it tried.
struct CmaAllocResult {
  int err = 0;                // the last alloc_contig_range result (or -ENOMEM: no slot)
  uint64_t slots_tried = 0;   // alloc_contig_range calls
  uint64_t busy_retries = 0;  // -EBUSY slots skipped (cma_alloc_busy_retry)
  BlockedOperation blocked;   // blockers of every slot tried, when it failed
};

// struct cma: one area.
class Cma {
 public:
  explicit Cma(const CmaReservation& r);
  Cma(const Cma&) = delete;
  Cma& operator=(const Cma&) = delete;

  const std::string& name() const { return name_; }
  Pfn base_pfn() const { return base_pfn_; }
  uint64_t count() const { return count_; }  // pages
  unsigned order_per_bit() const { return order_per_bit_; }
  int nid() const { return nid_; }
  // cma_get_size in bytes.
  uint64_t size() const { return count_ << PAGE_SHIFT; }

  // Pages whose bitmap bits are set (allocated or being allocated).
  uint64_t used_pages() const EXCLUDES(lock_);
  // The longest run of clear bits, in pages (cma_debug_show_areas' "largest
  // free range").
  uint64_t largest_free_pages() const EXCLUDES(lock_);
  CmaAreaStats stats() const;

 private:
  friend class CmaAreas;
  uint64_t bitmap_maxno() const { return count_ >> order_per_bit_; }
  uint64_t pages_to_bits(uint64_t pages) const {
    const uint64_t per = uint64_t{1} << order_per_bit_;
    return (pages + per - 1) >> order_per_bit_;
  }
  uint64_t aligned_mask(unsigned align_order) const {
    return align_order <= order_per_bit_ ? 0 : (uint64_t{1} << (align_order - order_per_bit_)) - 1;
  }
  uint64_t aligned_offset(unsigned align_order) const {
    return (base_pfn_.value() & ((uint64_t{1} << align_order) - 1)) >> order_per_bit_;
  }
  // bitmap_find_next_zero_area_off, with the bitmap under lock_.
  uint64_t find_zero_area(uint64_t start, uint64_t nr, uint64_t mask, uint64_t offset) const
      REQUIRES(lock_);
  void set_bits(uint64_t first, uint64_t nr, bool value) REQUIRES(lock_);
  void clear_bitmap(Pfn pfn, uint64_t count) EXCLUDES(lock_);

  const std::string name_;
  const Pfn base_pfn_;
  const uint64_t count_;
  const unsigned order_per_bit_;
  const int nid_;
  mutable SpinLock lock_{LockRank::kCmaBitmap};
  std::vector<bool> bitmap_ GUARDED_BY(lock_);
  std::atomic<uint64_t> alloc_success_{0};
  std::atomic<uint64_t> alloc_fail_{0};
  std::atomic<uint64_t> release_success_{0};
};

// Every CMA area of a machine (cma_areas[]), activated from its boot
// reservations (cma_init_reserved_areas). One per machine.
class CmaAreas {
 public:
  explicit CmaAreas(MemorySystem& ms);
  CmaAreas(const CmaAreas&) = delete;
  CmaAreas& operator=(const CmaAreas&) = delete;

  MemorySystem& ms() const { return ms_; }
  size_t size() const { return areas_.size(); }
  Cma& area(size_t i) { return *areas_[i]; }
  const Cma& area(size_t i) const { return *areas_[i]; }
  // The area of that name, or nullptr.
  Cma* find(std::string_view name);

  // cma_alloc (KERNEL-SPEC 8.2): `count` pages aligned to 2^align pages.
  // nullptr for a null or empty area, count 0 or larger than the area
  // (nothing counted), or when every slot failed (cma_alloc_fail). The
  // first page on success (cma_alloc_success); the pages are order-0
  // pages with refcount 1. `result` (optional) says what happened.
  Page* cma_alloc(Cma* cma, uint64_t count, unsigned align, bool no_warn,
                  CmaAllocResult* result = nullptr) EXCLUDES(cma_mutex_);
  // cma_release: false if the pages do not belong to the area.
  bool cma_release(Cma* cma, const Page* pages, uint64_t count);

  // Each area's bitmap and its pages agree (a set bit's pages are in use
  // and not free; an area's pageblocks are CMA or isolated), and its
  // counters add up. At a quiescent point.
  ValidationReport validate() const;

 private:
  MemorySystem& ms_;
  std::vector<std::unique_ptr<Cma>> areas_;
  // cma_mutex: one alloc_contig_range at a time.
  Mutex cma_mutex_{LockRank::kCmaMutex};
};

}  // namespace pinmm
