// remap_pfn_range and vm_insert_page: mappings a device driver sets up.
#include "pinmm/vm/device_map.h"

#include "pinmm/vm/fault.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

// The locked, empty PTE for `addr`, allocating page tables on the way.
Result<LockedPte> empty_pte_locked(Mm& mm, VirtAddr addr) {
  pmd_t* pmd = TRY(pmd_alloc(mm, addr));
  TRY(pte_alloc(mm, pmd));
  LockedPte lp = pte_offset_map_lock(mm, pmd, addr);
  if (!lp) return Errno(EBUSY);  // a huge mapping is there
  if (!pte_none(ptep_get(lp.pte))) {
    pte_unmap_unlock(lp);
    return Errno(EBUSY);
  }
  return lp;
}

}  // namespace

Result<void> remap_pfn_range(Vma& vma, VirtAddr addr, Pfn pfn, uint64_t size) {
  MemorySystem& ms = vma.vm_mm().ms();
  if (!addr.is_page_aligned() || size % PAGE_SIZE != 0 || size == 0) return Errno(EINVAL);
  const VirtAddr end = addr + size;
  if (addr < vma.vm_start || end > vma.vm_end || end < addr) return Errno(EINVAL);
  // A COW mapping must be remapped whole (the kernel records the first PFN
  // in vm_pgoff to tell the PFN map from COWed pages).
  if (is_cow_mapping(vma.vm_flags) && (addr != vma.vm_start || end != vma.vm_end))
    return Errno(EINVAL);
  const PageCount pages(size >> PAGE_SHIFT);
  if (pfn + pages > ms.max_pfn() || pfn + pages < pfn) return Errno(EINVAL);
  for (uint64_t i = 0; i < pages.value(); ++i) {
    if (!ms.pfn_valid(pfn + PageCount(i))) return Errno(EINVAL);
  }
  if (is_cow_mapping(vma.vm_flags)) vma.vm_pgoff = pfn.value();
  vma.vm_flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
  for (uint64_t i = 0; i < pages.value(); ++i) {
    LockedPte lp = TRY(empty_pte_locked(vma.vm_mm(), addr + (i << PAGE_SHIFT)));
    set_pte(lp.pte, pte_mkspecial(pfn_pte(pfn + PageCount(i), vma.vm_page_prot)));
    pte_unmap_unlock(lp);
  }
  return {};
}

Result<void> vm_insert_page(Vma& vma, VirtAddr addr, Page* page) {
  if (!vma.contains(addr)) return Errno(EFAULT);
  Folio* folio = page_folio(page);
  if (folio_ref_count(folio) <= 0 || folio_test_anon(folio) || PageBuddy(&folio->page))
    return Errno(EINVAL);
  if (any(vma.vm_flags & VM_PFNMAP)) return Errno(EINVAL);
  vma.vm_flags |= VM_MIXEDMAP;
  Mm& mm = vma.vm_mm();
  LockedPte lp = TRY(empty_pte_locked(mm, addr.page_align_down()));
  folio_get(folio);
  mm.add_mm_counter(folio_test_swapbacked(folio) ? MM_SHMEMPAGES : MM_FILEPAGES, 1);
  folio_add_file_rmap_ptes(folio, page, 1, &vma);
  set_pte(lp.pte, pfn_pte(mm.ms().page_to_pfn(page), vma.vm_page_prot));
  pte_unmap_unlock(lp);
  return {};
}

}  // namespace pinmm
