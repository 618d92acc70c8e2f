// The buddy allocator (mm/page_alloc.c, 6.12): free lists per order and
// migratetype, splitting and merging, the fallback order with pageblock
// claiming and single-page stealing, the CMA balancing rule, watermarks, and
// the allocation/free entry points.
#include "pinmm/phys/page_alloc.h"

#include <bit>
#include <cstddef>
#include <optional>

#include "pinmm/base/task.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/phys/zone.h"

namespace pinmm {
namespace {

Page* page_of(ListHead* lh) {
  return reinterpret_cast<Page*>(reinterpret_cast<char*>(lh) - offsetof(Page, lru));
}

Page* first_free_page(FreeArea& area, MigrateType mt) {
  ListHead* head = &area.free_list[mt];
  return list_empty(head) ? nullptr : page_of(head->load_next());
}

void set_buddy_order(Page* page, unsigned order) {
  page->set_private_data(order);
  page->set_type(PageType::kBuddy);
}

// The order in which an allocation of a migratetype falls back to the others.
constexpr MigrateType kFallbacks[MIGRATE_PCPTYPES][MIGRATE_PCPTYPES - 1] = {
    /* MIGRATE_UNMOVABLE */ {MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE},
    /* MIGRATE_MOVABLE */ {MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE},
    /* MIGRATE_RECLAIMABLE */ {MIGRATE_UNMOVABLE, MIGRATE_MOVABLE},
};

// Whether a fallback of this order may take over the rest of the pageblock.
bool can_steal_fallback(unsigned order, MigrateType start_mt) {
  if (order >= pageblock_order) return true;
  return order >= pageblock_order / 2 || start_mt == MIGRATE_RECLAIMABLE ||
         start_mt == MIGRATE_UNMOVABLE;
}

// mm_page_alloc_extfrag: an allocation fell back to another migratetype.
void trace_extfrag(MemorySystem& ms, Page* page, unsigned alloc_order, unsigned fallback_order,
                   MigrateType alloc_mt, MigrateType fallback_mt) {
  PINMM_TRACE(ms.tracer(), mm_page_alloc_extfrag,
              "page={:016x} pfn={:#x} alloc_order={} fallback_order={} pageblock_order={} "
              "alloc_migratetype={} fallback_migratetype={} fragmenting={} change_ownership={}",
              page_vmemmap_address(page), page_to_pfn(page).value(), alloc_order, fallback_order,
              pageblock_order, static_cast<int>(alloc_mt), static_cast<int>(fallback_mt),
              fallback_order < pageblock_order ? 1 : 0,
              get_pageblock_migratetype(page) == alloc_mt ? 1 : 0);
}

}  // namespace

// ---- free lists ----

void Zone::account_freepages(int64_t nr_pages, MigrateType mt) {
  if (is_migrate_isolate(mt)) return;
  stats_.add(NR_FREE_PAGES, nr_pages);
  if (is_migrate_cma(mt)) stats_.add(NR_FREE_CMA_PAGES, nr_pages);
}

void Zone::add_to_free_list(Page* page, unsigned order, MigrateType mt, bool tail) {
  MM_DCHECK(get_pageblock_migratetype(page) == mt, page);
  FreeArea& area = free_area_[order];
  if (tail) {
    list_add_tail(&page->lru, &area.free_list[mt]);
  } else {
    list_add(&page->lru, &area.free_list[mt]);
  }
  ++area.nr_free;
  ++area.nr_free_type[mt];
}

void Zone::__del_page_from_free_list(Page* page, unsigned order, MigrateType mt) {
  FreeArea& area = free_area_[order];
  list_del_init(&page->lru);
  page->set_type(PageType::kNone);
  page->set_private_data(0);
  --area.nr_free;
  --area.nr_free_type[mt];
}

void Zone::del_page_from_free_list(Page* page, unsigned order, MigrateType mt) {
  __del_page_from_free_list(page, order, mt);
  account_freepages(-(int64_t{1} << order), mt);
}

void Zone::move_to_free_list(Page* page, unsigned order, MigrateType old_mt, MigrateType new_mt) {
  FreeArea& area = free_area_[order];
  // Moving free pages can fail, so the type of the block changes afterwards.
  MM_DCHECK(get_pageblock_migratetype(page) == old_mt, page);
  list_move_tail(&page->lru, &area.free_list[new_mt]);
  --area.nr_free_type[old_mt];
  ++area.nr_free_type[new_mt];
  account_freepages(-(int64_t{1} << order), old_mt);
  account_freepages(int64_t{1} << order, new_mt);
}

// ---- freeing ----

Page* Zone::find_buddy_page(Page* page, Pfn pfn, unsigned order, Pfn* buddy_pfn) {
  const Pfn bpfn(pfn.value() ^ (uint64_t{1} << order));
  if (bpfn >= ms_.max_pfn()) return nullptr;
  Page* buddy = page + (static_cast<int64_t>(bpfn.value()) - static_cast<int64_t>(pfn.value()));
  if (!PageBuddy(buddy) || buddy_order(buddy) != order || buddy->zone() != this) return nullptr;
  if (buddy_pfn != nullptr) *buddy_pfn = bpfn;
  return buddy;
}

// Merging into a free block of the next order is likely if that block's
// buddy is free: then put the freed block at the tail, so it is not
// allocated again before it gets the chance to merge.
bool Zone::buddy_merge_likely(Pfn pfn, Pfn buddy_pfn, Page* page, unsigned order) {
  if (order >= MAX_PAGE_ORDER - 1) return false;
  const Pfn higher_pfn(buddy_pfn.value() & pfn.value());
  Page* higher =
      page + (static_cast<int64_t>(higher_pfn.value()) - static_cast<int64_t>(pfn.value()));
  return find_buddy_page(higher, higher_pfn, order + 1, nullptr) != nullptr;
}

void Zone::__free_one_page(Page* page, Pfn pfn, unsigned order, MigrateType mt, uint32_t fpi) {
  MM_DCHECK(pfn.is_aligned(Order(order)), page);
  MM_DCHECK(zone_spans_pfn(pfn), page);
  account_freepages(int64_t{1} << order, mt);

  Pfn buddy_pfn{0};
  while (order < MAX_PAGE_ORDER) {
    Page* buddy = find_buddy_page(page, pfn, order, &buddy_pfn);
    if (buddy == nullptr) break;
    MigrateType buddy_mt = mt;
    if (order >= pageblock_order) {
      // Free pages of a pageblock without fallbacks (CMA, isolated) must not
      // merge with a normal pageblock's, or the free and CMA counts break.
      buddy_mt = get_pfnblock_migratetype(buddy, buddy_pfn);
      if (mt != buddy_mt &&
          (!migratetype_is_mergeable(mt) || !migratetype_is_mergeable(buddy_mt))) {
        break;
      }
    }
    __del_page_from_free_list(buddy, order, buddy_mt);
    // Take the buddy's pageblocks over, so a later split puts the pieces on
    // the right lists.
    if (buddy_mt != mt) change_pageblock_range(buddy, order, mt);
    const Pfn combined(buddy_pfn.value() & pfn.value());
    page = page + (static_cast<int64_t>(combined.value()) - static_cast<int64_t>(pfn.value()));
    pfn = combined;
    ++order;
  }
  set_buddy_order(page, order);
  const bool to_tail = (fpi & FPI_TO_TAIL) || buddy_merge_likely(pfn, buddy_pfn, page, order);
  add_to_free_list(page, order, mt, to_tail);
}

void Zone::split_large_buddy(Page* page, Pfn pfn, unsigned order, uint32_t fpi) {
  const Pfn end = pfn + Order(order).nr_pages();
  if (order > pageblock_order) order = pageblock_order;
  for (;;) {
    __free_one_page(page, pfn, order, get_pfnblock_migratetype(page, pfn), fpi);
    pfn += Order(order).nr_pages();
    if (pfn == end) break;
    page = pfn_to_page(pfn);
  }
}

void Zone::free_one_page(Page* page, Pfn pfn, Order order, uint32_t fpi) {
  {
    SpinGuard g(lock);
    split_large_buddy(page, pfn, order.value(), fpi);
  }
  ms_.events().add(PGFREE, static_cast<int64_t>(order.nr_pages().value()));
}

// ---- allocation from the free lists ----

uint64_t Zone::expand(Page* page, unsigned low, unsigned high, MigrateType mt) {
  uint64_t size = uint64_t{1} << high;
  uint64_t nr_added = 0;
  while (high > low) {
    --high;
    size >>= 1;
    add_to_free_list(page + size, high, mt, false);
    set_buddy_order(page + size, high);
    nr_added += size;
  }
  return nr_added;
}

void Zone::page_del_and_expand(Page* page, unsigned low, unsigned high, MigrateType mt) {
  int64_t nr_pages = int64_t{1} << high;
  __del_page_from_free_list(page, high, mt);
  nr_pages -= static_cast<int64_t>(expand(page, low, high, mt));
  account_freepages(-nr_pages, mt);
}

Page* Zone::__rmqueue_smallest(unsigned order, MigrateType mt) {
  for (unsigned current_order = order; current_order < NR_PAGE_ORDERS; ++current_order) {
    Page* page = first_free_page(free_area_[current_order], mt);
    if (page == nullptr) continue;
    page_del_and_expand(page, order, current_order, mt);
    PINMM_TRACE(ms_.tracer(), mm_page_alloc_zone_locked,
                "page={:016x} pfn={:#x} order={} migratetype={} percpu_refill=0",
                page_vmemmap_address(page), page_to_pfn(page).value(), order, static_cast<int>(mt));
    return page;
  }
  return nullptr;
}

std::optional<MigrateType> Zone::find_suitable_fallback(unsigned order, MigrateType mt,
                                                        bool* can_steal) {
  FreeArea& area = free_area_[order];
  if (area.nr_free == 0) return std::nullopt;
  *can_steal = false;
  for (MigrateType fallback_mt : kFallbacks[mt]) {
    if (list_empty(&area.free_list[fallback_mt])) continue;
    if (can_steal_fallback(order, mt)) *can_steal = true;
    return fallback_mt;
  }
  return std::nullopt;
}

bool Zone::prep_move_freepages_block(Page* page, Pfn* start_pfn, uint64_t* num_free,
                                     uint64_t* num_movable) {
  const Pfn pfn = page_to_pfn(page);
  const Pfn start = pageblock_start_pfn(pfn);
  const Pfn end = pageblock_end_pfn(pfn);
  // The caller holds only this zone's lock: leave blocks straddling zones alone.
  if (!zone_spans_pfn(start) || !zone_spans_pfn(end - PageCount(1))) return false;
  *start_pfn = start;
  if (num_free != nullptr) {
    *num_free = 0;
    *num_movable = 0;
    for (Pfn p = start; p < end;) {
      Page* pg = pfn_to_page(p);
      if (PageBuddy(pg)) {
        const uint64_t nr = uint64_t{1} << buddy_order(pg);
        *num_free += nr;
        p += PageCount(nr);
        continue;
      }
      // Pages that could be isolated for migration count as movable.
      if (pg->test(PG_lru) || __folio_test_movable(page_folio(pg))) ++*num_movable;
      ++p;
    }
  }
  return true;
}

uint64_t Zone::__move_freepages_block(Pfn start_pfn, MigrateType old_mt, MigrateType new_mt) {
  MM_DCHECK(start_pfn.is_aligned(kPageblockOrder));
  const Pfn end = pageblock_end_pfn(start_pfn);
  uint64_t moved = 0;
  for (Pfn pfn = start_pfn; pfn < end;) {
    Page* page = pfn_to_page(pfn);
    if (!PageBuddy(page)) {
      ++pfn;
      continue;
    }
    const unsigned order = buddy_order(page);
    move_to_free_list(page, order, old_mt, new_mt);
    pfn += Order(order).nr_pages();
    moved += uint64_t{1} << order;
  }
  set_pageblock_migratetype(pfn_to_page(start_pfn), new_mt);
  return moved;
}

// The start of a free buddy that straddles start_pfn from below, or start_pfn.
Pfn Zone::find_large_buddy(Pfn start_pfn) {
  Pfn pfn = start_pfn;
  unsigned order = 0;
  while (!PageBuddy(pfn_to_page(pfn))) {
    if (++order > MAX_PAGE_ORDER) return start_pfn;
    pfn = pfn.align_down(Order(order));
  }
  if (pfn + Order(buddy_order(pfn_to_page(pfn))).nr_pages() > start_pfn) return pfn;
  return start_pfn;
}

bool Zone::move_freepages_block_isolate(Page* page, MigrateType mt) {
  Pfn start_pfn{0};
  if (!prep_move_freepages_block(page, &start_pfn, nullptr, nullptr)) return false;
  Page* start = pfn_to_page(start_pfn);
  // A free buddy larger than a pageblock is split into pageblocks, each
  // freed again with its own block's type: only this block changes.
  const Pfn buddy_pfn = find_large_buddy(start_pfn);
  Page* buddy = pfn_to_page(buddy_pfn);
  if (PageBuddy(buddy) && (buddy_pfn != start_pfn || buddy_order(buddy) > pageblock_order)) {
    const unsigned order = buddy_order(buddy);
    del_page_from_free_list(buddy, order, get_pfnblock_migratetype(buddy, buddy_pfn));
    set_pageblock_migratetype(start, mt);
    split_large_buddy(buddy, buddy_pfn, order, FPI_NONE);
    return true;
  }
  __move_freepages_block(start_pfn, get_pfnblock_migratetype(start, start_pfn), mt);
  return true;
}

bool Zone::isolate_pageblock(Pfn pfn) {
  SpinGuard g(lock);
  return isolate_pageblock_locked(pfn);
}

bool Zone::isolate_pageblock_locked(Pfn pfn) {
  Page* page = pfn_to_page(pageblock_start_pfn(pfn));
  if (get_pageblock_migratetype(page) == MIGRATE_ISOLATE) return false;
  if (!move_freepages_block_isolate(page, MIGRATE_ISOLATE)) return false;
  ++nr_isolate_pageblock_;
  return true;
}

void Zone::unisolate_pageblock(Pfn pfn, MigrateType mt) {
  SpinGuard g(lock);
  const Pfn start = pageblock_start_pfn(pfn);
  Page* page = pfn_to_page(start);
  MM_BUG_ON(get_pageblock_migratetype(page) != MIGRATE_ISOLATE, page);
  --nr_isolate_pageblock_;
  // A free block of at least a pageblock could not merge with its buddy
  // while isolated; moving it between lists would not merge it either, so
  // take it off and free it again (unset_migratetype_isolate).
  if (PageBuddy(page)) {
    const unsigned order = buddy_order(page);
    Pfn buddy_pfn{0};
    if (order >= pageblock_order && order < MAX_PAGE_ORDER) {
      const Page* buddy = find_buddy_page(page, start, order, &buddy_pfn);
      if (buddy != nullptr && get_pfnblock_migratetype(buddy, buddy_pfn) != MIGRATE_ISOLATE) {
        del_page_from_free_list(page, order, MIGRATE_ISOLATE);
        set_pageblock_migratetype(page, mt);
        __free_one_page(page, start, order, mt, FPI_NONE);
        return;
      }
    }
  }
  MM_BUG_ON(!move_freepages_block_isolate(page, mt), page);
}

uint64_t Zone::remove_isolated_free_pages(Pfn start, Pfn end) {
  SpinGuard g(lock);
  uint64_t already_offline = 0;
  for (Pfn pfn = start; pfn < end;) {
    Page* page = pfn_to_page(pfn);
    if (!PageBuddy(page) && folio_test_hwpoison(page_folio(page))) {
      ++pfn;
      continue;
    }
    if (PageOffline(page)) {
      MM_BUG_ON(page->refcount() != 0, page);
      ++already_offline;
      ++pfn;
      continue;
    }
    MM_BUG_ON(!PageBuddy(page) || page->refcount() != 0, page);
    MM_DCHECK(get_pfnblock_migratetype(page, pfn) == MIGRATE_ISOLATE, page);
    const unsigned order = buddy_order(page);
    del_page_from_free_list(page, order, MIGRATE_ISOLATE);
    pfn += Order(order).nr_pages();
  }
  return (end - start).value() - already_offline;
}

Pfn Zone::free_block_start(Pfn pfn) {
  SpinGuard g(lock);
  return find_large_buddy(pfn);
}

Pfn Zone::take_free_blocks(Pfn start, Pfn end) {
  SpinGuard g(lock);
  Pfn pfn = start;
  while (pfn < end) {
    const Page* page = pfn_to_page(pfn);
    if (!PageBuddy(page)) return Pfn(0);
    pfn += Order(buddy_order(page)).nr_pages();
  }
  const Pfn outer_end = pfn;
  for (pfn = start; pfn < outer_end;) {
    Page* page = pfn_to_page(pfn);
    const unsigned order = buddy_order(page);
    del_page_from_free_list(page, order, get_pfnblock_migratetype(page, pfn));
    pfn += Order(order).nr_pages();
  }
  return outer_end;
}

void Zone::adjust_nr_isolate_pageblock(int64_t delta) {
  SpinGuard g(lock);
  nr_isolate_pageblock_ =
      static_cast<uint64_t>(static_cast<int64_t>(nr_isolate_pageblock_) + delta);
}

// Falling back to another type: take the whole pageblock when the block is
// large enough, or when at least half of it is free or already in use by
// allocations like ours, so that fragmenting allocations stay together.
Page* Zone::try_to_steal_block(Page* page, unsigned current_order, unsigned order,
                               MigrateType start_type) {
  const MigrateType block_type = get_pageblock_migratetype(page);
  if (block_type == MIGRATE_HIGHATOMIC) return nullptr;

  if (current_order >= pageblock_order) {
    del_page_from_free_list(page, current_order, block_type);
    change_pageblock_range(page, current_order, start_type);
    const uint64_t nr_added = expand(page, order, current_order, start_type);
    account_freepages(static_cast<int64_t>(nr_added), start_type);
    return page;
  }

  Pfn start_pfn{0};
  uint64_t free_pages = 0, movable_pages = 0;
  if (!prep_move_freepages_block(page, &start_pfn, &free_pages, &movable_pages)) return nullptr;

  uint64_t alike_pages;
  if (start_type == MIGRATE_MOVABLE) {
    alike_pages = movable_pages;
  } else if (block_type == MIGRATE_MOVABLE) {
    // An unmovable or reclaimable allocation in a movable block: every page
    // that is neither free nor movable is of a compatible kind.
    alike_pages = pageblock_nr_pages - (free_pages + movable_pages);
  } else {
    // Unmovable vs. reclaimable cannot be told apart: be conservative.
    alike_pages = 0;
  }
  if (free_pages + alike_pages >= (uint64_t{1} << (pageblock_order - 1))) {
    __move_freepages_block(start_pfn, block_type, start_type);
    return __rmqueue_smallest(order, start_type);
  }
  return nullptr;
}

Page* Zone::__rmqueue_claim(unsigned order, MigrateType start_mt) {
  // The largest free block of another type roughly approximates the pageblock
  // with the most free pages.
  for (int current_order = MAX_PAGE_ORDER; current_order >= static_cast<int>(order);
       --current_order) {
    bool can_steal = false;
    const auto fallback_mt = find_suitable_fallback(current_order, start_mt, &can_steal);
    if (!fallback_mt) continue;
    if (!can_steal) break;
    Page* page = first_free_page(free_area_[current_order], *fallback_mt);
    page = try_to_steal_block(page, current_order, order, start_mt);
    if (page != nullptr) {
      trace_extfrag(ms_, page, order, current_order, start_mt, *fallback_mt);
      return page;
    }
  }
  return nullptr;
}

Page* Zone::__rmqueue_steal(unsigned order, MigrateType start_mt) {
  for (unsigned current_order = order; current_order < NR_PAGE_ORDERS; ++current_order) {
    bool can_steal = false;
    const auto fallback_mt = find_suitable_fallback(current_order, start_mt, &can_steal);
    if (!fallback_mt) continue;
    Page* page = first_free_page(free_area_[current_order], *fallback_mt);
    page_del_and_expand(page, order, current_order, *fallback_mt);
    trace_extfrag(ms_, page, order, current_order, start_mt, *fallback_mt);
    return page;
  }
  return nullptr;
}

Page* Zone::__rmqueue(unsigned order, MigrateType mt, uint32_t alloc_flags) {
  // Balance movable allocations between regular and CMA pageblocks: use CMA
  // first while more than half of the zone's free memory is CMA.
  if ((alloc_flags & ALLOC_CMA) && stats_.get(NR_FREE_CMA_PAGES) > stats_.get(NR_FREE_PAGES) / 2) {
    if (Page* page = __rmqueue_smallest(order, MIGRATE_CMA)) return page;
  }
  if (Page* page = __rmqueue_smallest(order, mt)) return page;
  if (alloc_flags & ALLOC_CMA) {
    if (Page* page = __rmqueue_smallest(order, MIGRATE_CMA)) return page;
  }
  if (Page* page = __rmqueue_claim(order, mt)) return page;
  return __rmqueue_steal(order, mt);
}

bool Zone::zone_watermark_ok(unsigned order, uint64_t mark, ZoneType highest_zoneidx,
                             uint32_t alloc_flags) {
  int64_t free_pages = stats_.get(NR_FREE_PAGES);
  // Free pages this allocation cannot use.
  int64_t unusable = (int64_t{1} << order) - 1;
  if (!(alloc_flags & ALLOC_CMA)) unusable += stats_.get(NR_FREE_CMA_PAGES);
  free_pages -= unusable;

  int64_t min = static_cast<int64_t>(mark);
  if ((alloc_flags & ALLOC_RESERVES) && (alloc_flags & ALLOC_MIN_RESERVE)) {
    min -= min / 2;  // __GFP_HIGH: half of the min reserve
    if (alloc_flags & ALLOC_NON_BLOCK) min -= min / 4;
  }
  if (free_pages <= min + static_cast<int64_t>(lowmem_reserve(highest_zoneidx))) return false;
  if (order == 0) return true;

  // A block of at least the requested order must exist on a usable list.
  for (unsigned o = order; o < NR_PAGE_ORDERS; ++o) {
    const FreeArea& area = free_area_[o];
    if (area.nr_free == 0) continue;
    for (unsigned mt = 0; mt < MIGRATE_PCPTYPES; ++mt) {
      if (!list_empty(&area.free_list[mt])) return true;
    }
    if ((alloc_flags & ALLOC_CMA) && !list_empty(&area.free_list[MIGRATE_CMA])) return true;
  }
  return false;
}

Page* Zone::rmqueue(Order order, MigrateType mt, uint32_t alloc_flags, ZoneType highest_zoneidx) {
  SpinGuard g(lock);
  if (!(alloc_flags & ALLOC_NO_WATERMARKS)) {
    const uint64_t mark = wmark(static_cast<WmarkIndex>(alloc_flags & ALLOC_WMARK_MASK));
    if (!zone_watermark_ok(order.value(), mark, highest_zoneidx, alloc_flags)) return nullptr;
  }
  return __rmqueue(order.value(), mt, alloc_flags);
}

// ---- entry points ----

namespace {

// Flags of bits that must be clear on a page entering or leaving the allocator.
constexpr uint64_t kFlagsCheckAtFree =
    (uint64_t{1} << PG_lru) | (uint64_t{1} << PG_locked) | (uint64_t{1} << PG_private) |
    (uint64_t{1} << PG_private_2) | (uint64_t{1} << PG_writeback) | (uint64_t{1} << PG_reserved) |
    (uint64_t{1} << PG_active) | (uint64_t{1} << PG_unevictable) | (uint64_t{1} << PG_mlocked);
constexpr uint64_t kPageFlagsMask = (uint64_t{1} << __NR_PAGEFLAGS) - 1;

void zone_statistics(Zone* preferred, Zone* z) {
  if (z->nid() != preferred->nid()) {
    z->numa_events().inc(NUMA_MISS);
    preferred->numa_events().inc(NUMA_FOREIGN);
  } else {
    z->numa_events().inc(NUMA_HIT);
  }
  z->numa_events().inc(z->nid() == current().numa_node() ? NUMA_LOCAL : NUMA_OTHER);
}

VmEventItem pgalloc_event(ZoneType t) {
  switch (t) {
    case ZONE_MOVABLE:
      return PGALLOC_MOVABLE;
    case ZONE_DEVICE:
      return PGALLOC_DEVICE;
    default:
      return PGALLOC_NORMAL;
  }
}

// post_alloc_hook + prep_new_page: the block leaves the allocator.
void prep_new_page(MemorySystem& ms, Page* page, unsigned order, Gfp gfp) {
  const uint64_t nr = uint64_t{1} << order;
  const Pfn pfn = page_to_pfn(page);
  for (uint64_t i = 0; i < nr; ++i) {
    Page* p = page + i;
    // check_new_page: a page coming off a free list must be clean.
    MM_BUG_ON((p->flags() & kFlagsCheckAtFree) != 0 || p->mapcount() != 0 || p->mapping() != 0 ||
                  p->refcount() != 0 || p->type() != PageType::kNone,
              p);
    if constexpr (kPinmmDebug) {
      if (p->test(PG_pinmm_poisoned)) {
        const auto bad = ms.frames().find_unpoisoned(pfn + PageCount(i), PageCount(1));
        MM_BUG_ON(bad.has_value(), p);  // written after it was freed
        p->__clear(PG_pinmm_poisoned);
      }
    }
  }
  if (any(gfp & __GFP_ZERO)) ms.frames().zero(pfn, PageCount(nr));
  folio_set_count(reinterpret_cast<Folio*>(page), 1);
  if (order > 0) prep_compound_page(page, order);
}

}  // namespace

void prep_contig_pages(MemorySystem& ms, Pfn start, Pfn end, Gfp gfp, bool compound) {
  if (compound) {
    const auto order = static_cast<unsigned>(std::countr_zero((end - start).value()));
    prep_new_page(ms, ms.pfn_to_page(start), order, gfp);
    return;
  }
  for (Pfn pfn = start; pfn < end; ++pfn)
    prep_new_page(ms, ms.pfn_to_page(pfn), 0, gfp);
}

namespace {

// Whether the injector fails this allocation (should_fail_alloc_page: a
// __GFP_NOFAIL request is never failed on purpose).
bool should_fail_alloc_page(MemorySystem& ms, Gfp gfp, MigrateType mt) {
  if (any(gfp & __GFP_NOFAIL)) return false;
  Injector& inj = ms.injector();
  if (inj.should_fail(inject_point::kAllocPages)) return true;
  return inj.should_fail(mt == MIGRATE_MOVABLE ? inject_point::kAllocPagesMovable
                                               : inject_point::kAllocPagesUnmovable);
}

Page* get_page_from_freelist(MemorySystem& ms, int nid, Gfp gfp, unsigned order,
                             uint32_t alloc_flags, const NodeMask* nodemask) {
  const ZoneType highest = gfp_zone(gfp);
  const MigrateType mt = gfp_migratetype(gfp);
  const auto& zonelist = ms.node(nid).zonelist(!any(gfp & __GFP_THISNODE));
  Zone* preferred = nullptr;
  for (Zone* z : zonelist) {
    if (z->type() > highest) continue;
    if (nodemask != nullptr && !nodemask->test(static_cast<size_t>(z->nid()))) continue;
    if (preferred == nullptr) preferred = z;
    if (z->managed_pages() == 0) continue;
    Page* page = z->rmqueue(Order(order), mt, alloc_flags, highest);
    if (page == nullptr) continue;
    zone_statistics(preferred, z);
    ms.events().add(pgalloc_event(z->type()), int64_t{1} << order);
    return page;
  }
  return nullptr;
}

// The flags of the slow path (gfp_to_alloc_flags): the min watermark,
// lowered for __GFP_HIGH and for non-blocking requests, and no watermark at
// all for tasks in PF_MEMALLOC or requests with __GFP_MEMALLOC.
uint32_t gfp_to_alloc_flags(Gfp gfp) {
  uint32_t flags = ALLOC_WMARK_MIN;
  if (any(gfp & __GFP_HIGH)) flags |= ALLOC_MIN_RESERVE;
  if (!any(gfp & __GFP_DIRECT_RECLAIM)) {
    flags |= ALLOC_NON_BLOCK;
    if (any(gfp & __GFP_HIGH)) flags |= ALLOC_MIN_RESERVE;
  }
  if (gfp_migratetype(gfp) == MIGRATE_MOVABLE) flags |= ALLOC_CMA;
  const bool memalloc = any(gfp & __GFP_MEMALLOC) || (current().flags() & PF_MEMALLOC);
  if (memalloc && !any(gfp & __GFP_NOMEMALLOC)) flags |= ALLOC_NO_WATERMARKS;
  return flags;
}

}  // namespace

Page* alloc_pages_node(MemorySystem& ms, int nid, Gfp gfp, Order order) {
  return __alloc_pages(ms, gfp, order, nid, nullptr);
}

Page* __alloc_pages(MemorySystem& ms, Gfp gfp, Order order, int nid, const NodeMask* nodemask) {
  if (MM_WARN_ON_ONCE(order.value() > MAX_PAGE_ORDER)) return nullptr;
  gfp = current_gfp_context(gfp);
  if (nid == NUMA_NO_NODE || nid < 0 || nid >= ms.nr_nodes()) {
    nid = std::min(current().numa_node(), ms.nr_nodes() - 1);
  }
  const MigrateType mt = gfp_migratetype(gfp);
  Page* page = nullptr;
  if (!should_fail_alloc_page(ms, gfp, mt)) {
    const uint32_t fast_flags = ALLOC_WMARK_LOW | (mt == MIGRATE_MOVABLE ? ALLOC_CMA : 0u);
    page = get_page_from_freelist(ms, nid, gfp, order.value(), fast_flags, nodemask);
    const uint32_t slow_flags = gfp_to_alloc_flags(gfp);
    if (page == nullptr)
      page = get_page_from_freelist(ms, nid, gfp, order.value(), slow_flags, nodemask);
    // __GFP_NOFAIL may dip into the reserves above the min watermark's
    // lower part (ALLOC_MIN_RESERVE, not ALLOC_NO_WATERMARKS). Linux would
    // then reclaim and retry forever; pinmm has no reclaim to wait for, so
    // the request warns and fails instead of hanging.
    if (page == nullptr && any(gfp & __GFP_NOFAIL)) {
      page = get_page_from_freelist(ms, nid, gfp, order.value(), slow_flags | ALLOC_MIN_RESERVE,
                                    nodemask);
      MM_WARN_ON_ONCE(page == nullptr);
    }
  }
  if (page == nullptr) {
    PINMM_TRACE(ms.tracer(), mm_page_alloc,
                "page=0000000000000000 pfn=0x0 order={} migratetype={} gfp_flags={}", order.value(),
                static_cast<int>(mt), gfp_to_string(gfp));
    return nullptr;
  }
  prep_new_page(ms, page, order.value(), gfp);
  PINMM_TRACE(ms.tracer(), mm_page_alloc,
              "page={:016x} pfn={:#x} order={} migratetype={} gfp_flags={}",
              page_vmemmap_address(page), page_to_pfn(page).value(), order.value(),
              static_cast<int>(mt), gfp_to_string(gfp));
  return page;
}

Page* alloc_pages(MemorySystem& ms, Gfp gfp, Order order) {
  return alloc_pages_node(ms, NUMA_NO_NODE, gfp, order);
}

Folio* folio_alloc(MemorySystem& ms, Gfp gfp, Order order, int nid) {
  return reinterpret_cast<Folio*>(alloc_pages_node(ms, nid, gfp | __GFP_COMP, order));
}

void __free_pages(Page* page, Order order) {
  MM_BUG_ON(page->is_tail(), page);
  MM_BUG_ON(folio_order(page_folio(page)) != order.value(), page);
  folio_put(page_folio(page));
}

namespace {

// free_pages_prepare: the page state must be clean; compound metadata goes.
void free_pages_prepare(MemorySystem& ms, Page* page, unsigned order) {
  const uint64_t nr = uint64_t{1} << order;
  MM_BUG_ON(PageBuddy(page), page);  // double free
  if (order > 0) {
    const Folio* folio = reinterpret_cast<const Folio*>(page);
    MM_BUG_ON(folio_entire_mapcount(folio) != 0 || folio_large_mapcount(folio) != 0 ||
                  folio_nr_pages_mapped(folio) != 0 || folio_pincount(folio) != 0,
              folio);
  }
  for (uint64_t i = 0; i < nr; ++i) {
    Page* p = page + i;
    if (i > 0) {
      MM_BUG_ON(p->compound_head() != page, p);
      page_detail::ref(p->compound_head_).store(0, std::memory_order_relaxed);
      page_detail::ref(p->large_mapcount_).store(0, std::memory_order_relaxed);
      if (i == 1) p->store_flags(p->flags() & ~page_detail::kOrderMask);  // the folio order
    }
    MM_BUG_ON((p->flags() & kFlagsCheckAtFree) != 0 || p->mapcount() != 0 || p->refcount() != 0 ||
                  p->type() != PageType::kNone,
              p);
    // Anonymous and movable_ops mappings are cleared here; a page-cache
    // page must have left its mapping before it is freed. (Tail pages: the
    // word holds page[1]'s pin and mapped counts, checked above.)
    if (i == 0 && (p->mapping() & PAGE_MAPPING_FLAGS)) p->set_mapping(0);
    MM_BUG_ON(i == 0 && p->mapping() != 0, p);
    if (i > 0) p->set_mapping(0);
    p->set_private_data(0);
    p->store_flags(p->flags() & ~kPageFlagsMask);
  }
  if constexpr (kPinmmDebug) {
    ms.frames().poison(page_to_pfn(page), PageCount(nr));
    for (uint64_t i = 0; i < nr; ++i)
      page[i].__set(PG_pinmm_poisoned);
  }
}

}  // namespace

void free_frozen_pages(Page* page, Order order) {
  MemorySystem& ms = page_memory_system(page);
  free_pages_prepare(ms, page, order.value());
  const Pfn pfn = page_to_pfn(page);
  PINMM_TRACE(ms.tracer(), mm_page_free, "page={:016x} pfn={:#x} order={}",
              page_vmemmap_address(page), pfn.value(), order.value());
  page_zone(page)->free_one_page(page, pfn, order, FPI_NONE);
}

void __free_pages_core(Page* page, Order order, MeminitContext context) {
  const uint64_t nr = order.nr_pages().value();
  for (uint64_t i = 0; i < nr; ++i) {
    Page* p = page + i;
    if (context == MEMINIT_HOTPLUG) {
      if (PageOffline(p)) p->set_type(PageType::kNone);
    } else {
      p->__clear(PG_reserved);
    }
    folio_set_count(reinterpret_cast<Folio*>(p), 0);
  }
  page_zone(page)->add_managed_pages(static_cast<int64_t>(nr));
  page_zone(page)->free_one_page(page, page_to_pfn(page), order, FPI_TO_TAIL);
}

void prep_compound_page(Page* head, unsigned order) {
  const uint64_t nr = uint64_t{1} << order;
  head->__set(PG_head);
  for (uint64_t i = 1; i < nr; ++i) {
    Page* p = head + i;
    p->set_mapping(0);
    page_detail::ref(p->compound_head_)
        .store(reinterpret_cast<uintptr_t>(head) | 1, std::memory_order_release);
  }
  Page* first_tail = head + 1;
  first_tail->store_flags((first_tail->flags() & ~page_detail::kOrderMask) | order);
  page_detail::ref(first_tail->large_mapcount_).store(0, std::memory_order_relaxed);
  page_detail::ref(first_tail->entire_mapcount_).store(0, std::memory_order_relaxed);
  page_detail::ref(first_tail->nr_pages_mapped_).store(0, std::memory_order_relaxed);
  page_detail::ref(first_tail->pincount_).store(0, std::memory_order_relaxed);
}

void split_compound_page(Page* head, unsigned order) {
  const uint64_t nr = uint64_t{1} << order;
  MM_BUG_ON(!head->test(PG_head) || folio_order(reinterpret_cast<Folio*>(head)) != order, head);
  constexpr uint64_t kKeep = uint64_t{1} << PG_anon_exclusive;
  for (uint64_t i = 1; i < nr; ++i) {
    Page* p = head + i;
    MM_BUG_ON(p->refcount() != 0 || p->mapcount() != 0, p);
    p->store_flags(p->flags() & kKeep);
    p->set_mapping(0);  // page[1]: the pin and mapped counts
    p->set_index(0);
    p->set_private_data(0);
    // No longer a tail (lockless readers see an even word); then an empty
    // list node, which also clears page[1]'s large mapcounts.
    page_detail::ref(p->compound_head_).store(0, std::memory_order_release);
    init_list_head(&p->lru);
  }
  head->clear(PG_head);
}

bool is_zero_folio(const Folio* folio) {
  return page_memory_system(&folio->page).zero_page() == &folio->page;
}

bool folio_is_longterm_pinnable(const Folio* folio) {
  // The CMA/isolate test comes first, then the zero-page exemption.
  const MigrateType mt = get_pageblock_migratetype(&folio->page);
  if (mt == MIGRATE_CMA || mt == MIGRATE_ISOLATE) return false;
  if (is_zero_folio(folio)) return true;
  // Device-coherent memory may be pinned only briefly (KERNEL-SPEC 9.4).
  if (is_device_coherent_page(&folio->page)) return false;
  return folio_zone(folio)->type() != ZONE_MOVABLE;
}

}  // namespace pinmm
