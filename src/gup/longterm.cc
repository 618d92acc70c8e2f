// Long-term pins (KERNEL-SPEC 5): pin, collect the folios that may not stay
// pinned (CMA, MIGRATE_ISOLATE, ZONE_MOVABLE), unpin everything, migrate
// them out inside the memalloc_pin scope, and pin the whole range again.
#include <algorithm>
#include <cerrno>
#include <span>

#include "internal.h"
#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/migrate/blockers.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/migrate_device.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/rmap.h"

namespace pinmm {

namespace {

// Small folios may sit in a per-CPU LRU batch, holding a reference that
// would make isolation fail.
bool folio_may_be_lru_cached(const Folio* folio) { return !folio_test_large(folio); }

// The pinned entries a long-term check works on: the pages GUP returned,
// or the folios memfd_pin_folios returned (struct pages_or_folios).
class PagesOrFolios {
 public:
  explicit PagesOrFolios(std::span<Page*> pages) : pages_(pages) {}
  explicit PagesOrFolios(std::span<Folio*> folios) : folios_(folios) {}
  size_t size() const { return pages_.empty() ? folios_.size() : pages_.size(); }
  Folio* folio(size_t i) const {
    if (!pages_.empty()) return pages_[i] != nullptr ? page_folio(pages_[i]) : nullptr;
    return folios_[i];
  }
  // Forgets entry i (its pin is the caller's now).
  void clear(size_t i) {
    if (!pages_.empty()) {
      pages_[i] = nullptr;
    } else {
      folios_[i] = nullptr;
    }
  }
  // Drops every pin (no owner records exist yet) and clears the entries.
  void unpin_all() {
    if (!pages_.empty()) {
      unpin_pages_untracked(pages_);
      std::fill(pages_.begin(), pages_.end(), nullptr);
    } else {
      unpin_folios_untracked(folios_);
      std::fill(folios_.begin(), folios_.end(), nullptr);
    }
  }

