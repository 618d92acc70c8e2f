// hugetlb pools: pre-allocated huge pages per size and node.
//
// Linux counterpart: struct hstate and the pool side of mm/hugetlb.c
// (hugepagesz=/hugepages= at boot, dequeue_hugetlb_folio_node,
// free_huge_folio). pinmm has two hstates, 2 MiB (order 9) and 1 GiB
// (order 18). 2 MiB pages are allocated from the buddy allocator at boot
// (GFP_HIGHUSER | __GFP_THISNODE, counted in htlb_buddy_alloc_success/fail);
// 1 GiB pages are reserved from boot memory, top-down in the node's kernel
// zone like memblock. Free pool folios have refcount 0 and PageType kHugetlb.
// Faults and reservations are vm/'s business; this is the pool.
//
// Thread safety: pool lists and counts are guarded by hugetlb_lock.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pinmm/base/list.h"
#include "pinmm/base/locks.h"
#include "pinmm/phys/gfp.h"
#include "pinmm/phys/mmzone.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;

struct Hstate {
  unsigned order = 0;
  std::string name;                            // "hugepages-2048kB"
  std::vector<ListHead> free_lists;            // per node
  std::vector<uint64_t> nr_huge_pages_node;    // per node
  std::vector<uint64_t> free_huge_pages_node;  // per node
  uint64_t nr_huge_pages = 0;
  uint64_t free_huge_pages = 0;
  uint64_t resv_huge_pages = 0;

  uint64_t nr_pages_per_huge_page() const { return uint64_t{1} << order; }
};

struct HstateCounts {
  uint64_t nr_huge_pages = 0;
  uint64_t free_huge_pages = 0;
  uint64_t resv_huge_pages = 0;
  bool operator==(const HstateCounts&) const = default;
};

// hugetlb folio flags, in the head page's private word (the kernel's enum
// hugetlb_page_flags). HPG_migratable: an in-use folio that migration may
// isolate; set when a fault or the page cache starts using the folio,
// cleared while it is isolated and when it is freed.
enum HugetlbPageFlag : unsigned { HPG_migratable = 1 };
inline bool folio_test_hugetlb_migratable(const Folio* f) {
  return f->page.private_data() & (uint64_t{1} << HPG_migratable);
}
inline void folio_set_hugetlb_migratable(Folio* f) {
  page_detail::ref(f->page.private_).fetch_or(uint64_t{1} << HPG_migratable);
}
inline void folio_clear_hugetlb_migratable(Folio* f) {
  page_detail::ref(f->page.private_).fetch_and(~(uint64_t{1} << HPG_migratable));
}

class HugetlbPools {
 public:
  static constexpr unsigned kPmdIndex = 0;  // 2 MiB
  static constexpr unsigned kPudIndex = 1;  // 1 GiB

  explicit HugetlbPools(MemorySystem& ms);

  // The hstate for a huge page order (9 or 18), or nullptr.
  Hstate* hstate_for_order(unsigned order);
  Hstate& hstate(unsigned index) { return hstates_[index]; }

  // Boot: allocate `count` 2 MiB pages on `nid` from the buddy allocator.
  // Returns how many it got.
  uint64_t hugetlb_hstate_alloc_pages_onenode(unsigned index, int nid, uint64_t count)
      EXCLUDES(hugetlb_lock);
  // Boot: turn a reserved range of boot memory into a free gigantic folio.
  void add_bootmem_folio(unsigned index, Page* head) EXCLUDES(hugetlb_lock);

  // Takes a free folio of `h` from `nid` (any node if NUMA_NO_NODE); refcount
  // becomes 1. Inside a memalloc_pin scope, folios that may not be pinned
  // long-term (ZONE_MOVABLE, CMA) are skipped. nullptr if none.
  Folio* dequeue_hugetlb_folio_nodemask(Hstate& h, int nid) EXCLUDES(hugetlb_lock);
  // alloc_hugetlb_folio_nodemask for migration targets: a free folio from
  // `preferred_nid`, or, with `fallback`, from the other nodes of `nodemask`
  // (all nodes if nullptr), only while the pool has pages beyond its
  // reservations. nullptr otherwise (pinmm allocates no temporary surplus
  // folio; see docs/migrate.md).
  Folio* alloc_hugetlb_folio_nodemask(Hstate& h, int preferred_nid, const NodeMask* nodemask,
                                      bool fallback) EXCLUDES(hugetlb_lock);
  // The last reference to a hugetlb folio is gone: back to its pool.
  void free_huge_folio(Folio* folio) EXCLUDES(hugetlb_lock);
  // dissolve_free_hugetlb_folio: a free pool folio leaves the pool and goes
  // back to the buddy allocator in pieces (memory offlining, contiguous
  // allocation). 0 if the page is not (or no longer) hugetlb, or was
  // dissolved; -EBUSY if the folio is in use or the pool has no page beyond
  // its reservations to give.
  int dissolve_free_hugetlb_folio(Folio* folio) EXCLUDES(hugetlb_lock);
  // Every hugetlb folio starting in [start, end), stepping by the smallest
  // huge page size; stops at the first error.
  int dissolve_free_hugetlb_folios(Pfn start, Pfn end) EXCLUDES(hugetlb_lock);

  HstateCounts counts(unsigned index) const EXCLUDES(hugetlb_lock);
  HstateCounts counts_node(unsigned index, int nid) const EXCLUDES(hugetlb_lock);

  mutable Mutex hugetlb_lock{LockRank::kHugetlbLock};

 private:
  void enqueue_hugetlb_folio(Hstate& h, Folio* folio) REQUIRES(hugetlb_lock);
  // dequeue_hugetlb_folio_node_exact: a usable free folio of node `nid`.
  Folio* dequeue_hugetlb_folio_node_exact(Hstate& h, int nid, bool pin_scope)
      REQUIRES(hugetlb_lock);

  MemorySystem& ms_;
  std::array<Hstate, 2> hstates_;
};

}  // namespace pinmm
