// Why memory does not move: filling in the records of phys/blockers.h.
//
// Linux counterpart: the diagnostics around migration failures —
// dump_page() in do_migrate_range ("migration failure"), alloc_contig_dump_pages,
// and the reasoning of folio_expected_ref_count (mm/internal.h): a folio
// with more references than its mappings and caches account for cannot be
// migrated. pinmm adds what the kernel cannot know: who holds the pins.
//
// Thread safety: reads page state locklessly, so a description of a page
// that is changing is a snapshot; the pin-owner table is read under its
// lock.
#pragma once

#include <vector>

#include "pinmm/base/list.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;

// The references a folio's mappings and page cache account for (one per
// mapping, one per page in the page cache, one for PG_private).
int folio_expected_ref_count(const Folio* folio);

// Why the page at `pfn` keeps its range from being vacated. A pin, extra
// references or an unmovable kernel allocation are recognised from the page;
// otherwise the result carries `observed` (what the caller saw go wrong) and
// `err`. `isolated`: the folio holds an isolation reference (it is on a
// migration list).
PageBlocker describe_blocker(MemorySystem& ms, Pfn pfn, BlockReason observed, int err = 0,
                             bool isolated = false);

// The folios left on `list` after migrate_pages returned `err` (a negative
// errno, or a count of failed folios, recorded as -EAGAIN); they are still
// isolated.
std::vector<PageBlocker> describe_migration_list(MemorySystem& ms, ListHead* list, int err);

}  // namespace pinmm
