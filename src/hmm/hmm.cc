// hmm_range_fault (mm/hmm.c): a page-table walk that reports, per page, the
// PFN and what the CPU mapping allows, faulting what the caller asks for.
// The walk follows mm/pagewalk.c's shape: per VMA a test, then hugetlb
// entries or the PGD -> PUD -> PMD -> PTE levels, holes where tables are
// missing.
#include "pinmm/hmm/hmm.h"

#include <algorithm>

#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

enum NeedFault : unsigned {
  HMM_NEED_FAULT = 1u << 0,
  HMM_NEED_WRITE_FAULT = 1u << 1,
  HMM_NEED_ALL_BITS = HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT,
};

// walk_page_range's "skip this VMA" answer from the test callback.
constexpr int kSkipVma = 1;

struct HmmWalk {
  HmmRange* range;
  Mm& mm;
  uint64_t last;       // where a restart begins
  Vma* vma = nullptr;  // the VMA being walked (nullptr in a gap)
};

uint64_t* pfns_at(HmmWalk& w, uint64_t addr) {
  return &w.range->hmm_pfns[(addr - w.range->start.value()) >> PAGE_SHIFT];
}

int pfns_fill(HmmWalk& w, uint64_t addr, uint64_t end, uint64_t cpu_flags) {
  std::fill(pfns_at(w, addr), pfns_at(w, addr) + ((end - addr) >> PAGE_SHIFT), cpu_flags);
  return 0;
}

uint64_t order_flags(unsigned order) { return uint64_t{order} << HMM_PFN_ORDER_SHIFT; }

// hmm_vma_fault: faults [addr, end) as asked, then -EBUSY so the walk
// restarts at addr and sees the new entries.
int vma_fault(HmmWalk& w, uint64_t addr, uint64_t end, unsigned required) {
  MM_WARN_ON_ONCE(required == 0);
  w.last = addr;
  FaultFlags flags = FAULT_FLAG_REMOTE;
  if (required & HMM_NEED_WRITE_FAULT) {
    if (!any(w.vma->vm_flags & VM_WRITE)) return -EPERM;
    flags |= FAULT_FLAG_WRITE;
  }
  for (; addr < end; addr += PAGE_SIZE) {
    if (any(handle_mm_fault(w.vma, VirtAddr(addr), flags) & VM_FAULT_ERROR)) return -EFAULT;
  }
  return -EBUSY;
}

// hmm_pte_need_fault: what the request for one page needs, given what the
// CPU mapping has.
unsigned pte_need_fault(const HmmWalk& w, uint64_t pfn_req_flags, uint64_t cpu_flags) {
  pfn_req_flags &= w.range->pfn_flags_mask;
  pfn_req_flags |= w.range->default_flags;
  if (!(pfn_req_flags & HMM_PFN_REQ_FAULT)) return 0;
  if ((pfn_req_flags & HMM_PFN_REQ_WRITE) && !(cpu_flags & HMM_PFN_WRITE))
    return HMM_NEED_FAULT | HMM_NEED_WRITE_FAULT;
  if (!(cpu_flags & HMM_PFN_VALID)) return HMM_NEED_FAULT;
  return 0;
}

unsigned range_need_fault(const HmmWalk& w, const uint64_t* pfns, uint64_t npages,
                          uint64_t cpu_flags) {
  // Neither the defaults nor the per-page mask can ask for a fault: a pure
  // snapshot.
  if (!((w.range->default_flags | w.range->pfn_flags_mask) & HMM_PFN_REQ_FAULT)) return 0;
  unsigned required = 0;
  for (uint64_t i = 0; i < npages; ++i) {
    required |= pte_need_fault(w, pfns[i], cpu_flags);
    if (required == HMM_NEED_ALL_BITS) break;
  }
  return required;
}

