// vm/'s internal interfaces between its own files (the kernel's
// mm/internal.h). Not for other layers.
#pragma once

#include "pinmm/vm/fault.h"
#include "pinmm/vm/huge_memory.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/tlb.h"

namespace pinmm {

// ---- memory.cc ----
// Clears every mapping in [start, end) of `vma` (munmap, madvise
// DONTNEED, truncate, exit). References are dropped through `tlb` after its
// flush. Caller holds the mmap lock (write for munmap/exit, read for
// DONTNEED and truncate). `only_mapping`: for truncate, zap only entries
// mapping folios of that page cache (and private COW copies when
// even_cows).
struct ZapDetails {
  const void* only_mapping = nullptr;
  bool even_cows = true;
};
void unmap_single_vma(MmuGather& tlb, Vma* vma, VirtAddr start, VirtAddr end,
                      const ZapDetails& details = {});
// Frees the page-table pages covering [start, end) that lie entirely within
// [floor, ceiling) (the gap left by the unmapped VMAs).
void free_pgtables(Mm& mm, VirtAddr start, VirtAddr end, VirtAddr floor, VirtAddr ceiling,
                   MmuGather& tlb);
// fork: copies the page-table entries of src_vma into dst_vma's mm.
Result<void> copy_page_range(Vma* dst_vma, Vma* src_vma);
// mprotect: applies the VMA's new vm_page_prot to its entries in [start, end).
void change_protection(Vma* vma, VirtAddr start, VirtAddr end, MmuGather& tlb);
// Faults in [start, end) of one VMA with the given flags; caller holds the
// mmap lock for reading. Returns pages done or an error.
Result<void> populate_range(Vma* vma, VirtAddr start, VirtAddr end, bool write);

// The COW mapping's protection without write (private mappings, and shared
// ones that need write notification).
pgprot_t vma_wrprotect_prot(const Vma* vma);
// vma_set_page_prot: vm_page_prot from the flags, write-protected when the
// file system wants write notification.
void vma_set_page_prot(Vma* vma);

// Faults below handle_mm_fault.
VmFault do_anonymous_page(VmFaultInfo& vmf);
VmFault do_fault(VmFaultInfo& vmf);
VmFault do_wp_page(VmFaultInfo& vmf);
VmFault do_swap_page(VmFaultInfo& vmf);
// Replaces the device-exclusive entry at *ptep (ptl held, folio locked) with
// the mapping it stands for: the entry kept the reference, the mapcount is
// added back (restore_exclusive_pte).
void restore_exclusive_pte(Vma* vma, Page* page, VirtAddr addr, pte_t* ptep);
// Waits for a migration to finish (without a folio reference) after seeing a
// migration entry in the PTE for `address`.

// ---- huge_memory.cc ----
VmFault do_huge_pmd_anonymous_page(VmFaultInfo& vmf);
VmFault do_huge_pmd_wp_page(VmFaultInfo& vmf);
void huge_pmd_set_accessed(VmFaultInfo& vmf);
// Splits PMD leaves that straddle `at` (a VMA boundary about to appear).
void vma_adjust_trans_huge(Vma* vma, VirtAddr at);
// Zap/copy/protect one PMD leaf. Caller holds the PMD lock for zap/change.
void zap_huge_pmd(Vma* vma, pmd_t* pmd, VirtAddr addr, MmuGather& tlb, const ZapDetails& details);
// 0, or -EAGAIN: the PMD was split (the caller copies PTEs instead).
int copy_huge_pmd(Vma* dst_vma, Vma* src_vma, pmd_t* dst_pmd, pmd_t* src_pmd, VirtAddr addr);
void change_huge_pmd(Vma* vma, pmd_t* pmd, VirtAddr addr);

// ---- hugetlb_vm.cc ----
VmFault hugetlb_fault(Vma* vma, VirtAddr address, FaultFlags flags);
Result<void> copy_hugetlb_page_range(Vma* dst_vma, Vma* src_vma);
void unmap_hugepage_range(Vma* vma, VirtAddr start, VirtAddr end, MmuGather& tlb,
                          const ZapDetails& details);
void hugetlb_change_protection(Vma* vma, VirtAddr start, VirtAddr end, MmuGather& tlb);
// Reservations (KERNEL-SPEC: hugetlb_reserve_pages): ENOMEM if the pool
// cannot back the mapping.
Result<void> hugetlb_reserve_pages(Vma* vma);
void hugetlb_vma_release(Vma* vma);
// A pool folio for a hugetlbfs file outside any mapping (memfd_alloc_folio):
// the file's reservation if it has one left, else a free page nobody has
// reserved; nullptr if neither. Not zeroed.
Folio* alloc_hugetlb_folio_for_file(File& file);

// ---- filemap.cc ----
// A file VMA joins/leaves its file's i_mmap.
void file_vma_link(Vma* vma);
void file_vma_unlink(Vma* vma);
// Zaps the pages of the file beyond `from_index` in every VMA mapping it.
void unmap_mapping_range(File& file, uint64_t from_index, bool even_cows);

}  // namespace pinmm
