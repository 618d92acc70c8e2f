// hmm_range_fault (mm/hmm.c): a page-table walk that reports, per page, the
// PFN and what the CPU mapping allows, faulting what the caller asks for.
// The walk is vm/pagewalk's walk_page_range with hmm's callbacks: a test
// per VMA, holes, PMD entries (whose PTEs hmm reads itself, locklessly)
// and hugetlb entries.
#include "pinmm/hmm/hmm.h"

#include <algorithm>

#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/pagewalk.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

enum NeedFault : unsigned {
  HMM_NEED_FAULT = 1u << 0,
  HMM_NEED_WRITE_FAULT = 1u << 1,
  HMM_NEED_ALL_BITS = HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT,
};

// The walk's private state (struct hmm_vma_walk).
struct HmmVmaWalk {
  HmmRange* range;
  uint64_t last;  // where a restart begins
};

HmmVmaWalk& hmm_vma_walk_of(MmWalk* walk) { return *static_cast<HmmVmaWalk*>(walk->priv); }

uint64_t* hmm_pfns_at(const HmmRange* range, VirtAddr addr) {
  return &range->hmm_pfns[(addr.value() - range->start.value()) >> PAGE_SHIFT];
}

uint64_t npages_of(VirtAddr addr, VirtAddr end) {
  return (end.value() - addr.value()) >> PAGE_SHIFT;
}

int hmm_pfns_fill(VirtAddr addr, VirtAddr end, const HmmRange* range, uint64_t cpu_flags) {
  std::fill_n(hmm_pfns_at(range, addr), npages_of(addr, end), cpu_flags);
  return 0;
}

uint64_t hmm_pfn_flags_order(unsigned order) { return uint64_t{order} << HMM_PFN_ORDER_SHIFT; }

// Faults [addr, end) as asked, then -EBUSY so the walk restarts at addr
// and sees the new entries.
int hmm_vma_fault(VirtAddr addr, VirtAddr end, unsigned required, MmWalk* walk) {
  MM_WARN_ON_ONCE(required == 0);
  hmm_vma_walk_of(walk).last = addr.value();
  FaultFlags flags = FAULT_FLAG_REMOTE;
  if (required & HMM_NEED_WRITE_FAULT) {
    if (!any(walk->vma->vm_flags & VM_WRITE)) return -EPERM;
    flags |= FAULT_FLAG_WRITE;
  }
  for (; addr < end; addr = addr + PAGE_SIZE) {
    if (any(handle_mm_fault(walk->vma, addr, flags) & VM_FAULT_ERROR)) return -EFAULT;
  }
  return -EBUSY;
}

// What the request for one page needs, given what the CPU mapping has.
unsigned hmm_pte_need_fault(const HmmVmaWalk& w, uint64_t pfn_req_flags, uint64_t cpu_flags) {
  pfn_req_flags &= w.range->pfn_flags_mask;
  pfn_req_flags |= w.range->default_flags;
  if (!(pfn_req_flags & HMM_PFN_REQ_FAULT)) return 0;
  if ((pfn_req_flags & HMM_PFN_REQ_WRITE) && !(cpu_flags & HMM_PFN_WRITE))
    return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;
  if (!(cpu_flags & HMM_PFN_VALID)) return HMM_NEED_FAULT;
  return 0;
}

unsigned hmm_range_need_fault(const HmmVmaWalk& w, const uint64_t* hmm_pfns, uint64_t npages,
                              uint64_t cpu_flags) {
  // Neither the defaults nor the per-page mask can ask for a fault: a pure
  // snapshot.
  if (!((w.range->default_flags | w.range->pfn_flags_mask) & HMM_PFN_REQ_FAULT)) return 0;
  unsigned required = 0;
  for (uint64_t i = 0; i < npages; ++i) {
    required |= hmm_pte_need_fault(w, hmm_pfns[i], cpu_flags);
    if (required == HMM_NEED_ALL_BITS) break;
  }
  return required;
}

// Nothing mapped in [addr, end) (no VMA at all if walk->vma is null).
int hmm_vma_walk_hole(VirtAddr addr, VirtAddr end, int /*depth*/, MmWalk* walk) {
  const HmmVmaWalk& w = hmm_vma_walk_of(walk);
  const unsigned required =
      hmm_range_need_fault(w, hmm_pfns_at(w.range, addr), npages_of(addr, end), 0);
  if (walk->vma == nullptr) {
    return required != 0 ? -EFAULT : hmm_pfns_fill(addr, end, w.range, HMM_PFN_ERROR);
  }
  if (required != 0) return hmm_vma_fault(addr, end, required, walk);
  return hmm_pfns_fill(addr, end, w.range, 0);
}

