// MemorySystem::validate(): the invariants of the physical layer.
#include <algorithm>
#include <vector>

#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/phys/pin_owners.h"

namespace pinmm {
namespace {

Page* page_of(const ListHead* lh) {
  return reinterpret_cast<Page*>(reinterpret_cast<char*>(const_cast<ListHead*>(lh)) -
                                 offsetof(Page, lru));
}

enum class PfnState : uint8_t { kUnknown, kFree, kReserved, kAllocated, kHugetlbFree };

bool in_cma_reservation(const MemorySystem& ms, Pfn pfn) {
  for (const CmaReservation& c : ms.cma_reservations()) {
    if (pfn >= c.base_pfn && pfn < c.base_pfn + c.count) return true;
  }
  return false;
}

// Whether pfn is online memory of zone z (zone spans of different nodes
// may interleave once memory is hot-added, and offline holes lie inside).
bool pfn_in_zone(const MemorySystem& ms, const Zone& z, Pfn pfn) {
  if (ms.pfn_to_online_page(pfn) == nullptr) return false;
  const MemoryBlock& b = ms.memory_block_of(pfn);
  return b.nid == z.nid() && b.zone == z.type();
}

// Free lists: each entry a PageBuddy block of the list's order, aligned, in
// the zone, on the list of its pageblocks' type, not overlapping another.
// Fills `state` with kFree for covered PFNs; returns free pages by kind.
struct FreeTotals {
  int64_t counted = 0;  // pages on non-isolate lists
  int64_t cma = 0;
};

FreeTotals check_free_lists(const MemorySystem& ms, const Zone& z, std::vector<PfnState>& state,
                            ValidationReport& r) REQUIRES(z.lock) {
  FreeTotals totals;
  const Pfn zstart = z.zone_start_pfn();
  for (unsigned order = 0; order < NR_PAGE_ORDERS; ++order) {
    const FreeArea& area = z.free_area(order);
    uint64_t blocks = 0;
    for (unsigned mt = 0; mt < MIGRATE_TYPES; ++mt) {
      uint64_t blocks_of_type = 0;
      const ListHead* head = &area.free_list[mt];
      for (const ListHead* pos = head->load_next(); pos != head; pos = pos->load_next()) {
        const Page* page = page_of(pos);
        const Pfn pfn = ms.page_to_pfn(page);
        ++blocks_of_type;
        if (!PageBuddy(page) || page->private_data() != order) {
          r.fail("{} zone node {}: pfn {:#x} on order-{} {} list is not a free block of that order",
                 z.name(), z.nid(), pfn.value(), order,
                 migratetype_name(static_cast<MigrateType>(mt)));
          continue;
        }
        if (!pfn.is_aligned(Order(order)) || !z.zone_spans_pfn(pfn) ||
            !z.zone_spans_pfn(pfn + Order(order).nr_pages() - PageCount(1)) || page->zone() != &z) {
          r.fail("{} zone node {}: free block pfn {:#x} order {} is misaligned or outside the zone",
                 z.name(), z.nid(), pfn.value(), order);
          continue;
        }
        for (Pfn b = pageblock_start_pfn(pfn); b < pfn + Order(order).nr_pages();
             b += PageCount(pageblock_nr_pages)) {
          if (ms.pageblock_flags().get(b) != mt) {
            r.fail("free block pfn {:#x} order {} sits on the {} list but pageblock {:#x} is {}",
                   pfn.value(), order, migratetype_name(static_cast<MigrateType>(mt)), b.value(),
                   migratetype_name(ms.pageblock_flags().get(b)));
          }
        }
        for (uint64_t i = 0; i < (uint64_t{1} << order); ++i) {
          PfnState& s = state[(pfn - zstart).value() + i];
          if (s == PfnState::kFree) {
            r.fail("pfn {:#x} is covered by two free blocks", pfn.value() + i);
          }
          s = PfnState::kFree;
        }
        if (mt != MIGRATE_ISOLATE) totals.counted += int64_t{1} << order;
        if (mt == MIGRATE_CMA) totals.cma += int64_t{1} << order;
      }
      if (blocks_of_type != area.nr_free_type[mt]) {
        r.fail("{} zone node {}: order {} {} list has {} blocks, counted {}", z.name(), z.nid(),
               order, migratetype_name(static_cast<MigrateType>(mt)), blocks_of_type,
               area.nr_free_type[mt]);
      }
      blocks += blocks_of_type;
    }
    if (blocks != area.nr_free) {
      r.fail("{} zone node {}: order {} has {} free blocks, nr_free says {}", z.name(), z.nid(),
             order, blocks, area.nr_free);
    }
  }
  return totals;
}

// Buddies that could merge must have merged. Pageblock-sized blocks on the
// isolate lists are the exception: isolation moves free blocks between lists
// without merging them, as Linux does, and they merge when un-isolated.
void check_merged(const MemorySystem& ms, const Zone& z, ValidationReport& r) REQUIRES(z.lock) {
  for (unsigned order = 0; order < MAX_PAGE_ORDER; ++order) {
    const FreeArea& area = z.free_area(order);
    for (unsigned mt = 0; mt < MIGRATE_TYPES; ++mt) {
      const ListHead* head = &area.free_list[mt];
      for (const ListHead* pos = head->load_next(); pos != head; pos = pos->load_next()) {
        const Page* page = page_of(pos);
        const Pfn pfn = ms.page_to_pfn(page);
        const Pfn buddy_pfn(pfn.value() ^ (uint64_t{1} << order));
        if (!z.zone_spans_pfn(buddy_pfn)) continue;
        const Page* buddy = ms.pfn_to_page(buddy_pfn);
        // A buddy in another zone (a block onlined elsewhere) never merges.
        if (!PageBuddy(buddy) || buddy->private_data() != order || buddy->zone() != &z) continue;
        const MigrateType bmt = ms.pageblock_flags().get(buddy_pfn);
        const bool may_merge = order < pageblock_order || (bmt == mt && mt != MIGRATE_ISOLATE) ||
                               (migratetype_is_mergeable(static_cast<MigrateType>(mt)) &&
                                migratetype_is_mergeable(bmt));
        if (may_merge && pfn < buddy_pfn) {
          r.fail("free buddies pfn {:#x} and {:#x} of order {} did not merge", pfn.value(),
                 buddy_pfn.value(), order);
        }
      }
    }
  }
}

// Every PFN of the zone is in exactly one state.
// Every pin is recorded in the pin-owner table when a pinning call returns
// and released when it is unpinned, so at a quiescent point a folio holds
// exactly the pins its records hold. More pins than records is a leak: a
// pin some path took and never dropped (a failed long-term pin that kept
// the pages it had already pinned, say). A small folio's pin count is
// refcount / GUP_PIN_COUNTING_BIAS, the kernel's own approximation
// (folio_maybe_dma_pinned): 1024 plain references would read as a pin.
void check_pins_recorded(const MemorySystem& ms, const Folio* folio, Pfn pfn, ValidationReport& r) {
  const uint64_t held =
      folio_test_large(folio)
          ? static_cast<uint64_t>(std::max(folio_pincount(folio), 0))
          : static_cast<uint64_t>(std::max(folio_ref_count(folio), 0)) / GUP_PIN_COUNTING_BIAS;
  if (held == 0) return;
  const uint64_t recorded = ms.pin_owners().recorded_pins(folio);
  if (recorded < held) {
    r.fail("pfn {:#x}: the folio holds {} pins, the pin-owner table records {}: {} leaked",
           pfn.value(), held, recorded, held - recorded);
  }
}

void check_pfn_states(const MemorySystem& ms, const Zone& z, std::vector<PfnState>& state,
                      uint64_t* reserved, ValidationReport& r) {
  const Pfn zstart = z.zone_start_pfn();
  for (Pfn pfn = zstart; pfn < z.zone_end_pfn(); ++pfn) {
    PfnState& s = state[(pfn - zstart).value()];
    if (!pfn_in_zone(ms, z, pfn)) {
      if (s == PfnState::kFree)
        r.fail("free pfn {:#x} is not online memory of the zone", pfn.value());
      continue;
    }
    const Page* page = ms.pfn_to_page(pfn);
    if (page->zone() != &z) {
      r.fail("pfn {:#x} lies in the {} zone of node {} but its page says otherwise", pfn.value(),
             z.name(), z.nid());
    }
    if (s == PfnState::kFree) {
      if (page->refcount() != 0 || PageReserved(page) || page->mapcount() != 0) {
        r.fail("free pfn {:#x} has refcount {} mapcount {}{}", pfn.value(), page->refcount(),
               page->mapcount(), PageReserved(page) ? " and is reserved" : "");
      }
      continue;
    }
    if (PageReserved(page)) {
      s = PfnState::kReserved;
      ++*reserved;
      continue;
    }
    if (page->is_tail()) {
      const Page* head = page->compound_head();
      const Pfn hpfn = ms.page_to_pfn(head);
      const Folio* folio = page_folio(head);
      if (!folio_test_large(folio) || hpfn >= pfn ||
          hpfn + PageCount(folio_nr_pages(folio)) <= pfn) {
        r.fail("tail pfn {:#x} points at head {:#x}, which does not cover it", pfn.value(),
               hpfn.value());
      }
      s = state[(hpfn - zstart).value()];  // a tail shares its head's state
      continue;
    }
    const Folio* folio = page_folio(page);
    if (folio_test_hugetlb(folio) && folio_ref_count(folio) == 0) {
      s = PfnState::kHugetlbFree;
    } else if (page->refcount() > 0) {
      s = PfnState::kAllocated;
      check_pins_recorded(ms, folio, pfn, r);
    } else {
      r.fail("pfn {:#x} is neither free, reserved nor in use (refcount {}): leaked", pfn.value(),
             page->refcount());
    }
  }
}

void check_pageblocks(const MemorySystem& ms, const Zone& z, uint64_t nr_isolated,
                      ValidationReport& r) {
  uint64_t isolated = 0;
  for (Pfn pfn = z.zone_start_pfn(); pfn < z.zone_end_pfn(); pfn += PageCount(pageblock_nr_pages)) {
    if (!pfn_in_zone(ms, z, pfn)) continue;
    const MigrateType mt = ms.pageblock_flags().get(pfn);
    const bool cma_range = in_cma_reservation(ms, pfn);
    if (mt == MIGRATE_ISOLATE) ++isolated;
    if (mt >= MIGRATE_TYPES || mt == MIGRATE_HIGHATOMIC) {
      r.fail("pageblock {:#x} has type {}", pfn.value(), static_cast<int>(mt));
    } else if (cma_range && mt != MIGRATE_CMA && mt != MIGRATE_ISOLATE) {
      r.fail("pageblock {:#x} lies in a CMA area but is {}", pfn.value(), migratetype_name(mt));
    } else if (!cma_range && mt == MIGRATE_CMA) {
      r.fail("pageblock {:#x} is CMA outside every CMA area", pfn.value());
    }
  }
  if (isolated != nr_isolated) {
    r.fail("{} zone node {}: {} isolated pageblocks, nr_isolate_pageblock says {}", z.name(),
           z.nid(), isolated, nr_isolated);
  }
}

void check_hugetlb_pools(const MemorySystem& ms, ValidationReport& r) {
  auto& pools = const_cast<MemorySystem&>(ms).hugetlb();
  MutexGuard g(pools.hugetlb_lock);
  for (unsigned i = 0; i < 2; ++i) {
    Hstate& h = pools.hstate(i);
    uint64_t total_free = 0;
    for (int n = 0; n < ms.nr_nodes(); ++n) {
      uint64_t free = 0;
      const ListHead* head = &h.free_lists[n];
      for (const ListHead* pos = head->load_next(); pos != head; pos = pos->load_next()) {
        const Folio* f = reinterpret_cast<const Folio*>(page_of(pos));
        ++free;
        if (!folio_test_hugetlb(f) || folio_ref_count(f) != 0 || folio_order(f) != h.order ||
            folio_nid(f) != n) {
          r.fail(
              "{} pool of node {} holds pfn {:#x}, which is not a free folio of that size and node",
              h.name, n, folio_pfn(f).value());
        }
      }
      if (free != h.free_huge_pages_node[n]) {
        r.fail("{} node {}: {} free folios listed, {} counted", h.name, n, free,
               h.free_huge_pages_node[n]);
      }
      total_free += free;
    }
    if (total_free != h.free_huge_pages || h.free_huge_pages > h.nr_huge_pages) {
      r.fail("{}: free {} of {} does not add up", h.name, h.free_huge_pages, h.nr_huge_pages);
    }
  }
}

// LRU lists: every folio on a list is a live head with PG_lru, on the list
// its flags name, of this node; list sizes agree with the counters.
void check_lru(const MemorySystem& ms, int nid, ValidationReport& r) {
  const Node& node = ms.node(nid);
  const LruVec& lv = node.lruvec();
  std::array<int64_t, NR_LRU_LISTS> pages{};
  SpinGuard g(lv.lru_lock);
  for (unsigned l = 0; l < NR_LRU_LISTS; ++l) {
    uint64_t folios = 0;
    const ListHead* head = &lv.lists[l];
    for (const ListHead* pos = head->load_next(); pos != head; pos = pos->load_next()) {
      const Folio* f = reinterpret_cast<const Folio*>(page_of(pos));
      ++folios;
      pages[l] += static_cast<int64_t>(folio_nr_pages(f));
      if (!folio_test_lru(f) || f->page.is_tail() || folio_ref_count(f) <= 0 ||
          folio_nid(f) != nid || folio_lru_list(f) != l) {
        r.fail("node {} {} list holds pfn {:#x}, which does not belong there (refcount {}, lru {})",
               nid, lru_list_name(static_cast<LruList>(l)), folio_pfn(f).value(),
               folio_ref_count(f), folio_test_lru(f));
      }
    }
    if (folios != lv.nr_folios[l]) {
      r.fail("node {} {} list has {} folios, counted {}", nid,
             lru_list_name(static_cast<LruList>(l)), folios, lv.nr_folios[l]);
    }
    const auto item = static_cast<NodeStatItem>(int{NR_INACTIVE_ANON} + static_cast<int>(l));
    if (pages[l] != node.stats().get(item)) {
      r.fail("node {} {} list holds {} pages, {} says {}", nid,
             lru_list_name(static_cast<LruList>(l)), pages[l], vmstat_name(item),
             node.stats().get(item));
    }
  }
}

// Memory blocks: an online block's pages are in its zone's span; an offline
// present block's pages are unreferenced PageOffline descriptors; sections
// agree with the block state.
void check_memory_blocks(const MemorySystem& ms, ValidationReport& r) {
  for (const MemoryBlock& b : ms.memory_blocks()) {
    const bool online_sections = ms.pfn_to_online_page(b.start_pfn) != nullptr;
    if (!b.present) {
      if (ms.pfn_valid(b.start_pfn)) r.fail("memory{} is not present but its sections are", b.id);
      continue;
    }
    if ((b.state != MemoryBlockState::kOffline) != online_sections) {
      r.fail("memory{} is {} but its sections are {}", b.id, memory_block_state_name(b.state),
             online_sections ? "online" : "offline");
      continue;
    }
    if (b.state != MemoryBlockState::kOffline) {
      const Zone& z = ms.zone(b.nid, b.zone);
      if (!z.zone_spans_pfn(b.start_pfn) ||
          !z.zone_spans_pfn(b.start_pfn + b.nr_pages - PageCount(1))) {
        r.fail("memory{} is online in {} of node {} but outside its span", b.id, z.name(), b.nid);
      }
      continue;
    }
    for (Pfn pfn = b.start_pfn; pfn < b.start_pfn + b.nr_pages; ++pfn) {
      const Page* page = ms.pfn_to_page(pfn);
      if (!PageOffline(page) || page->refcount() != 0) {
        r.fail("pfn {:#x} of offline memory{} is in use (refcount {})", pfn.value(), b.id,
               page->refcount());
        break;
      }
    }
  }
}

}  // namespace

ValidationReport MemorySystem::validate() const {
  ValidationReport r;
  for (int nid = 0; nid < nr_nodes(); ++nid) {
    for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE}) {
      const Zone& z = zone(nid, t);
      if (!z.populated()) continue;
      std::vector<PfnState> state(z.spanned_pages(), PfnState::kUnknown);
      uint64_t reserved = 0;
      SpinGuard g(z.lock);
      const FreeTotals totals = check_free_lists(*this, z, state, r);
      check_merged(*this, z, r);
      check_pfn_states(*this, z, state, &reserved, r);
      check_pageblocks(*this, z, z.nr_isolate_pageblock(), r);
      if (totals.counted != z.stats().get(NR_FREE_PAGES)) {
        r.fail("{} zone node {}: {} pages on free lists, nr_free_pages says {}", z.name(), nid,
               totals.counted, z.stats().get(NR_FREE_PAGES));
      }
      if (totals.cma != z.stats().get(NR_FREE_CMA_PAGES)) {
        r.fail("{} zone node {}: {} pages on CMA free lists, nr_free_cma says {}", z.name(), nid,
               totals.cma, z.stats().get(NR_FREE_CMA_PAGES));
      }
      if (z.managed_pages() + reserved != z.present_pages()) {
        r.fail("{} zone node {}: managed {} + reserved {} != present {}", z.name(), nid,
               z.managed_pages(), reserved, z.present_pages());
      }
    }
  }
  check_memory_blocks(*this, r);
  for (int nid = 0; nid < nr_nodes(); ++nid)
    check_lru(*this, nid, r);
  check_hugetlb_pools(*this, r);
  r.merge(pin_owners_->validate());
  return r;
}

}  // namespace pinmm
