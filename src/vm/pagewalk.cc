// walk_page_range and walk_page_range_novma (mm/pagewalk.c): the level
// loops of pagewalk.h, each entry handed to the caller's callbacks.
#include "pinmm/vm/pagewalk.h"

#include <algorithm>
#include <cerrno>

#include "pinmm/vm/huge_memory.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

// Hole depths as the kernel numbers its levels (P4D, 1, is folded).
constexpr int kDepthPgd = 0;
constexpr int kDepthPud = 2;
constexpr int kDepthPmd = 3;

// The end of the level-`size` block holding addr, or end if sooner.
VirtAddr block_end(VirtAddr addr, VirtAddr end, uint64_t size) {
  const uint64_t boundary = (addr.value() + size) & ~(size - 1);
  return VirtAddr(boundary - 1 < end.value() - 1 ? boundary : end.value());
}

int walk_pte_range_inner(pte_t* pte, VirtAddr addr, VirtAddr end, MmWalk* walk) {
  for (;; ++pte) {
    if (const int err = walk->ops->pte_entry(pte, addr, addr + PAGE_SIZE, walk); err != 0)
      return err;
    if (addr.value() >= end.value() - PAGE_SIZE) return 0;
    addr = addr + PAGE_SIZE;
  }
}

int walk_pte_range(pmd_t* pmd, VirtAddr addr, VirtAddr end, MmWalk* walk) {
  if (walk->no_vma) {
    const pmd_t pmdval = pmdp_get(pmd);
    if (!pmd_is_table(pmdval)) return 0;
    return walk_pte_range_inner(pte_offset_map(*walk->mm, pmdval, addr), addr, end, walk);
  }
  LockedPte lp = pte_offset_map_lock(*walk->mm, pmd, addr);
  if (!lp) {
    walk->action = ACTION_AGAIN;  // the table went (or became a huge leaf)
    return 0;
  }
  const int err = walk_pte_range_inner(lp.pte, addr, end, walk);
  pte_unmap_unlock(lp);
  return err;
}

int walk_pmd_range(VirtAddr addr, VirtAddr end, MmWalk* walk) {
  const MmWalkOps* ops = walk->ops;
  pmd_t* pmd = pmd_offset(*walk->mm, addr);
  if (pmd == nullptr) {
    // The PUD changed since the caller looked: nothing below it to walk.
    return ops->pte_hole != nullptr ? ops->pte_hole(addr, end, kDepthPud, walk) : 0;
  }
  for (VirtAddr next; addr != end; ++pmd, addr = next) {
  again:
    next = block_end(addr, end, PMD_SIZE);
    if (pmd_none(pmdp_get(pmd))) {
      if (ops->pte_hole != nullptr) {
        if (const int err = ops->pte_hole(addr, next, kDepthPmd, walk); err != 0) return err;
      }
      continue;
    }
    walk->action = ACTION_SUBTREE;
    if (ops->pmd_entry != nullptr) {
      if (const int err = ops->pmd_entry(pmd, addr, next, walk); err != 0) return err;
    }
    if (walk->action == ACTION_AGAIN) goto again;
    if (walk->action == ACTION_CONTINUE || ops->pte_entry == nullptr) continue;
    if (walk->vma != nullptr) {
      if (const pmd_t v = pmdp_get(pmd); pmd_leaf(v) || is_swap_pmd(v))
        split_huge_pmd(walk->vma, pmd, addr);
    } else if (!pmd_is_table(pmdp_get(pmd))) {
      continue;  // a huge leaf or a non-present entry: nothing below
    }
    if (const int err = walk_pte_range(pmd, addr, next, walk); err != 0) return err;
    if (walk->action == ACTION_AGAIN) goto again;
  }
  return 0;
}

int walk_pud_range(VirtAddr addr, VirtAddr end, MmWalk* walk) {
  const MmWalkOps* ops = walk->ops;
  pud_t* pud = pud_offset(*walk->mm, addr);
  if (pud == nullptr) {
    return ops->pte_hole != nullptr ? ops->pte_hole(addr, end, kDepthPgd, walk) : 0;
  }
  const bool below = ops->pmd_entry != nullptr || ops->pte_entry != nullptr;
  for (VirtAddr next; addr != end; ++pud, addr = next) {
  again:
    next = block_end(addr, end, PUD_SIZE);
    if (pud_none(pudp_get(pud))) {
      if (ops->pte_hole != nullptr) {
        if (const int err = ops->pte_hole(addr, next, kDepthPud, walk); err != 0) return err;
      }
      continue;
    }
    walk->action = ACTION_SUBTREE;
    if (ops->pud_entry != nullptr) {
      if (const int err = ops->pud_entry(pud, addr, next, walk); err != 0) return err;
    }
    if (walk->action == ACTION_AGAIN) goto again;
    if (walk->action == ACTION_CONTINUE || !below) continue;
    // pinmm has no transparent PUD pages to split: a huge or non-present
    // PUD has nothing below it.
    const pud_t pudval = pudp_get(pud);
    if (pud_leaf(pudval) || !pud_present(pudval)) continue;
    if (const int err = walk_pmd_range(addr, next, walk); err != 0) return err;
  }
  return 0;
}

