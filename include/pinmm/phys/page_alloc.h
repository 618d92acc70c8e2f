// The page allocator's interface: allocate and free blocks of 2^order pages.
//
// Linux counterpart: alloc_pages(), alloc_pages_node(), folio_alloc(),
// __free_pages() (include/linux/gfp.h, mm/page_alloc.c). The allocation walks
// the preferred node's zonelist (other nodes after it unless
// __GFP_THISNODE), from the highest zone gfp_zone() allows down to
// ZONE_NORMAL, first against the low watermark and then against the min
// watermark (lowered for __GFP_HIGH, ignored for PF_MEMALLOC and
// __GFP_MEMALLOC). pinmm has no reclaim, compaction or OOM killer: when both
// passes fail the allocation returns nullptr. There are no per-CPU page
// lists either: every free goes straight to the buddy, as if
// zone_pcp_disable() were always in effect.
//
// Every allocation of order > 0 is a compound page, i.e. a folio (as if
// __GFP_COMP were always given), so that each PFN's state is known.
// Allocation returns pages with refcount 1; __GFP_ZERO zeroes the frames.
// Counters: pgalloc_<zone> (pages), numa_*, pgfree (pages), nr_free_pages,
// nr_free_cma. Trace events: mm_page_alloc, mm_page_free,
// mm_page_alloc_zone_locked, mm_page_alloc_extfrag. Injection points:
// alloc_pages, alloc_pages.movable, alloc_pages.unmovable.
#pragma once

#include "pinmm/phys/gfp.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page.h"

namespace pinmm {

// From the current task's NUMA node.
Page* alloc_pages(MemorySystem& ms, Gfp gfp, Order order);
// From node `nid` (NUMA_NO_NODE: the current task's node).
Page* alloc_pages_node(MemorySystem& ms, int nid, Gfp gfp, Order order);
// __alloc_pages: from the zonelist of `preferred_nid`, using only the
// zones of nodes in `nodemask` (all nodes if nullptr).
Page* __alloc_pages(MemorySystem& ms, Gfp gfp, Order order, int preferred_nid,
                    const NodeMask* nodemask);
Folio* folio_alloc(MemorySystem& ms, Gfp gfp, Order order, int nid = NUMA_NO_NODE);
// Drops the caller's reference to the block allocated with this order and
// frees it if that was the last one.
void __free_pages(Page* page, Order order);
inline void free_page(Page* page) { __free_pages(page, Order(0)); }

// Hands a block whose refcount already reached zero to the buddy allocator
// (the end of folio_put()); checks and resets the page state first.
void free_frozen_pages(Page* page, Order order);

// Turns 2^order pages starting at `head` into a compound page (folio): head
// gets PG_head, tails point at it, page[1] holds the order and zeroed
// large-folio counters.
void prep_compound_page(Page* head, unsigned order);
// The reverse, for a folio split (__split_huge_page): every page becomes
// its own order-0 folio. Tails keep only PG_anon_exclusive (a per-page
// state) and come back with refcount 0 (frozen), mapcount 0, no mapping;
// the head loses PG_head. The caller owns the frozen folio and fills in the
// rest.
void split_compound_page(Page* head, unsigned order);

// The pages of [start, end), taken with Zone::take_free_blocks, become
// allocated: order-0 pages with refcount 1 (split_free_pages), or with
// `compound` one folio of order log2(end - start) at `start`
// (prep_new_page). __GFP_ZERO zeroes them.
void prep_contig_pages(MemorySystem& ms, Pfn start, Pfn end, Gfp gfp, bool compound);

// Where memory being given to the buddy allocator comes from (enum
// meminit_context): boot memory (PG_reserved until freed) or a memory block
// being onlined (PageOffline until freed).
enum MeminitContext : uint8_t { MEMINIT_EARLY, MEMINIT_HOTPLUG };

// Frees boot or onlined memory into the buddy allocator (memblock_free_all,
// generic_online_page): clears PG_reserved (boot) or the PageOffline type
// (hotplug), counts the pages as managed.
void __free_pages_core(Page* page, Order order, MeminitContext context = MEMINIT_EARLY);

}  // namespace pinmm
