// Page isolation: taking a PFN range away from the allocator while its pages
// are migrated out (memory offlining, alloc_contig_range).
//
// Linux counterpart: mm/page_isolation.c (has_unmovable_pages,
// set_migratetype_isolate, start_isolate_page_range,
// undo_isolate_page_range, test_pages_isolated). KERNEL-SPEC 7.2 step 3 and
// 8.3 step 2. A pageblock is isolated only if it holds no unmovable page:
// reserved pages are always unmovable; in ZONE_MOVABLE everything else is
// assumed movable (pinned pages are not detected here); elsewhere a page
// must be free, on the LRU, movable_ops, part of a hugetlb folio (in use
// and migratable, or free and dissolvable) or of an LRU/movable THP. CMA blocks count as movable
// only when the caller isolates for MIGRATE_CMA.
//
// pinmm isolates whole pageblocks: for a range that starts or ends inside a
// block, only the range's part is checked for unmovable pages, but the whole
// block is isolated (6.12's isolate_single_pageblock would also migrate
// in-use compound pages straddling the boundary; pinmm's ranges are
// pageblock-aligned for hotplug, and its CMA areas are whole pageblocks).
//
// Thread safety: each block is checked and isolated under its zone's lock.
#pragma once

#include <cstdint>

#include "pinmm/base/types.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

class MemorySystem;
struct Page;

// Isolation flags (include/linux/page-isolation.h).
inline constexpr int MEMORY_OFFLINE = 0x1;  // hwpoisoned / PageOffline pages count as free
inline constexpr int REPORT_FAILURE = 0x2;  // log the unmovable page

// The first page of [start, end) (inside one pageblock) that would keep the
// block from being isolated for `migratetype`, or nullptr. Caller holds the
// zone lock.
const Page* has_unmovable_pages(const MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype,
                                int flags);

// Isolates every pageblock covering [start, end), restoring `migratetype` to
// those already done if one fails. 0, or -EBUSY (a block already isolated,
// holding an unmovable page, or straddling zones); *unmovable (if not
// nullptr) is the page that refused.
int start_isolate_page_range(MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype,
                             int flags, Pfn* unmovable = nullptr);
// Gives every isolated pageblock covering [start, end) back `migratetype`.
void undo_isolate_page_range(MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype);

// For a range within one zone: 0 if every pageblock covering [start, end) is isolated and every
// page of the range is free (or, with MEMORY_OFFLINE, hwpoisoned or an unreferenced PageOffline
// page); else -EBUSY with *busy (if not nullptr) the first PFN that is not. Emits the
// test_pages_isolated trace event.
int test_pages_isolated(MemorySystem& ms, Pfn start, Pfn end, int flags, Pfn* busy = nullptr);

}  // namespace pinmm
