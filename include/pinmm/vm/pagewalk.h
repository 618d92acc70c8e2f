// Walking the page tables of an address range with per-level callbacks.
//
// Linux counterpart: mm/pagewalk.c and include/linux/pagewalk.h
// (walk_page_range, walk_page_range_novma, struct mm_walk_ops). pinmm has
// no P4D level, so there is no p4d_entry and hole depths skip 1.
//
// walk_page_range visits the VMAs of [start, end) in order. A gap between
// VMAs goes to pte_hole with depth -1 and a null walk->vma. For a VMA,
// test_walk decides first (0: walk it, > 0: skip it, < 0: stop with that
// error; without test_walk, VM_PFNMAP VMAs are reported as one hole and
// skipped). A hugetlb VMA goes to hugetlb_entry once per huge page whose
// table exists (pte_hole with depth -1 otherwise); any other VMA is walked
// level by level:
//  - an empty entry at level L goes to pte_hole with depth 0 (PGD), 2
//    (PUD) or 3 (PMD), and the walk moves on;
//  - otherwise pgd_entry, pud_entry or pmd_entry sees the entry and may set
//    walk->action: ACTION_SUBTREE (the default) descends, ACTION_CONTINUE
//    skips the subtree, ACTION_AGAIN looks at the entry again;
//  - pte_entry sees every PTE (empty ones too) under the PTE table's lock;
//    a walk with a VMA splits a huge PMD before it descends to pte_entry,
//    a walk without one skips huge and non-present PMDs.
// A callback's non-zero return stops the walk and is returned; positive
// values from test_walk only control it.
//
// Locking: the caller holds mm's mmap lock (read suffices for both walks);
// walk_page_range_novma maps PTE tables without their lock, as the
// kernel's does for kernel page tables.
#pragma once

#include <cstdint>

#include "pinmm/vm/mm.h"
#include "pinmm/vm/pgtable.h"

namespace pinmm {

enum PageWalkAction : uint8_t {
  ACTION_SUBTREE = 0,   // descend into the entry's table
  ACTION_CONTINUE = 1,  // skip the entry's subtree
  ACTION_AGAIN = 2,     // look at the entry again
};

struct MmWalk;

struct MmWalkOps {
  int (*pgd_entry)(pgd_t* pgd, VirtAddr addr, VirtAddr next, MmWalk* walk) = nullptr;
  int (*pud_entry)(pud_t* pud, VirtAddr addr, VirtAddr next, MmWalk* walk) = nullptr;
  int (*pmd_entry)(pmd_t* pmd, VirtAddr addr, VirtAddr next, MmWalk* walk) = nullptr;
  int (*pte_entry)(pte_t* pte, VirtAddr addr, VirtAddr next, MmWalk* walk) = nullptr;
  int (*pte_hole)(VirtAddr addr, VirtAddr next, int depth, MmWalk* walk) = nullptr;
  // `pte` is the huge entry (a PMD or PUD slot, seen as a PTE as in the
  // kernel); take huge_pte_lockptr() before reading it.
  int (*hugetlb_entry)(pte_t* pte, uint64_t hmask, VirtAddr addr, VirtAddr next,
                       MmWalk* walk) = nullptr;
  int (*test_walk)(VirtAddr addr, VirtAddr next, MmWalk* walk) = nullptr;
};

struct MmWalk {
  const MmWalkOps* ops;
  Mm* mm;
  Vma* vma = nullptr;  // the VMA being walked; nullptr in a gap and for novma walks
  PageWalkAction action = ACTION_SUBTREE;
  bool no_vma = false;
  void* priv = nullptr;
};

// Walks [start, end) VMA by VMA. -EINVAL if start >= end.
int walk_page_range(Mm& mm, VirtAddr start, VirtAddr end, const MmWalkOps* ops, void* priv);
// Walks the page tables of [start, end) whatever the VMAs (ptdump's walk:
// validate() uses it to find entries no VMA covers).
int walk_page_range_novma(Mm& mm, VirtAddr start, VirtAddr end, const MmWalkOps* ops, void* priv);

// The lock of a hugetlb entry handed to hugetlb_entry (huge_pte_lockptr):
// the PMD table's lock for 2 MiB pages, page_table_lock for 1 GiB pages.
SpinLock& huge_pte_lockptr(const Vma* vma, pte_t* pte);

}  // namespace pinmm
