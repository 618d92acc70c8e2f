#include "pinmm/phys/lru.h"

#include <string>

#include "pinmm/base/task.h"
#include "pinmm/base/trace.h"
#include "pinmm/phys/memory_system.h"

namespace pinmm {
namespace {

LruVec& folio_lruvec(const Folio* folio) {
  return page_memory_system(&folio->page).node(folio_nid(folio)).lruvec();
}

void update_lru_size(Folio* folio, LruList lru, int64_t nr_folios) {
  MemorySystem& ms = page_memory_system(&folio->page);
  const int64_t nr_pages = nr_folios * static_cast<int64_t>(folio_nr_pages(folio));
  // The LRU items of both stat enums are in LruList order.
  ms.node(folio_nid(folio))
      .stats()
      .add(static_cast<NodeStatItem>(int{NR_INACTIVE_ANON} + lru), nr_pages);
  folio_zone(folio)->stats().add(static_cast<ZoneStatItem>(int{NR_ZONE_INACTIVE_ANON} + lru),
                                 nr_pages);
}

void lruvec_add_folio(LruVec& lv, Folio* folio) REQUIRES(lv.lru_lock) {
  const LruList lru = folio_lru_list(folio);
  list_add(&folio->page.lru, &lv.lists[lru]);
  ++lv.nr_folios[lru];
  update_lru_size(folio, lru, 1);
}

void lruvec_del_folio(LruVec& lv, Folio* folio) REQUIRES(lv.lru_lock) {
  const LruList lru = folio_lru_list(folio);
  list_del_init(&folio->page.lru);
  --lv.nr_folios[lru];
  update_lru_size(folio, lru, -1);
}

// The flags column of the pagemap events (page-types letters).
std::string pagemap_flags(const Folio* folio) {
  const bool mapped =
      folio_test_large(folio) ? folio_large_mapcount(folio) > 0 : folio->page.mapcount() > 0;
  std::string f;
  f += mapped ? 'M' : ' ';
  f += folio_test_anon(folio) ? 'a' : 'f';
  f += folio_test_swapcache(folio) ? 's' : ' ';
  f += folio_test_swapbacked(folio) ? 'b' : ' ';
  f += folio->page.test(PG_mappedtodisk) ? 'd' : ' ';
  f += folio_test_private(folio) ? 'B' : ' ';
  return f;
}

void trace_lru_insertion(Folio* folio) {
  PINMM_TRACE(page_memory_system(&folio->page).tracer(), mm_lru_insertion,
              "folio={:016x} pfn={:#x} lru={} flags={}", page_vmemmap_address(&folio->page),
              folio_pfn(folio).value(), static_cast<int>(folio_lru_list(folio)),
              pagemap_flags(folio));
}

// Moves a batch's folios to their lists, then drops the batch's references.
void folio_batch_move_lru(Folio** folios, unsigned nr) {
  for (unsigned i = 0; i < nr; ++i) {
    Folio* folio = folios[i];
    LruVec& lv = folio_lruvec(folio);
    SpinGuard g(lv.lru_lock);
    MM_BUG_ON(folio_test_lru(folio), folio);
    folio_set_lru(folio);
    lruvec_add_folio(lv, folio);
    trace_lru_insertion(folio);
  }
  for (unsigned i = 0; i < nr; ++i)
    folio_put(folios[i]);
}

// Empties a batch under its lock and returns what it held.
unsigned take_batch(LruAddBatch& b, std::array<Folio*, LruAddBatch::kSize>& out) {
  SpinGuard g(b.lock);
  const unsigned nr = b.nr;
  for (unsigned i = 0; i < nr; ++i)
    out[i] = b.folios[i];
  b.nr = 0;
  return nr;
}

int current_cpu(const MemorySystem& ms) {
  const int cpu = current().cpu();
  return cpu >= 0 && cpu < ms.config().cpus ? cpu : 0;
}

}  // namespace

const char* lru_list_name(LruList l) {
  switch (l) {
    case LRU_INACTIVE_ANON:
      return "inactive_anon";
    case LRU_ACTIVE_ANON:
      return "active_anon";
    case LRU_INACTIVE_FILE:
      return "inactive_file";
    case LRU_ACTIVE_FILE:
      return "active_file";
    case LRU_UNEVICTABLE:
      return "unevictable";
    case NR_LRU_LISTS:
      break;
  }
  return "?";
}

LruVec::LruVec() NO_THREAD_SAFETY_ANALYSIS {
  for (ListHead& l : lists)
    init_list_head(&l);
}

LruList folio_lru_list(const Folio* folio) {
  if (folio_test_unevictable(folio)) return LRU_UNEVICTABLE;
  const bool file = !folio_test_swapbacked(folio);
  const bool active = folio_test_active(folio);
  return static_cast<LruList>((file ? LRU_INACTIVE_FILE : LRU_INACTIVE_ANON) + (active ? 1 : 0));
}

void folio_add_lru(Folio* folio) {
  MemorySystem& ms = page_memory_system(&folio->page);
  MM_BUG_ON(folio_test_lru(folio), folio);
  folio_get(folio);
  LruAddBatch& b = ms.lru_add_batch(current_cpu(ms));
  std::array<Folio*, LruAddBatch::kSize> full{};
  unsigned nr = 0;
  {
    SpinGuard g(b.lock);
    b.folios[b.nr++] = folio;
    if (b.nr == LruAddBatch::kSize || folio_test_large(folio) || ms.lru_cache_disabled()) {
      nr = b.nr;
      for (unsigned i = 0; i < nr; ++i)
        full[i] = b.folios[i];
      b.nr = 0;
    }
  }
  if (nr != 0) folio_batch_move_lru(full.data(), nr);
}

void lru_add_drain_cpu(MemorySystem& ms, int cpu) {
  std::array<Folio*, LruAddBatch::kSize> folios{};
  const unsigned nr = take_batch(ms.lru_add_batch(cpu), folios);
  if (nr != 0) folio_batch_move_lru(folios.data(), nr);
}

void lru_add_drain(MemorySystem& ms) { lru_add_drain_cpu(ms, current_cpu(ms)); }

void lru_add_drain_all(MemorySystem& ms) {
  for (int cpu = 0; cpu < ms.config().cpus; ++cpu)
    lru_add_drain_cpu(ms, cpu);
}

void lru_cache_disable(MemorySystem& ms) {
  ms.lru_disable_count().fetch_add(1, std::memory_order_acq_rel);
  lru_add_drain_all(ms);
}

void lru_cache_enable(MemorySystem& ms) {
  MM_BUG_ON(ms.lru_disable_count().fetch_sub(1, std::memory_order_acq_rel) <= 0);
}

bool folio_isolate_lru(Folio* folio) {
  MM_BUG_ON(folio_ref_count(folio) == 0, folio);
  LruVec& lv = folio_lruvec(folio);
  SpinGuard g(lv.lru_lock);
  if (!folio_test_lru(folio)) return false;
  folio_get(folio);
  folio_clear_lru(folio);
  lruvec_del_folio(lv, folio);
  return true;
}

void folio_putback_lru(Folio* folio) {
  {
    LruVec& lv = folio_lruvec(folio);
    SpinGuard g(lv.lru_lock);
    MM_BUG_ON(folio_test_lru(folio), folio);
    folio_set_lru(folio);
    lruvec_add_folio(lv, folio);
    trace_lru_insertion(folio);
  }
  folio_put(folio);
}

void folio_mark_accessed(Folio* folio) {
  if (!folio_test_referenced(folio)) {
    folio_set_referenced(folio);
    return;
  }
  if (folio_test_active(folio) || folio_test_unevictable(folio)) return;
  // Second access: activate. A folio on a list moves to the active list
  // (folio_activate, counted); one still in this CPU's batch is marked
  // active in place and lands on the active list at the drain
  // (__lru_cache_activate_folio, not counted). Anything else (isolated, or
  // never on an LRU) stays as it is.
  MemorySystem& ms = page_memory_system(&folio->page);
  bool on_lru = false;
  {
    LruVec& lv = folio_lruvec(folio);
    SpinGuard g(lv.lru_lock);
    if (folio_test_lru(folio)) {
      on_lru = true;
      lruvec_del_folio(lv, folio);
      folio_set_active(folio);
      lruvec_add_folio(lv, folio);
    }
  }
  if (on_lru) {
    PINMM_TRACE(ms.tracer(), mm_lru_activate, "folio={:016x} pfn={:#x}",
                page_vmemmap_address(&folio->page), folio_pfn(folio).value());
    ms.events().inc(PGACTIVATE);
  } else {
    LruAddBatch& b = ms.lru_add_batch(current_cpu(ms));
    SpinGuard g(b.lock);
    for (unsigned i = b.nr; i-- > 0;) {
      if (b.folios[i] == folio) {
        folio_set_active(folio);
        break;
      }
    }
  }
  folio_clear_referenced(folio);
}

void folio_lru_release(Folio* folio) {
  if (!folio_test_lru(folio)) return;
  LruVec& lv = folio_lruvec(folio);
  SpinGuard g(lv.lru_lock);
  if (!folio_test_lru(folio)) return;
  lruvec_del_folio(lv, folio);
  folio_clear_lru(folio);
  folio_clear_active(folio);
  folio_clear_unevictable(folio);
}

}  // namespace pinmm
