// Reverse mapping: from a folio to every entry that maps it.
//
// Linux counterpart: mm/rmap.c and include/linux/rmap.h. Anonymous folios
// point (mapping | PAGE_MAPPING_ANON) at an AnonVma shared by every VMA of
// a fork family; file folios point at their File's page cache, whose i_mmap
// lists the VMAs mapping the file. rmap_walk visits each VMA that may map a
// folio and page_vma_mapped_walk finds the entries there.
//
// pinmm's AnonVma is one object per fork family (the kernel's root
// anon_vma) listing every VMA of the family: a walk may visit VMAs that map
// a sibling's COW copy instead and simply finds no entry for this folio
// there, as the kernel's walk also checks.
//
// Mapcounts are zero-based: page->mapcount counts PTE mappings of a page;
// a large folio's entire_mapcount counts PMD/PUD mappings, large_mapcount
// all mappings, nr_pages_mapped the pages with a PTE mapping. The
// nr_anon_pages / nr_mapped / nr_anon_transparent_hugepages node counters
// count pages that are mapped at all, as the kernel's do.
//
// PageAnonExclusive (KERNEL-SPEC 3.6): set on pages a new anon folio maps
// exclusively; cleared when fork shares them (unless the folio may be pinned
// in an mm that ever pinned: then fork copies); cleared by
// folio_try_share_anon_rmap_* before migration unmaps, which refuses while
// the folio may be pinned.
//
// Thread safety: rmap updates happen under the page-table lock of the entry
// being changed; counts are atomics. AnonVma's VMA list is guarded by its
// rwsem (write to link/unlink, read to walk).
#pragma once

#include <functional>
#include <vector>

#include "pinmm/base/errno.h"
#include "pinmm/base/locks.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

class AnonVma {
 public:
  static AnonVma* create();
  void get() { refcount_.fetch_add(1, std::memory_order_relaxed); }
  // A reference unless it is already going away (for lookups under RCU).
  bool try_get();
  // Frees after an RCU grace period when the last reference goes.
  void put();

  mutable RwSem rwsem{LockRank::kAnonVma};
  std::vector<Vma*> vmas GUARDED_BY(rwsem);

 private:
  AnonVma() = default;
  std::atomic<int> refcount_{1};
};

// Gives the VMA an AnonVma (new family) if it has none. Called by faults
// under the mmap read lock, so two faults may race: the install happens
// under mm->page_table_lock and the loser frees its AnonVma
// (__anon_vma_prepare). ENOMEM never happens in pinmm (host allocations do
// not fail), but the kernel's contract is kept.
Result<void> anon_vma_prepare(Vma* vma);

namespace inject_point_vm {
// A window point: anon_vma_prepare found no AnonVma and allocated one, and
// has not installed it yet (no lock held).
inline constexpr std::string_view kAnonVmaPrepare = "vm.anon_vma_prepare";
}  // namespace inject_point_vm
// `child` (a fork copy, or a split part) joins `src`'s family.
void anon_vma_clone(Vma* child, const Vma* src);
// The VMA leaves its family.
void unlink_anon_vmas(Vma* vma);

enum RmapFlags : unsigned { RMAP_NONE = 0, RMAP_EXCLUSIVE = 1 };

// The AnonVma of an anonymous folio, or nullptr.
AnonVma* folio_anon_vma(const Folio* folio);

// A new anonymous folio starts being mapped (PTE for small folios, PMD
// for PMD-sized ones): sets mapping and index, marks it swapbacked.
void folio_add_new_anon_rmap(Folio* folio, Vma* vma, VirtAddr addr, RmapFlags flags);
void folio_add_anon_rmap_ptes(Folio* folio, Page* page, int nr, Vma* vma, VirtAddr addr,
                              RmapFlags flags);