// hmm_vma_walk_hole: nothing mapped in [addr, end) (no VMA at all if
// w.vma is null).
int walk_hole(HmmWalk& w, uint64_t addr, uint64_t end) {
  const unsigned required = range_need_fault(w, pfns_at(w, addr), (end - addr) >> PAGE_SHIFT, 0);
  if (w.vma == nullptr) return required != 0 ? -EFAULT : pfns_fill(w, addr, end, HMM_PFN_ERROR);
  if (required != 0) return vma_fault(w, addr, end, required);
  return pfns_fill(w, addr, end, 0);
}

uint64_t pte_to_hmm_pfn_flags(pte_t pte) {
  if (pte_none(pte) || !pte_present(pte) || pte_protnone(pte)) return 0;
  return pte_write(pte) ? (HMM_PFN_VALID | HMM_PFN_WRITE) : HMM_PFN_VALID;
}

uint64_t pmd_to_hmm_pfn_flags(pmd_t pmd) {
  if ((pmd.val & (_PAGE_PRESENT | _PAGE_PROTNONE)) == _PAGE_PROTNONE) return 0;
  return (pmd_write(pmd) ? (HMM_PFN_VALID | HMM_PFN_WRITE) : HMM_PFN_VALID) |
         order_flags(PMD_SHIFT - PAGE_SHIFT);
}

// hmm_vma_handle_pmd: a THP (or huge zero page) leaf.
int handle_pmd(HmmWalk& w, uint64_t addr, uint64_t end, pmd_t pmd) {
  uint64_t* pfns = pfns_at(w, addr);
  const uint64_t cpu_flags = pmd_to_hmm_pfn_flags(pmd);
  const unsigned required = range_need_fault(w, pfns, (end - addr) >> PAGE_SHIFT, cpu_flags);
  if (required != 0) return vma_fault(w, addr, end, required);
  uint64_t pfn = pmd_pfn(pmd).value() + ((addr & ~PMD_MASK) >> PAGE_SHIFT);
  for (; addr < end; addr += PAGE_SIZE, ++pfns, ++pfn)
    *pfns = pfn | cpu_flags;
  return 0;
}

// hmm_vma_handle_pte: one PTE (read locklessly under the mmap lock; any
// change is caught by the notifier sequence).
int handle_pte(HmmWalk& w, uint64_t addr, uint64_t end, pmd_t* pmdp, pte_t pte, uint64_t* pfn) {
  const uint64_t req = *pfn;
  if (pte_none(pte)) {
    const unsigned required = pte_need_fault(w, req, 0);
    if (required != 0) return vma_fault(w, addr, end, required);
    *pfn = 0;
    return 0;
  }
  if (!pte_present(pte)) {
    const swp_entry_t entry = pte_to_swp_entry(pte);
    // A device-private page of the caller's own device: report it as is.
    if (is_device_private_entry(entry)) {
      const Page* page = w.mm.ms().pfn_to_page(swp_offset_pfn(entry));
      const DevPagemap* pgmap = page_pgmap(page);
      if (pgmap != nullptr && pgmap->owner == w.range->dev_private_owner) {
        uint64_t cpu_flags = HMM_PFN_VALID;
        if (is_writable_device_private_entry(entry)) cpu_flags |= HMM_PFN_WRITE;
        *pfn = swp_offset_pfn(entry).value() | cpu_flags;
        return 0;
      }
    }
    const unsigned required = pte_need_fault(w, req, 0);
    if (required == 0) {
      *pfn = 0;
      return 0;
    }
    // Device-private (of another owner) and device-exclusive entries fault:
    // migrate_to_ram, or the exclusive entry's restore.
    if (is_device_private_entry(entry) || is_device_exclusive_entry(entry))
      return vma_fault(w, addr, end, required);
    if (is_migration_entry(entry)) {
      w.last = addr;
      migration_entry_wait(w.mm, pmdp, VirtAddr(addr));
      return -EBUSY;
    }
    return -EFAULT;  // hwpoison and any other entry
  }
  const uint64_t cpu_flags = pte_to_hmm_pfn_flags(pte);
  const unsigned required = pte_need_fault(w, req, cpu_flags);
  if (required != 0) return vma_fault(w, addr, end, required);
  // A special entry without a struct page (a PFN map), but for the zero page.
  if (vm_normal_page(w.vma, VirtAddr(addr), pte) == nullptr &&
      !w.mm.ms().is_zero_pfn(pte_pfn(pte))) {
    if (pte_need_fault(w, req, 0) != 0) return -EFAULT;
    *pfn = HMM_PFN_ERROR;
    return 0;
  }
  *pfn = pte_pfn(pte).value() | cpu_flags;
  return 0;
}

