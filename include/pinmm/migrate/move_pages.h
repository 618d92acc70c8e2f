// move_pages(2): moving pages of a process between nodes.
//
// Linux counterpart: kernel_move_pages, do_pages_move,
// add_folio_for_migration, do_move_pages_to_node and do_pages_stat
// (mm/migrate.c). Pages are queued per target node and migrated with
// migrate_pages(MIGRATE_SYNC, MR_SYSCALL) into that node only
// (GFP_HIGHUSER_MOVABLE | __GFP_THISNODE), with the per-CPU LRU caches
// disabled for the duration of the call.
//
// Per-page status: the node the page is on (after the move), or
// -EFAULT (no VMA, or the shared zero page), -ENOENT (not present, or a
// device page), -EACCES (mapped by several processes without
// MPOL_MF_MOVE_ALL), -EBUSY (could not be isolated). The return value is
// the number of pages not migrated by a migrate_pages call plus those not
// yet looked at (best effort: callers retry), 0, or an errno for the call:
// -ENODEV for a node that does not exist or has no memory, -EINVAL for bad
// flags.
#pragma once

#include <span>

#include "pinmm/base/errno.h"
#include "pinmm/base/types.h"

namespace pinmm {

class Mm;

inline constexpr int MPOL_MF_MOVE = 1 << 1;
inline constexpr int MPOL_MF_MOVE_ALL = 1 << 2;

// nodes empty: only report each page's node in `status` (do_pages_stat).
// `status` must have pages.size() entries.
Result<long> move_pages(Mm& mm, std::span<const VirtAddr> pages, std::span<const int> nodes,
                        std::span<int> status, int flags);

}  // namespace pinmm
