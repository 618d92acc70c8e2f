#include "pinmm/phys/page_isolation.h"

#include <algorithm>

#include <fmt/format.h>

#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pageblock.h"

namespace pinmm {

namespace {

// A large folio hotplug or alloc_contig_range could move or free: any
// hugetlb folio (both of pinmm's sizes support migration, and free ones
// can be dissolved), or a THP on the LRU or with movable_ops.
bool large_folio_movable(const Folio* folio) {
  if (folio_test_hugetlb(folio)) return true;  // hugepage_migration_supported()
  return folio_test_lru(folio) || __folio_test_movable(folio);
}

// set_migratetype_isolate: checks [check_start, check_end) of the block at
// `block` and isolates the block, under the zone lock.
int set_migratetype_isolate(MemorySystem& ms, Pfn block, Pfn check_start, Pfn check_end,
                            MigrateType migratetype, int flags, Pfn* unmovable) {
  Zone* zone = page_zone(ms.pfn_to_page(block));
  SpinGuard g(zone->lock);
  if (get_pageblock_migratetype(ms.pfn_to_page(block)) == MIGRATE_ISOLATE) return -EBUSY;
  if (const Page* page = has_unmovable_pages(ms, check_start, check_end, migratetype, flags)) {
    // REPORT_FAILURE: the kernel dumps the page; pinmm hands its PFN back.
    if (unmovable != nullptr) *unmovable = ms.page_to_pfn(page);
    return -EBUSY;
  }
  if (!zone->isolate_pageblock_locked(block)) {
    if (unmovable != nullptr) *unmovable = block;
    return -EBUSY;
  }
  return 0;
}

}  // namespace

const Page* has_unmovable_pages(const MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype,
                                int flags) {
  const Page* first = ms.pfn_to_page(start);
  if (is_migrate_cma(get_pageblock_migratetype(first))) {
    // alloc_contig_range must isolate CMA blocks even though they are not
    // movable in general.
    return is_migrate_cma(migratetype) ? nullptr : first;
  }
  for (Pfn pfn = start; pfn < end; pfn += PageCount(1)) {
    const Page* page = ms.pfn_to_page(pfn);
    if (PageReserved(page)) return page;
    // Everything in ZONE_MOVABLE is movable by definition (pins included).
    if (page_zone(page)->type() == ZONE_MOVABLE) continue;
    const Folio* folio = page_folio(page);
    if (folio_test_large(folio)) {
      if (!large_folio_movable(folio)) return page;
      const uint64_t left =
          folio_nr_pages(folio) - (pfn.value() - ms.page_to_pfn(&folio->page).value());
      pfn += PageCount(left - 1);
      continue;
    }
    if (page->refcount() == 0) {
      if (PageBuddy(page)) pfn += PageCount((uint64_t{1} << buddy_order(page)) - 1);
      continue;
    }
    if ((flags & MEMORY_OFFLINE) && (folio_test_hwpoison(folio) || PageOffline(page))) continue;
    if (folio_test_lru(folio) || __folio_test_movable(folio)) continue;
    return page;
  }
  return nullptr;
}

int start_isolate_page_range(MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype,
                             int flags, Pfn* unmovable) {
  const Pfn first = pageblock_start_pfn(start);
  for (Pfn block = first; block < end; block += PageCount(pageblock_nr_pages)) {
    const Pfn check_start = std::max(block, start);
    const Pfn check_end = std::min(pageblock_end_pfn(block), end);
    const int ret =
        set_migratetype_isolate(ms, block, check_start, check_end, migratetype, flags, unmovable);
    if (ret != 0) {
      undo_isolate_page_range(ms, first, block, migratetype);
      return ret;
    }
  }
  return 0;
}

void undo_isolate_page_range(MemorySystem& ms, Pfn start, Pfn end, MigrateType migratetype) {
  for (Pfn block = pageblock_start_pfn(start); block < end;
       block += PageCount(pageblock_nr_pages)) {
    Page* page = ms.pfn_to_page(block);
    if (get_pageblock_migratetype(page) != MIGRATE_ISOLATE) continue;
    page_zone(page)->unisolate_pageblock(block, migratetype);
  }
}

int test_pages_isolated(MemorySystem& ms, Pfn start, Pfn end, int flags, Pfn* busy) {
  Pfn fin = start;
  int ret = 0;
  for (Pfn block = pageblock_start_pfn(start); block < end;
       block += PageCount(pageblock_nr_pages)) {
    if (get_pageblock_migratetype(ms.pfn_to_page(block)) != MIGRATE_ISOLATE) {
      fin = std::max(block, start);
      ret = -EBUSY;
      break;
    }
  }
  if (ret == 0) {
    Zone* zone = page_zone(ms.pfn_to_page(start));
    SpinGuard g(zone->lock);
    for (fin = start; fin < end;) {
      const Page* page = ms.pfn_to_page(fin);
      if (PageBuddy(page)) {
        fin += PageCount(uint64_t{1} << buddy_order(page));
      } else if ((flags & MEMORY_OFFLINE) && folio_test_hwpoison(page_folio(page))) {
        fin += PageCount(1);
      } else if ((flags & MEMORY_OFFLINE) && PageOffline(page) && page->refcount() == 0) {
        fin += PageCount(1);
      } else {
        break;
      }
    }
    if (fin < end) ret = -EBUSY;
  }
  if (ret != 0 && busy != nullptr) *busy = fin;
  PINMM_TRACE(ms.tracer(), test_pages_isolated,
              "start_pfn={:#x} end_pfn={:#x} fin_pfn={:#x} ret={}", start.value(), end.value(),
              fin.value(), ret == 0 ? "success" : "fail");
  return ret;
}

}  // namespace pinmm