// hmm_vma_walk_pmd.
int walk_pmd(HmmWalk& w, pmd_t* pmdp, uint64_t start, uint64_t end) {
  const uint64_t npages = (end - start) >> PAGE_SHIFT;
  for (;;) {
    const pmd_t pmd = pmdp_get(pmdp);
    if (pmd_none(pmd)) return walk_hole(w, start, end);
    if (is_swap_pmd(pmd) && is_migration_entry(pmd_to_swp_entry(pmd))) {
      if (range_need_fault(w, pfns_at(w, start), npages, 0) != 0) {
        w.last = start;
        pmd_migration_entry_wait(w.mm, pmdp);
        return -EBUSY;
      }
      return pfns_fill(w, start, end, 0);
    }
    if (!pmd_present(pmd)) {
      if (range_need_fault(w, pfns_at(w, start), npages, 0) != 0) return -EFAULT;
      return pfns_fill(w, start, end, HMM_PFN_ERROR);
    }
    if (pmd_leaf(pmd)) {
      // No PMD lock: a split meanwhile shows up as an invalidation.
      const pmd_t again = pmdp_get(pmdp);
      if (!pmd_leaf(again)) continue;
      return handle_pmd(w, start, end, again);
    }
    // A table: walk its entries.
    const pte_t* ptes = pte_offset_map(w.mm, pmd, VirtAddr(start));
    uint64_t* pfns = pfns_at(w, start);
    for (uint64_t addr = start; addr < end; addr += PAGE_SIZE, ++ptes, ++pfns) {
      if (const int r = handle_pte(w, addr, end, pmdp, ptep_get(ptes), pfns); r != 0) return r;
    }
    return 0;
  }
}

// walk_pgd_range / walk_pud_range of a non-hugetlb VMA.
int walk_tables(HmmWalk& w, uint64_t start, uint64_t end) {
  for (uint64_t addr = start; addr < end;) {
    const uint64_t pud_next = std::min(end, (addr + PUD_SIZE) & PUD_MASK);
    const pgd_t pgd = pgdp_get(pgd_offset(w.mm, VirtAddr(addr)));
    pud_t* pudp = pgd_present(pgd) ? pud_offset(w.mm, VirtAddr(addr)) : nullptr;
    if (pudp == nullptr || pud_none(pudp_get(pudp))) {
      // A missing PUD table or entry: a hole up to the next PUD (or PGD)
      // boundary, which the PUD step covers either way.
      if (const int r = walk_hole(w, addr, pud_next); r != 0) return r;
      addr = pud_next;
      continue;
    }
    for (; addr < pud_next;) {
      const uint64_t pmd_next = std::min(pud_next, (addr + PMD_SIZE) & PMD_MASK);
      pmd_t* pmdp = pmd_offset(w.mm, VirtAddr(addr));
      const int r =
          pmdp == nullptr ? walk_hole(w, addr, pmd_next) : walk_pmd(w, pmdp, addr, pmd_next);
      if (r != 0) return r;
      addr = pmd_next;
    }
  }
  return 0;
}

