// Unmovable kernel allocations of whole pages, each tagged with an owner.
//
// Linux counterpart: slab pages and alloc_pages(GFP_KERNEL) by drivers —
// memory the kernel cannot migrate, which fragments zones and blocks
// offlining and contiguous allocation. kmalloc_pages() gives 2^order pages
// (a slab-typed folio) and remembers the owner tag, so a report can say
// which kernel user holds a PFN. Counted in nr_slab_unreclaimable (or
// nr_slab_reclaimable with __GFP_RECLAIMABLE). Injection point: kmalloc_pages.
#pragma once

#include <string>
#include <string_view>

#include "pinmm/phys/gfp.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page.h"

namespace pinmm {

// nullptr on failure. gfp must not contain __GFP_MOVABLE (kernel memory is
// never movable); such a request fails with a warning.
Page* kmalloc_pages(MemorySystem& ms, Order order, std::string_view owner, Gfp gfp = GFP_KERNEL,
                    int nid = NUMA_NO_NODE);
void kfree_pages(Page* page);
// The owner tag of a kmalloc_pages() allocation containing `page`, or "".
std::string kernel_page_owner(const Page* page);

}  // namespace pinmm