int walk_pgd_range(VirtAddr addr, VirtAddr end, MmWalk* walk) {
  const MmWalkOps* ops = walk->ops;
  pgd_t* pgd = pgd_offset(*walk->mm, addr);
  const bool below =
      ops->pud_entry != nullptr || ops->pmd_entry != nullptr || ops->pte_entry != nullptr;
  for (VirtAddr next; addr != end; ++pgd, addr = next) {
    next = block_end(addr, end, PGDIR_SIZE);
    if (!pgd_present(pgdp_get(pgd))) {
      if (ops->pte_hole != nullptr) {
        if (const int err = ops->pte_hole(addr, next, kDepthPgd, walk); err != 0) return err;
      }
      continue;
    }
    if (ops->pgd_entry != nullptr) {
      if (const int err = ops->pgd_entry(pgd, addr, next, walk); err != 0) return err;
    }
    if (!below) continue;
    if (const int err = walk_pud_range(addr, next, walk); err != 0) return err;
  }
  return 0;
}

// hugetlb_walk: the huge entry's slot if its table exists.
pte_t* hugetlb_walk(const Vma* vma, VirtAddr haddr) {
  Mm& mm = vma->vm_mm();
  if (huge_page_order_of(vma) == HPAGE_PUD_ORDER)
    return reinterpret_cast<pte_t*>(pud_offset(mm, haddr));
  return reinterpret_cast<pte_t*>(pmd_offset(mm, haddr));
}

int walk_hugetlb_range(VirtAddr addr, VirtAddr end, MmWalk* walk) {
  const uint64_t size = uint64_t{1} << (huge_page_order_of(walk->vma) + PAGE_SHIFT);
  const uint64_t hmask = ~(size - 1);
  const MmWalkOps* ops = walk->ops;
  for (VirtAddr next; addr != end; addr = next) {
    next = block_end(addr, end, size);
    int err = 0;
    if (pte_t* pte = hugetlb_walk(walk->vma, VirtAddr(addr.value() & hmask)); pte != nullptr) {
      err = ops->hugetlb_entry(pte, hmask, addr, next, walk);
    } else if (ops->pte_hole != nullptr) {
      err = ops->pte_hole(addr, next, -1, walk);
    }
    if (err != 0) return err;
  }
  return 0;
}

// walk_page_test: > 0 skips the VMA.
int walk_page_test(VirtAddr start, VirtAddr end, MmWalk* walk) {
  const MmWalkOps* ops = walk->ops;
  if (ops->test_walk != nullptr) return ops->test_walk(start, end, walk);
  // A PFN map has no pages to walk: report it as a hole and skip it.
  if (any(walk->vma->vm_flags & VM_PFNMAP)) {
    const int err = ops->pte_hole != nullptr ? ops->pte_hole(start, end, -1, walk) : 0;
    return err != 0 ? err : 1;
  }
  return 0;
}

int __walk_page_range(VirtAddr start, VirtAddr end, MmWalk* walk) {
  if (walk->vma != nullptr && is_vm_hugetlb_page(walk->vma)) {
    return walk->ops->hugetlb_entry != nullptr ? walk_hugetlb_range(start, end, walk) : 0;
  }
  return walk_pgd_range(start, end, walk);
}

}  // namespace

int walk_page_range(Mm& mm, VirtAddr start, VirtAddr end, const MmWalkOps* ops, void* priv) {
  if (start >= end) return -EINVAL;
  mm.mmap_lock.assert_held_read();
  MmWalk walk{ops, &mm};
  walk.priv = priv;
  Vma* vma = mm.find_vma(start);
  for (VirtAddr next; start < end; start = next) {
    int err = 0;
    if (vma == nullptr || start < vma->vm_start) {
      // After the last VMA, or in the gap before the next one.
      walk.vma = nullptr;
      next = vma == nullptr ? end : std::min(end, vma->vm_start);
      if (ops->pte_hole != nullptr) err = ops->pte_hole(start, next, -1, &walk);
    } else {
      walk.vma = vma;
      next = std::min(end, vma->vm_end);
      vma = mm.find_vma(vma->vm_end);
      err = walk_page_test(start, next, &walk);
      if (err > 0) continue;  // skip this VMA (never an error to the caller)
      if (err == 0) err = __walk_page_range(start, next, &walk);
    }
    if (err != 0) return err;
  }
  return 0;
}

int walk_page_range_novma(Mm& mm, VirtAddr start, VirtAddr end, const MmWalkOps* ops, void* priv) {
  if (start >= end) return -EINVAL;
  mm.mmap_lock.assert_held_read();
  MmWalk walk{ops, &mm};
  walk.no_vma = true;
  walk.priv = priv;
  return __walk_page_range(start, end, &walk);
}

SpinLock& huge_pte_lockptr(const Vma* vma, pte_t* pte) {
  const Mm& mm = vma->vm_mm();
  if (huge_page_order_of(vma) == HPAGE_PUD_ORDER)
    return pud_lockptr(mm, reinterpret_cast<pud_t*>(pte));
  return pmd_lockptr(mm, reinterpret_cast<pmd_t*>(pte));
}

}  // namespace pinmm
