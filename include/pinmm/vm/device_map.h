// What a driver's mmap handler uses to fill a VMA of a device file.
//
// Linux counterpart: remap_pfn_range() and vm_insert_page() (mm/memory.c).
// Both run inside the handler File::create_device() registers, with the
// mmap lock held for writing and the new VMA in place.
//  - remap_pfn_range maps raw PFNs: the VMA becomes VM_IO | VM_PFNMAP |
//    VM_DONTEXPAND | VM_DONTDUMP and its entries are special (no struct page
//    is referenced or counted), so GUP refuses it and rmap never sees it.
//  - vm_insert_page maps a driver's own (non-anonymous) page with a
//    reference and a mapcount: the VMA becomes VM_MIXEDMAP.
// pinmm models no MMIO: the PFNs must be simulated RAM (a driver exposing a
// buffer it allocated, the common case for both calls).
#pragma once

#include <cstdint>

#include "pinmm/base/errno.h"
#include "pinmm/phys/page.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

// Maps [addr, addr + size) of `vma` to PFNs starting at `pfn` with the VMA's
// protection. EINVAL: the range is unaligned or outside the VMA, a private
// (COW) mapping is not covered whole, or a PFN is not RAM. EBUSY: something
// is mapped there already. ENOMEM: no memory for page tables (what was
// mapped so far stays; the VMA's unmap removes it).
Result<void> remap_pfn_range(Vma& vma, VirtAddr addr, Pfn pfn, uint64_t size);

// Maps `page` at `addr` with a reference. EFAULT: addr outside the VMA;
// EINVAL: an anonymous or free page, or a VM_PFNMAP VMA; EBUSY: something
// is mapped there already; ENOMEM: no memory for page tables.
Result<void> vm_insert_page(Vma& vma, VirtAddr addr, Page* page);

}  // namespace pinmm