void folio_add_anon_rmap_pmd(Folio* folio, Page* page, Vma* vma, VirtAddr addr, RmapFlags flags);
void folio_add_file_rmap_ptes(Folio* folio, Page* page, int nr, Vma* vma);
void folio_add_file_rmap_pmd(Folio* folio, Page* page, Vma* vma);
void folio_remove_rmap_ptes(Folio* folio, Page* page, int nr, Vma* vma);
inline void folio_remove_rmap_pte(Folio* folio, Page* page, Vma* vma) {
  folio_remove_rmap_ptes(folio, page, 1, vma);
}
void folio_remove_rmap_pmd(Folio* folio, Page* page, Vma* vma);
// hugetlb folios are mapped whole (PMD or PUD) and counted only in
// entire_mapcount.
void hugetlb_add_anon_rmap(Folio* folio, Vma* vma, VirtAddr addr, RmapFlags flags);
void hugetlb_add_new_anon_rmap(Folio* folio, Vma* vma, VirtAddr addr);
void hugetlb_add_file_rmap(Folio* folio);
void hugetlb_remove_rmap(Folio* folio);

// fork: one more mapping of pages the parent maps. -EBUSY (nothing changed)
// if the folio may be DMA-pinned in an mm that ever pinned and a page is
// exclusive: the caller must copy instead. Otherwise PAE is cleared.
int folio_try_dup_anon_rmap_ptes(Folio* folio, Page* page, int nr, Vma* src_vma);
int folio_try_dup_anon_rmap_pmd(Folio* folio, Page* page, Vma* src_vma);
void folio_dup_file_rmap_ptes(Folio* folio, Page* page, int nr);
// The PAE-clearing protocol (KERNEL-SPEC 3.6): the caller has cleared the
// entry and flushed; -EBUSY if the folio may be pinned (the caller restores
// the entry), else PAE is cleared.
int folio_try_share_anon_rmap_pte(Folio* folio, Page* page);
int folio_try_share_anon_rmap_pmd(Folio* folio, Page* page);
// The folio now belongs to this VMA's family only (COW reuse).
void folio_move_anon_rmap(Folio* folio, Vma* vma);

int folio_mapcount(const Folio* folio);
// A PMD-sized anonymous folio mapped only in part (queued for a deferred
// split).
bool folio_test_partially_mapped(const Folio* folio);
inline bool folio_mapped(const Folio* folio) { return folio_mapcount(folio) > 0; }
// folio_needs_cow_for_dma: the mm ever pinned and the folio may be pinned.
bool folio_needs_cow_for_dma(const Vma* vma, const Folio* folio);

// One entry mapping (part of) a folio, found by page_vma_mapped_walk.
struct PageVmaMapped {
  Vma* vma = nullptr;
  VirtAddr address;         // of the first page this entry maps
  pte_t* pte = nullptr;     // a PTE, or
  pmd_t* pmd = nullptr;     // a PMD leaf (pte == nullptr)
  pud_t* pud = nullptr;     // or a PUD leaf (hugetlb 1 GiB)
  SpinLock* ptl = nullptr;  // held while the callback runs
};

// Calls `fn` for every present entry (or, with `migration`, migration
// entry) in `vma` that maps a page of `folio`, with that entry's lock held.
// fn returns false to stop. Returns false if stopped.
bool page_vma_mapped_walk(Folio* folio, Vma* vma, bool migration,
                          const std::function<bool(PageVmaMapped&)>& fn);

// rmap_walk: for every VMA that may map the folio (anon: its family that
// covers folio->index; file: the file's i_mmap), calls rmap_one(vma, address
// of the folio's first page there). rmap_one returns false to stop. The
// AnonVma / i_mmap lock is held for reading across the walk. For an anon
// folio the caller keeps its AnonVma alive: the folio is mapped, or the
// caller holds a reference from folio_get_anon_vma() (as migration does for
// remove_migration_ptes); an unmapped folio's AnonVma may be long gone.
void rmap_walk(Folio* folio, const std::function<bool(Vma*, VirtAddr)>& rmap_one);

}  // namespace pinmm
