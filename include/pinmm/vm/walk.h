// Walking and populating an Mm's page tables.
//
// Linux counterpart: pgd_offset/pud_offset/pmd_offset/pte_offset_map,
// __pud_alloc/__pmd_alloc/__pte_alloc, pmd_lockptr/pte_lockptr and
// pte_offset_map_lock (include/linux/mm.h, mm/memory.c). pinmm has no P4D
// level (4-level paging: PGD -> PUD -> PMD -> PTE).
//
// Locking: populating a PUD or PMD table takes mm->page_table_lock;
// populating a PTE table takes the PMD table's lock. pte_offset_map_lock
// takes the PTE table's lock and re-checks that the PMD still points at
// that table (it may have become none or a huge leaf meanwhile).
// Lockless walks (pud_offset, pmd_offset, pte_offset_map) are valid inside
// an RCU read section, or with the mmap lock held, and their results must be
// re-checked under the right lock before they are acted on.
#pragma once

#include "pinmm/base/errno.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/pgtable.h"

namespace pinmm {

pgd_t* pgd_offset(const Mm& mm, VirtAddr addr);
// nullptr if the PGD entry is none.
pud_t* pud_offset(const Mm& mm, VirtAddr addr);
// nullptr if the PUD entry is none or a huge leaf.
pmd_t* pmd_offset(const Mm& mm, VirtAddr addr);
// The PTE for addr in the table `pmdval` points at (pmdval must be a table).
pte_t* pte_offset_map(const Mm& mm, pmd_t pmdval, VirtAddr addr);

// Allocating versions (caller holds the mmap lock): ENOMEM if a table page
// cannot be allocated.
Result<pud_t*> pud_alloc(Mm& mm, VirtAddr addr);
Result<pmd_t*> pmd_alloc(Mm& mm, VirtAddr addr);
// Makes sure *pmd points at a PTE table (unless it became a huge leaf
// meanwhile, which is not an error: the caller re-checks).
Result<void> pte_alloc(Mm& mm, pmd_t* pmd);

// The lock of the PMD table `pmd` lies in.
SpinLock& pmd_lockptr(const Mm& mm, const pmd_t* pmd);
// The lock of the PTE table `pmdval` points at.
SpinLock& pte_lockptr(const Mm& mm, pmd_t pmdval);
// The lock guarding PUD entries (mm->page_table_lock).
inline SpinLock& pud_lockptr(const Mm& mm, const pud_t*) { return mm.page_table_lock; }

// A locked PTE: the entry pointer and its table's lock (held).
struct LockedPte {
  pte_t* pte = nullptr;
  SpinLock* ptl = nullptr;
  explicit operator bool() const { return pte != nullptr; }
};
// Locks the PTE table *pmd points at and returns the entry for addr; an
// empty LockedPte if *pmd is not (or no longer) a PTE table.
LockedPte pte_offset_map_lock(const Mm& mm, pmd_t* pmd, VirtAddr addr);
// Releases what pte_offset_map_lock took (no-op on an empty one).
void pte_unmap_unlock(LockedPte& locked);

// Page-table locks are found at run time (one per table), so clang's static
// analysis cannot follow them; these wrappers keep it out, while lockdep's
// run-time rank checks still apply in debug builds.
inline void ptl_lock(SpinLock* ptl) NO_THREAD_SAFETY_ANALYSIS { ptl->lock(); }
inline void ptl_lock_nested(SpinLock* ptl) NO_THREAD_SAFETY_ANALYSIS { ptl->lock_nested(); }
inline void ptl_unlock(SpinLock* ptl) NO_THREAD_SAFETY_ANALYSIS { ptl->unlock(); }

// Whether a PMD entry is a table pointer (present, not a leaf).
inline bool pmd_is_table(pmd_t pmd) { return pmd_present(pmd) && !pmd_leaf(pmd); }

}  // namespace pinmm