 private:
  std::span<Page*> pages_;
  std::span<Folio*> folios_;
};

// Isolates the unpinnable folios of `pofs` onto `list`; returns how many
// there were (isolated or not).
unsigned long collect_longterm_unpinnable_folios(MemorySystem& ms, const PagesOrFolios& pofs,
                                                 ListHead* list) {
  unsigned long collected = 0;
  int drained = 0;
  Folio* prev = nullptr;
  for (size_t i = 0; i < pofs.size(); ++i) {
    Folio* folio = pofs.folio(i);
    if (folio == prev) continue;  // the rest of a large folio
    prev = folio;
    if (folio_is_longterm_pinnable(folio)) continue;
    ++collected;
    if (is_device_coherent_page(&folio->page)) continue;  // migrated on its own, below
    if (folio_test_hugetlb(folio)) {
      (void)isolate_hugetlb(folio, list);  // not migratable: stays pinned, fails later
      continue;
    }
    const int pin_refs = folio_test_large(folio) ? 1 : GUP_PIN_COUNTING_BIAS;
    auto unexpected = [&] {
      return folio_may_be_lru_cached(folio) &&
             folio_ref_count(folio) != folio_expected_ref_count(folio) + pin_refs;
    };
    if (drained == 0 && unexpected()) {
      lru_add_drain(ms);
      drained = 1;
    }
    if (drained == 1 && unexpected()) {
      lru_add_drain_all(ms);
      drained = 2;
    }
    if (!folio_isolate_lru(folio)) continue;
    list_add_tail(&folio->page.lru, list);
    ms.node(folio_nid(folio))
        .stats()
        .add(folio_test_swapbacked(folio) ? NR_ISOLATED_ANON : NR_ISOLATED_FILE,
             static_cast<int64_t>(folio_nr_pages(folio)));
  }
  return collected;
}

// What kept a long-term pin's migration from succeeding, for the machine's
// blocker log (the caller only sees -ENOMEM).
void log_migration_failure(MemorySystem& ms, ListHead* list, int rc) {
  BlockedOperation op;
  op.operation = "pin_user_pages(FOLL_LONGTERM)";
  op.detail = "migrating unpinnable folios failed";
  op.err = -ENOMEM;
  for (PageBlocker& b : describe_migration_list(ms, list, rc))
    op.add(std::move(b));
  ms.blocker_log().add(std::move(op));
}

// Device-coherent folios go back to RAM one by one (their pin becomes the reference migration
// consumes); every other pin goes (the isolation references keep the listed folios alive), then the
// list migrates. -EAGAIN: re-pin the range; -ENOMEM: some folio did not move; -EBUSY: a
// device-coherent one did not (all pins dropped either way).
long migrate_longterm_unpinnable_folios(MemorySystem& ms, PagesOrFolios& pofs, ListHead* list) {
  for (size_t i = 0; i < pofs.size(); ++i) {
    Folio* folio = pofs.folio(i);
    if (folio == nullptr || !is_device_coherent_page(&folio->page)) continue;
    pofs.clear(i);
    folio_get(folio);
    gup_put_folio(folio, 1, FOLL_PIN);
    if (migrate_device_coherent_folio(folio) != 0) {
      pofs.unpin_all();
      putback_movable_pages(list);
      return -EBUSY;
    }
  }
  pofs.unpin_all();
  long ret = -EAGAIN;
  if (!list_empty(list)) {
    MigrationTargetControl mtc;
    mtc.nid = NUMA_NO_NODE;
    mtc.gfp_mask = GFP_USER | __GFP_NOWARN;
    mtc.reason = MR_LONGTERM_PIN;
    const int rc =
        migrate_pages(ms, list, migration_target(ms, mtc), MIGRATE_SYNC, MR_LONGTERM_PIN);
    if (rc != 0) {
      ret = -ENOMEM;
      log_migration_failure(ms, list, rc);
    }
  }
  putback_movable_pages(list);
  return ret;
}

// 0: every folio is pinnable where it is; otherwise the pins are gone and
// migrate_longterm_unpinnable_folios says why (-EAGAIN: pin again).
long check_and_migrate_movable_pages_or_folios(MemorySystem& ms, PagesOrFolios pofs) {
  ListHead list;
  init_list_head(&list);
  if (collect_longterm_unpinnable_folios(ms, pofs, &list) == 0) return 0;
  return migrate_longterm_unpinnable_folios(ms, pofs, &list);
}

long check_and_migrate_movable_pages(MemorySystem& ms, unsigned long nr_pages, Page** pages) {
  return check_and_migrate_movable_pages_or_folios(
      ms, PagesOrFolios(std::span<Page*>(pages, static_cast<size_t>(nr_pages))));
}

constexpr PolicyInfo kLongtermPolicies[] = {
    {"migrate",
     "FOLL_LONGTERM migrates folios in ZONE_MOVABLE, CMA or isolated pageblocks out first, then "
     "pins (Linux 6.12)"},
    {"in-place",
     "FOLL_LONGTERM pins memory where it lies, as kernels before 5.13 did for ZONE_MOVABLE: the "
     "pins then block offlining and CMA"},
};

}  // namespace

std::span<const PolicyInfo> longterm_pin_policies() { return kLongtermPolicies; }

long __gup_longterm_locked(Mm& mm, unsigned long start, unsigned long nr_pages, Page** pages,
                           int* locked, Foll flags) {
  if (!any(flags & FOLL_LONGTERM) || mm.ms().longterm_pin_policy() == LongtermPinPolicy::kInPlace)
    return __get_user_pages_locked(mm, start, nr_pages, pages, locked, flags);
  // Every allocation below, faults included, avoids ZONE_MOVABLE and CMA.
  const unsigned scope = memalloc_pin_save();
  long rc = 0;
  long nr_pinned = 0;
  do {
    nr_pinned = __get_user_pages_locked(mm, start, nr_pages, pages, locked, flags);
    if (nr_pinned <= 0) {
      rc = nr_pinned;
      break;
    }
    rc = check_and_migrate_movable_pages(mm.ms(), static_cast<unsigned long>(nr_pinned), pages);
  } while (rc == -EAGAIN);
  memalloc_pin_restore(scope);
  return rc != 0 ? rc : nr_pinned;
}

long check_and_migrate_movable_folios(MemorySystem& ms, std::span<Folio*> folios) {
  if (ms.longterm_pin_policy() == LongtermPinPolicy::kInPlace) return 0;
  return check_and_migrate_movable_pages_or_folios(ms, PagesOrFolios(folios));
}

}  // namespace pinmm