// hmm_vma_walk_hugetlb_entry over [start, end) of a hugetlb VMA, one huge
// page at a time.
int walk_hugetlb(HmmWalk& w, uint64_t start, uint64_t end) {
  const unsigned order = huge_page_order_of(w.vma);
  const uint64_t hsize = uint64_t{1} << (order + PAGE_SHIFT);
  for (uint64_t addr = start; addr < end;) {
    const uint64_t next = std::min(end, (addr + hsize) & ~(hsize - 1));
    // huge_pte_offset and huge_pte_lock: the PMD (2 MiB) or PUD (1 GiB).
    uint64_t raw = 0;
    bool table = false;
    if (order == PUD_SHIFT - PAGE_SHIFT) {
      pud_t* pudp = pgd_present(pgdp_get(pgd_offset(w.mm, VirtAddr(addr))))
                        ? pud_offset(w.mm, VirtAddr(addr))
                        : nullptr;
      if (pudp != nullptr) {
        SpinGuard g(w.mm.page_table_lock);
        raw = pudp_get(pudp).val;
        table = true;
      }
    } else if (pmd_t* pmdp = pmd_offset(w.mm, VirtAddr(addr)); pmdp != nullptr) {
      SpinLock* ptl = &pmd_lockptr(w.mm, pmdp);
      ptl_lock(ptl);
      raw = pmdp_get(pmdp).val;
      ptl_unlock(ptl);
      table = true;
    }
    if (!table || raw == 0) {
      if (const int r = walk_hole(w, addr, next); r != 0) return r;
      addr = next;
      continue;
    }
    const pte_t entry{raw};
    uint64_t* pfns = pfns_at(w, addr);
    const uint64_t cpu_flags = pte_to_hmm_pfn_flags(entry) | order_flags(order);
    const unsigned required = pte_need_fault(w, *pfns, cpu_flags);
    if (required != 0) return vma_fault(w, addr, next, required);
    uint64_t pfn = pte_pfn(entry).value() + ((addr & (hsize - 1)) >> PAGE_SHIFT);
    for (; addr < next; addr += PAGE_SIZE, ++pfns, ++pfn)
      *pfns = pfn | cpu_flags;
  }
  return 0;
}

// hmm_vma_walk_test: I/O and PFN maps, and unreadable VMAs, are errors.
int walk_test(HmmWalk& w, uint64_t start, uint64_t end) {
  if (!any(w.vma->vm_flags & (VM_IO | VM_PFNMAP)) && any(w.vma->vm_flags & VM_READ)) return 0;
  if (range_need_fault(w, pfns_at(w, start), (end - start) >> PAGE_SHIFT, 0) != 0) return -EFAULT;
  pfns_fill(w, start, end, HMM_PFN_ERROR);
  return kSkipVma;
}

// walk_page_range: gaps between VMAs are holes without a VMA.
int walk_page_range(HmmWalk& w, uint64_t start, uint64_t end) {
  w.mm.mmap_lock.assert_held_read();
  for (uint64_t addr = start; addr < end;) {
    Vma* vma = w.mm.find_vma(VirtAddr(addr));
    if (vma == nullptr || vma->vm_start.value() >= end) {
      w.vma = nullptr;
      return walk_hole(w, addr, end);
    }
    if (vma->vm_start.value() > addr) {
      w.vma = nullptr;
      if (const int r = walk_hole(w, addr, vma->vm_start.value()); r != 0) return r;
      addr = vma->vm_start.value();
    }
    const uint64_t next = std::min(end, vma->vm_end.value());
    w.vma = vma;
    int r = walk_test(w, addr, next);
    if (r == kSkipVma)
      r = 0;
    else if (r == 0)
      r = is_vm_hugetlb_page(vma) ? walk_hugetlb(w, addr, next) : walk_tables(w, addr, next);
    if (r != 0) return r;
    addr = next;
  }
  return 0;
}

}  // namespace

int hmm_range_fault(HmmRange* range) {
  if (range == nullptr || range->notifier == nullptr || range->notifier->mm() == nullptr)
    return -EINVAL;
  if (range->start >= range->end || !range->start.is_page_aligned() ||
      !range->end.is_page_aligned())
    return -EINVAL;
  Mm& mm = *range->notifier->mm();
  mm.mmap_lock.assert_held_read();
  HmmWalk w{range, mm, range->start.value()};
  int ret = 0;
  do {
    // If the range is no longer valid, force a retry.
    if (mmu_interval_check_retry(range->notifier, range->notifier_seq)) return -EBUSY;
    // Entries below w.last hold outputs; the walk resumes there.
    ret = walk_page_range(w, w.last, range->end.value());
  } while (ret == -EBUSY);
  return ret;
}

}  // namespace pinmm
