// alloc_contig_range and its helpers (mm/page_alloc.c, with the scanner of
// mm/compaction.c's isolate_migratepages_range in alloc_contig mode).
#include <bit>

#include "pinmm/base/task.h"
#include "pinmm/cma/cma.h"
#include "pinmm/migrate/blockers.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/page_isolation.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/vm/rmap.h"

namespace pinmm {

namespace {

constexpr uint64_t COMPACT_CLUSTER_MAX = 32;  // SWAP_CLUSTER_MAX pages per batch

// __alloc_contig_verify_gfp_mask: the flags the caller may pass, and the
// mask migration allocates with.
int __alloc_contig_verify_gfp_mask(Gfp gfp, Gfp* cc_gfp) {
  const Gfp reclaim_mask = __GFP_IO | __GFP_FS | __GFP_RECLAIM;
  const Gfp action_mask =
      __GFP_COMP | __GFP_RETRY_MAYFAIL | __GFP_NOWARN | __GFP_ZERO | __GFP_ZEROTAGS;
  const Gfp cc_action_mask = __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
  // Placement hints are irrelevant for a given range.
  gfp &= ~(GFP_ZONEMASK | __GFP_RECLAIMABLE | __GFP_WRITE | __GFP_HARDWALL | __GFP_THISNODE |
           __GFP_MOVABLE);
  if (any(gfp & ~(reclaim_mask | action_mask))) return -EINVAL;
  *cc_gfp = (gfp & (reclaim_mask | cc_action_mask)) | __GFP_HARDWALL | __GFP_MOVABLE |
            __GFP_RETRY_MAYFAIL;
  return 0;
}

// isolate_migratepages_range for alloc_contig_range: from *pfn, isolates
// the LRU and movable_ops folios of [*pfn, end) onto `list`, up to
// COMPACT_CLUSTER_MAX pages; *pfn ends where the scan stopped. Returns the
// pages isolated.
uint64_t isolate_migratepages_range(MemorySystem& ms, Pfn* pfn, Pfn end, ListHead* list) {
  uint64_t nr = 0;
  for (; *pfn < end && nr < COMPACT_CLUSTER_MAX; ++*pfn) {
    Page* page = ms.pfn_to_page(*pfn);
    if (PageBuddy(page)) {
      // Racy without the zone lock, as in the kernel; a bad order is skipped.
      const unsigned order = buddy_order(page);
      if (order > 0 && order <= MAX_PAGE_ORDER) *pfn += Order(order).nr_pages() - PageCount(1);
      continue;
    }
    Folio* folio = page_folio(page);
    const bool movable = folio_test_lru(folio) || __folio_test_movable(folio);
    if (!movable || !folio_try_get(folio)) {
      if (folio_test_large(folio))
        *pfn = std::max(*pfn, folio_pfn(folio) + PageCount(folio_nr_pages(folio) - 1));
      continue;
    }
    if (page_folio(page) == folio && !folio_test_hugetlb(folio) &&
        isolate_folio_to_list(folio, list)) {
      nr += folio_nr_pages(folio);
      *pfn = folio_pfn(folio) + PageCount(folio_nr_pages(folio) - 1);
    }
    folio_put(folio);
  }
  return nr;
}

// __alloc_contig_migrate_range: empties [start, end) by migration to the
// range's node. 0, -EBUSY (the same batch survived 5 attempts), -EINTR,
// -ENOMEM. What stayed behind is described into `blocked`.
int __alloc_contig_migrate_range(MemorySystem& ms, Zone& zone, Pfn start, Pfn end,
                                 MigrateType migratetype, Gfp cc_gfp, BlockedOperation* blocked) {
  MigrationTargetControl mtc;
  mtc.nid = zone.nid();
  mtc.gfp_mask = cc_gfp;
  mtc.reason = MR_CONTIG_RANGE;
  const MigrationTarget target = migration_target(ms, mtc);
  ListHead list;
  init_list_head(&list);
  Pfn pfn = start;
  unsigned tries = 0;
  int ret = 0;
  uint64_t migrated = 0, mapped = 0;
  lru_cache_disable(ms);
  while (pfn < end || !list_empty(&list)) {
    if (current().fatal_signal_pending()) {
      ret = -EINTR;
      break;
    }
    if (list_empty(&list)) {
      isolate_migratepages_range(ms, &pfn, end, &list);
      tries = 0;
      if (list_empty(&list)) continue;
    } else if (++tries == 5) {
      ret = -EBUSY;
      break;
    }
    for (ListHead* p = list.load_next(); p != &list; p = p->load_next()) {
      const Folio* f = folio_of_lru(p);
      mapped += static_cast<uint64_t>(folio_mapcount(f)) * folio_nr_pages(f);
    }
    unsigned succeeded = 0;
    ret = migrate_pages(ms, &list, target, MIGRATE_SYNC, MR_CONTIG_RANGE, &succeeded);
    migrated += succeeded;
    if (ret == -ENOMEM) break;  // migrate_pages gave up; so do we
  }
  lru_cache_enable(ms);
  if (ret < 0) {
    if (blocked != nullptr) {
      for (PageBlocker& b : describe_migration_list(ms, &list, ret))
        blocked->add(std::move(b));
    }
    putback_movable_pages(&list);
  }
  PINMM_TRACE(ms.tracer(), mm_alloc_contig_migrate_range_info,
              "start={:#x} end={:#x} migratetype={} nr_migrated={} nr_reclaimed={} nr_mapped={}",
              start.value(), end.value(), static_cast<int>(migratetype), migrated, 0, mapped);
  return ret < 0 ? ret : 0;
}

}  // namespace

int alloc_contig_range(MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype, Gfp gfp,
                       BlockedOperation* blocked) {
  if (start >= end || end > ms.max_pfn() || !ms.pfn_valid(start)) return -EINVAL;
  Zone& zone = *page_zone(ms.pfn_to_page(start));
  if (!zone.zone_spans_pfn(end - PageCount(1))) return -EINVAL;
  gfp = current_gfp_context(gfp);
  Gfp cc_gfp = GFP_NONE;
  if (__alloc_contig_verify_gfp_mask(gfp, &cc_gfp) != 0) return -EINVAL;

  Pfn refused{0};
  if (start_isolate_page_range(ms, start, end, migratetype, 0, &refused) != 0) {
    if (blocked != nullptr) blocked->add(describe_blocker(ms, refused, BlockReason::kUnmovable));
    return -EBUSY;
  }
  int ret = __alloc_contig_migrate_range(ms, zone, start, end, migratetype, cc_gfp, blocked);
  if (ret == 0 || ret == -EBUSY) {
    // -EBUSY falls through: the busy pages may have been freed meanwhile;
    // test_pages_isolated decides.
    ret = 0;
    const Pfn outer_start = zone.free_block_start(start);
    Pfn busy{0};
    if (test_pages_isolated(ms, outer_start, end, 0, &busy) != 0) {
      if (blocked != nullptr) blocked->add(describe_blocker(ms, busy, BlockReason::kBusy));
      ret = -EBUSY;
    } else {
      const Pfn outer_end = zone.take_free_blocks(outer_start, end);
      if (outer_end == Pfn(0)) {
        ret = -EBUSY;
      } else if (!any(gfp & __GFP_COMP)) {
        prep_contig_pages(ms, outer_start, outer_end, gfp, /*compound=*/false);
        if (start != outer_start) free_contig_range(ms, outer_start, start - outer_start);
        if (end != outer_end) free_contig_range(ms, end, outer_end - end);
      } else if (start == outer_start && end == outer_end &&
                 std::has_single_bit((end - start).value())) {
        prep_contig_pages(ms, start, end, gfp, /*compound=*/true);
      } else {
        // The kernel WARNs: the buddy did not line up with the request.
        prep_contig_pages(ms, outer_start, outer_end, gfp, /*compound=*/false);
        free_contig_range(ms, outer_start, outer_end - outer_start);
        ret = -EINVAL;
      }
    }
  }
  undo_isolate_page_range(ms, start, end, migratetype);
  return ret;
}

void free_contig_range(MemorySystem& ms, Pfn pfn, PageCount nr) {
  Folio* folio = page_folio(ms.pfn_to_page(pfn));
  if (folio_test_large(folio)) {
    // The kernel WARNs on a size mismatch and frees nothing.
    if (MM_WARN_ON_ONCE(nr.value() != folio_nr_pages(folio))) return;
    folio_put(folio);
    return;
  }
  for (uint64_t i = 0; i < nr.value(); ++i)
    put_page(ms.pfn_to_page(pfn + PageCount(i)));
}

Page* alloc_contig_pages(MemorySystem& ms, PageCount nr, Gfp gfp, int nid) {
  if (nr.value() == 0) return nullptr;
  if (nid == NUMA_NO_NODE) nid = 0;
  const ZoneType highest = gfp_zone(gfp);
  const uint64_t align = std::has_single_bit(nr.value()) ? nr.value() : 1;
  for (Zone* z : ms.node(nid).zonelist(!any(gfp & __GFP_THISNODE))) {
    if (z->type() > highest || !z->populated()) continue;
    Pfn pfn((z->zone_start_pfn().value() + align - 1) / align * align);
    for (; pfn + nr <= z->zone_end_pfn(); pfn += PageCount(align)) {
      // pfn_range_valid_contig: online pages of this zone, none reserved
      // and no hugetlb folio.
      bool valid = true;
      for (Pfn p = pfn; p < pfn + nr && valid; ++p) {
        const Page* page = ms.pfn_to_online_page(p);
        valid = page != nullptr && page_zone(page) == z && !PageReserved(page) &&
                !folio_test_hugetlb(page_folio(page));
      }
      if (!valid) continue;
      if (alloc_contig_range(ms, pfn, pfn + nr, MIGRATE_MOVABLE, gfp) == 0)
        return ms.pfn_to_page(pfn);
    }
  }
  return nullptr;
}

}  // namespace pinmm