uint64_t pte_to_hmm_pfn_flags(pte_t pte) {
  if (pte_none(pte) || !pte_present(pte) || pte_protnone(pte)) return 0;
  return pte_write(pte) ? (HMM_PFN_VALID | HMM_PFN_WRITE) : HMM_PFN_VALID;
}

uint64_t pmd_to_hmm_pfn_flags(pmd_t pmd) {
  if ((pmd.val & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE) return 0;
  return (pmd_write(pmd) ? (HMM_PFN_VALID | HMM_PFN_WRITE) : HMM_PFN_VALID) |
         hmm_pfn_flags_order(PMD_SHIFT - PAGE_SHIFT);
}

// A THP (or huge zero page) leaf.
int hmm_vma_handle_pmd(MmWalk* walk, VirtAddr addr, VirtAddr end, uint64_t* hmm_pfns, pmd_t pmd) {
  const HmmVmaWalk& w = hmm_vma_walk_of(walk);
  const uint64_t cpu_flags = pmd_to_hmm_pfn_flags(pmd);
  const unsigned required = hmm_range_need_fault(w, hmm_pfns, npages_of(addr, end), cpu_flags);
  if (required != 0) return hmm_vma_fault(addr, end, required, walk);
  uint64_t pfn = pmd_pfn(pmd).value() + ((addr.value() & ~PMD_MASK) >> PAGE_SHIFT);
  for (; addr < end; addr = addr + PAGE_SIZE, ++hmm_pfns, ++pfn)
    *hmm_pfns = pfn | cpu_flags;
  return 0;
}

// One PTE (read locklessly under the mmap lock; any change is caught by
// the notifier sequence).
int hmm_vma_handle_pte(MmWalk* walk, VirtAddr addr, VirtAddr end, pmd_t* pmdp, pte_t pte,
                       uint64_t* hmm_pfn) {
  HmmVmaWalk& w = hmm_vma_walk_of(walk);
  const uint64_t req = *hmm_pfn;
  if (pte_none(pte)) {
    const unsigned required = hmm_pte_need_fault(w, req, 0);
    if (required != 0) return hmm_vma_fault(addr, end, required, walk);
    *hmm_pfn = 0;
    return 0;
  }
  if (!pte_present(pte)) {
    const swp_entry_t entry = pte_to_swp_entry(pte);
    // A device-private page of the caller's own device: report it as is.
    if (is_device_private_entry(entry)) {
      const Page* page = walk->mm->ms().pfn_to_page(swp_offset_pfn(entry));
      const DevPagemap* pgmap = page_pgmap(page);
      if (pgmap != nullptr && pgmap->owner == w.range->dev_private_owner) {
        uint64_t cpu_flags = HMM_PFN_VALID;
        if (is_writable_device_private_entry(entry)) cpu_flags |= HMM_PFN_WRITE;
        *hmm_pfn = swp_offset_pfn(entry).value() | cpu_flags;
        return 0;
      }
    }
    const unsigned required = hmm_pte_need_fault(w, req, 0);
    if (required == 0) {
      *hmm_pfn = 0;
      return 0;
    }
    // Device-private (of another owner) and device-exclusive entries fault:
    // migrate_to_ram, or the exclusive entry's restore.
    if (is_device_private_entry(entry) || is_device_exclusive_entry(entry))
      return hmm_vma_fault(addr, end, required, walk);
    if (is_migration_entry(entry)) {
      w.last = addr.value();
      migration_entry_wait(*walk->mm, pmdp, addr);
      return -EBUSY;
    }
    return -EFAULT;  // hwpoison and any other entry
  }
  const uint64_t cpu_flags = pte_to_hmm_pfn_flags(pte);
  const unsigned required = hmm_pte_need_fault(w, req, cpu_flags);
  if (required != 0) return hmm_vma_fault(addr, end, required, walk);
  // A special entry without a struct page (a PFN map), but for the zero page.
  if (vm_normal_page(walk->vma, addr, pte) == nullptr &&
      !walk->mm->ms().is_zero_pfn(pte_pfn(pte))) {
    if (hmm_pte_need_fault(w, req, 0) != 0) return -EFAULT;
    *hmm_pfn = HMM_PFN_ERROR;
    return 0;
  }
  *hmm_pfn = pte_pfn(pte).value() | cpu_flags;
  return 0;
}

int hmm_vma_walk_pmd(pmd_t* pmdp, VirtAddr start, VirtAddr end, MmWalk* walk) {
  HmmVmaWalk& w = hmm_vma_walk_of(walk);
  uint64_t* hmm_pfns = hmm_pfns_at(w.range, start);
  const uint64_t npages = npages_of(start, end);
  for (;;) {
    const pmd_t pmd = pmdp_get(pmdp);
    if (pmd_none(pmd)) return hmm_vma_walk_hole(start, end, -1, walk);
    if (is_swap_pmd(pmd) && is_migration_entry(pmd_to_swp_entry(pmd))) {
      if (hmm_range_need_fault(w, hmm_pfns, npages, 0) != 0) {
        w.last = start.value();
        pmd_migration_entry_wait(*walk->mm, pmdp);
        return -EBUSY;
      }
      return hmm_pfns_fill(start, end, w.range, 0);
    }
    if (!pmd_present(pmd)) {
      if (hmm_range_need_fault(w, hmm_pfns, npages, 0) != 0) return -EFAULT;
      return hmm_pfns_fill(start, end, w.range, HMM_PFN_ERROR);
    }
    if (pmd_leaf(pmd)) {
      // No PMD lock: a split meanwhile shows up as an invalidation.
      const pmd_t again = pmdp_get(pmdp);
      if (!pmd_leaf(again)) continue;
      return hmm_vma_handle_pmd(walk, start, end, hmm_pfns, again);
    }
    // A table: hmm reads its entries itself (the walk has no pte_entry).
    const pte_t* ptep = pte_offset_map(*walk->mm, pmd, start);
    for (VirtAddr addr = start; addr < end; addr = addr + PAGE_SIZE, ++ptep, ++hmm_pfns) {
      if (const int r = hmm_vma_handle_pte(walk, addr, end, pmdp, ptep_get(ptep), hmm_pfns); r != 0)
        return r;
    }
    return 0;
  }
}

// One huge page of a hugetlb VMA whose table exists (the entry may still
// be empty: then its PFN field is 0, as in the kernel).
int hmm_vma_walk_hugetlb_entry(pte_t* pte, uint64_t hmask, VirtAddr start, VirtAddr end,
                               MmWalk* walk) {
  const HmmVmaWalk& w = hmm_vma_walk_of(walk);
  SpinLock* ptl = &huge_pte_lockptr(walk->vma, pte);
  ptl_lock(ptl);
  const pte_t entry = ptep_get(pte);
  uint64_t* hmm_pfns = hmm_pfns_at(w.range, start);
  const uint64_t cpu_flags =
      pte_to_hmm_pfn_flags(entry) | hmm_pfn_flags_order(huge_page_order_of(walk->vma));
  const unsigned required = hmm_pte_need_fault(w, *hmm_pfns, cpu_flags);
  if (required != 0) {
    ptl_unlock(ptl);
    return hmm_vma_fault(start, end, required, walk);
  }
  uint64_t pfn = pte_pfn(entry).value() + ((start.value() & ~hmask) >> PAGE_SHIFT);
  for (VirtAddr addr = start; addr < end; addr = addr + PAGE_SIZE, ++hmm_pfns, ++pfn)
    *hmm_pfns = pfn | cpu_flags;
  ptl_unlock(ptl);
  return 0;
}

// I/O and PFN maps, and unreadable VMAs, are errors; > 0 skips the VMA.
int hmm_vma_walk_test(VirtAddr start, VirtAddr end, MmWalk* walk) {
  const HmmVmaWalk& w = hmm_vma_walk_of(walk);
  if (!any(walk->vma->vm_flags & (VM_IO | VM_PFNMAP)) && any(walk->vma->vm_flags & VM_READ))
    return 0;
  if (hmm_range_need_fault(w, hmm_pfns_at(w.range, start), npages_of(start, end), 0) != 0)
    return -EFAULT;
  hmm_pfns_fill(start, end, w.range, HMM_PFN_ERROR);
  return 1;
}

constexpr MmWalkOps hmm_walk_ops{
    .pmd_entry = hmm_vma_walk_pmd,
    .pte_hole = hmm_vma_walk_hole,
    .hugetlb_entry = hmm_vma_walk_hugetlb_entry,
    .test_walk = hmm_vma_walk_test,
};

}  // namespace

int hmm_range_fault(HmmRange* range) {
  if (range == nullptr || range->notifier == nullptr || range->notifier->mm() == nullptr)
    return -EINVAL;
  if (range->start >= range->end || !range->start.is_page_aligned() ||
      !range->end.is_page_aligned())
    return -EINVAL;
  Mm& mm = *range->notifier->mm();
  mm.mmap_lock.assert_held_read();
  HmmVmaWalk w{range, range->start.value()};
  int ret = 0;
  do {
    // If the range is no longer valid, force a retry.
    if (mmu_interval_check_retry(range->notifier, range->notifier_seq)) return -EBUSY;
    // Entries below w.last hold outputs; the walk resumes there.
    ret = walk_page_range(mm, VirtAddr(w.last), range->end, &hmm_walk_ops, &w);
  } while (ret == -EBUSY);
  return ret;
}

}  // namespace pinmm
