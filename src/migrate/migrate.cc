#include "pinmm/migrate/migrate.h"

#include <cerrno>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/migrate/movable_ops.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/huge_memory.h"
#include "pinmm/vm/migrate_entries.h"
#include "pinmm/vm/rmap.h"

namespace pinmm {

std::string_view migrate_mode_name(MigrateMode mode) {
  switch (mode) {
    case MIGRATE_ASYNC:
      return "MIGRATE_ASYNC";
    case MIGRATE_SYNC_LIGHT:
      return "MIGRATE_SYNC_LIGHT";
    case MIGRATE_SYNC:
      return "MIGRATE_SYNC";
  }
  return "?";
}

std::string_view migrate_reason_name(MigrateReason reason) {
  static constexpr std::string_view kNames[MR_TYPES] = {
      "compaction",     "memory_failure", "memory_hotplug", "syscall_or_cpuset", "mempolicy_mbind",
      "numa_misplaced", "contig_range",   "longterm_pin",   "demotion",          "damon"};
  return reason < MR_TYPES ? kNames[reason] : "?";
}

namespace {

// NR_ISOLATED_ANON for swap-backed folios, NR_ISOLATED_FILE for the others
// (folio_is_file_lru).
NodeStatItem isolated_item(const Folio* folio) {
  return folio_test_swapbacked(folio) ? NR_ISOLATED_ANON : NR_ISOLATED_FILE;
}

void mod_isolated(Folio* folio, int64_t sign) {
  MemorySystem& ms = page_memory_system(&folio->page);
  ms.node(folio_nid(folio))
      .stats()
      .add(isolated_item(folio), sign * static_cast<int64_t>(folio_nr_pages(folio)));
}

}  // namespace

// ---- isolation ----

bool isolate_hugetlb(Folio* folio, ListHead* list) {
  HugetlbPools& pools = page_memory_system(&folio->page).hugetlb();
  MutexGuard g(pools.hugetlb_lock);
  if (!folio_test_hugetlb(folio) || !folio_test_hugetlb_migratable(folio) || !folio_try_get(folio))
    return false;
  folio_clear_hugetlb_migratable(folio);
  list_add_tail(&folio->page.lru, list);
  return true;
}

void folio_putback_active_hugetlb(Folio* folio) {
  {
    HugetlbPools& pools = page_memory_system(&folio->page).hugetlb();
    MutexGuard g(pools.hugetlb_lock);
    folio_set_hugetlb_migratable(folio);
  }
  folio_put(folio);
}

bool isolate_folio_to_list(Folio* folio, ListHead* list) {
  if (folio_test_hugetlb(folio)) return isolate_hugetlb(folio, list);
  const bool lru = !__folio_test_movable(folio);
  if (!(lru ? folio_isolate_lru(folio) : isolate_movable_page(&folio->page))) return false;
  list_add(&folio->page.lru, list);
  if (lru) mod_isolated(folio, +1);
  return true;
}

void putback_movable_pages(ListHead* list) {
  while (!list_empty(list)) {
    Folio* folio = folio_of_lru(list->load_next());
    list_del_init(&folio->page.lru);
    if (folio_test_hugetlb(folio)) {
      folio_putback_active_hugetlb(folio);
      continue;
    }
    if (__folio_test_movable(folio)) {
      // The driver takes its page back (unless it let go of it meanwhile).
      folio_lock(folio);
      if (MovableOperations* ops = page_movable_ops(&folio->page)) ops->putback_page(&folio->page);
      folio_clear_isolated(folio);
      folio_unlock(folio);
      folio_put(folio);
      continue;
    }
    mod_isolated(folio, -1);
    folio_putback_lru(folio);
  }
}

namespace {

struct Migration {
  MemorySystem& ms;
  const MigrationTarget& target;
  MigrateMode mode;
  MigrateReason reason;
};

// A folio between the unmap and the move phase (the state the kernel keeps
// in dst->private).
struct Unmapped {
  Folio* src;
  Folio* dst;
  bool was_mapped;
  AnonVma* anon_vma;
  bool movable;  // a movable_ops page: the driver moves it
};

void put_new_folio(const Migration& m, Folio* dst) {
  if (m.target.put_new_folio) {
    m.target.put_new_folio(dst);
  } else {
    folio_put(dst);
  }
}

// The source is done with (migrated, or freed under us): no longer
// isolated; the isolation reference goes (the memory-failure caller drops
// it itself).
void migrate_folio_done(Folio* src, MigrateReason reason) {
  if (!__folio_test_movable(src) && reason != MR_DEMOTION) mod_isolated(src, -1);
  if (reason != MR_MEMORY_FAILURE) folio_put(src);
}

void migrate_folio_undo_src(Folio* src, bool was_mapped, AnonVma* anon_vma, bool locked,
                            ListHead* ret) {
  if (was_mapped) remove_migration_ptes(src, src);
  if (locked) folio_unlock(src);
  if (anon_vma != nullptr) anon_vma->put();
  if (ret != nullptr) list_move_tail(&src->page.lru, ret);
}

void migrate_folio_undo_dst(const Migration& m, Folio* dst, bool locked) {
  if (locked) folio_unlock(dst);
  put_new_folio(m, dst);
}

// Page-cache statistics follow the folio to its new node.
void move_file_stats(Folio* src, Folio* dst, bool dirty) {
  if (folio_nid(src) == folio_nid(dst) || folio_test_hugetlb(src)) return;
  MemorySystem& ms = page_memory_system(&src->page);
  NodeStats& from = ms.node(folio_nid(src)).stats();
  NodeStats& to = ms.node(folio_nid(dst)).stats();
  const auto nr = static_cast<int64_t>(folio_nr_pages(src));
  auto move = [&](NodeStatItem item) {
    from.add(item, -nr);
    to.add(item, nr);
  };
  move(NR_FILE_PAGES);
  if (folio_test_swapbacked(src)) move(NR_SHMEM);
  if (dirty && !folio_test_swapbacked(src)) move(NR_FILE_DIRTY);
}

}  // namespace

// The isolation reference, plus the page cache's (one
// per page) and PG_private's.
int folio_expected_refs(const AddressSpace* mapping, const Folio* folio) {
  int refs = 1;
  if (mapping == nullptr) return refs;
  refs += static_cast<int>(folio_nr_pages(folio));
  if (folio_test_private(folio)) ++refs;
  return refs;
}

// For page-cache folios, src's refcount is frozen at `expected` under the
// cache lock so that no lookup can take a new reference while the slot
// changes; -EAGAIN if someone holds one.
int __folio_migrate_mapping(AddressSpace* mapping, Folio* dst, Folio* src, int expected) {
  if (mapping == nullptr) {
    // Anonymous: the brief freeze keeps out a racing deferred split.
    if (folio_ref_count(src) != expected) return -EAGAIN;
    if (folio_test_large(src)) {
      if (!folio_ref_freeze(src, expected)) return -EAGAIN;
      folio_ref_unfreeze(src, expected);
    }
    dst->page.set_index(src->page.index());
    dst->page.set_mapping(src->page.mapping());
    if (folio_test_swapbacked(src)) __folio_set_swapbacked(dst);
    return MIGRATEPAGE_SUCCESS;
  }
  const auto nr = static_cast<int>(folio_nr_pages(src));
  bool dirty = false;
  {
    SpinGuard g(mapping->i_pages_lock);
    if (!folio_ref_freeze(src, expected)) return -EAGAIN;
    dst->page.set_index(src->page.index());
    dst->page.set_mapping(src->page.mapping());
    if (folio_test_swapbacked(src)) __folio_set_swapbacked(dst);
    dirty = folio_test_dirty(src);
    if (dirty) {
      folio_clear_dirty(src);
      folio_set_dirty(dst);
    }
    folio_ref_add(dst, nr);  // the cache's references
    mapping->i_pages[src->page.index()] = dst;
    folio_ref_unfreeze(src, expected - nr);
  }
  move_file_stats(src, dst, dirty);
  return MIGRATEPAGE_SUCCESS;
}

int folio_migrate_mapping(AddressSpace* mapping, Folio* dst, Folio* src, int extra_count) {
  const int expected = folio_expected_refs(mapping, src) + extra_count;
  if (folio_ref_count(src) != expected) return -EAGAIN;
  return __folio_migrate_mapping(mapping, dst, src, expected);
}

// folio_migrate_flags.
void folio_migrate_flags(Folio* dst, Folio* src) {
  if (folio_test_referenced(src)) folio_set_referenced(dst);
  if (folio_test_uptodate(src)) folio_set_uptodate(dst);
  if (folio_test_clear_active(src)) {
    folio_set_active(dst);
  } else if (folio_test_clear_unevictable(src)) {
    folio_set_unevictable(dst);
  }
  if (folio_test_workingset(src)) folio_set_workingset(dst);
  // PG_checked and PG_mappedtodisk share bits with PG_swapcache and
  // PG_anon_exclusive; copied as the kernel copies them.
  if (src->page.test(PG_checked)) dst->page.set(PG_checked);
  if (src->page.test(PG_mappedtodisk)) dst->page.set(PG_mappedtodisk);
  if (folio_test_dirty(src)) folio_set_dirty(dst);
  if (folio_test_young(src)) folio_set_young(dst);
  if (folio_test_idle(src)) folio_set_idle(dst);
  folio_clear_private(src);
  if (folio_test_writeback(dst)) folio_end_writeback(dst);
}

namespace {

// The refcount check, the copy, the mapping switch.
int __migrate_folio(const Migration& m, AddressSpace* mapping, Folio* dst, Folio* src) {
  const int expected = folio_expected_refs(mapping, src);
  // Cheap check before copying: any extra reference (a pin, a GUP
  // reference, a per-CPU LRU batch) makes migration pointless.
  if (folio_ref_count(src) != expected) return -EAGAIN;
  if (m.ms.injector().should_fail(inject_point_migrate::kFolioCopy)) return -EHWPOISON;
  m.ms.frames().copy(folio_pfn(dst), folio_pfn(src), PageCount(folio_nr_pages(src)));
  const int rc = __folio_migrate_mapping(mapping, dst, src, expected);
  if (rc != MIGRATEPAGE_SUCCESS) return rc;
  folio_migrate_flags(dst, src);
  return MIGRATEPAGE_SUCCESS;
}

// move_to_new_folio. Every pinmm file system migrates page-cache folios
// with migrate_folio, which is __migrate_folio once writeback is done
// (tmpfs and hugetlbfs as Linux does; the ext4 stand-in has no buffer
// heads, where buffer_migrate_folio falls back to it too).
int move_to_new_folio(const Migration& m, Folio* dst, Folio* src) {
  MM_BUG_ON(!folio_test_locked(src) || !folio_test_locked(dst), src);
  if (m.ms.injector().should_fail(inject_point_migrate::kMoveFolio)) return -EAGAIN;
  const int rc = __migrate_folio(m, folio_mapping(src), dst, src);
  // A page-cache source must not reach the allocator with its mapping set;
  // an anonymous one stays anonymous until freed.
  if (rc == MIGRATEPAGE_SUCCESS && !folio_test_anon(src)) src->page.set_mapping(0);
  return rc;
}

// migrate_folio_unmap: MIGRATEPAGE_SUCCESS (freed under us),
// MIGRATEPAGE_UNMAP (*out filled; src and dst locked, src unmapped), or an
// error: -ENOMEM, -EAGAIN (src stays on its list), other (src moved to
// `ret`).
int migrate_folio_unmap(const Migration& m, Folio* src, Unmapped* out, ListHead* ret,
                        TlbFlushBatch* batch) {
  if (folio_ref_count(src) == 1) {
    // Only the isolation reference is left: the folio was freed under us.
    folio_clear_active(src);
    folio_clear_unevictable(src);
    list_del_init(&src->page.lru);
    migrate_folio_done(src, m.reason);
    return MIGRATEPAGE_SUCCESS;
  }
  const bool is_lru = !__folio_test_movable(src);
  Folio* dst = m.target.get_new_folio(src);
  if (dst == nullptr) return -ENOMEM;

  int rc = -EAGAIN;
  bool locked = false;
  bool dst_locked = false;
  bool was_mapped = false;
  AnonVma* anon_vma = nullptr;
  if (!folio_trylock(src)) {
    if (m.mode == MIGRATE_ASYNC) goto out;
    if (current().flags() & PF_MEMALLOC) goto out;
    if (m.mode == MIGRATE_SYNC_LIGHT && !folio_test_uptodate(src)) goto out;
    folio_lock(src);
  }
  locked = true;
  if (folio_test_writeback(src)) {
    if (m.mode != MIGRATE_SYNC) {
      rc = -EBUSY;
      goto out;
    }
    folio_wait_writeback(src);
  }
  // Keeps the AnonVma alive for remove_migration_ptes once every mapping
  // is gone.
  if (folio_test_anon(src)) anon_vma = folio_get_anon_vma(src);
  if (!folio_trylock(dst)) goto out;
  dst_locked = true;
  if (!is_lru) {
    // The driver's page is not mapped: it moves in the move phase.
    list_del_init(&src->page.lru);
    *out = Unmapped{src, dst, false, anon_vma, true};
    return MIGRATEPAGE_UNMAP;
  }
  if (folio_mapped(src)) {
    try_to_migrate(src, m.mode == MIGRATE_ASYNC ? TTU_BATCH_FLUSH : TTU_NONE, batch);
    was_mapped = true;
  }
  if (!folio_mapped(src)) {
    list_del_init(&src->page.lru);
    *out = Unmapped{src, dst, was_mapped, anon_vma, false};
    return MIGRATEPAGE_UNMAP;
  }
out:
  // -EAGAIN leaves src on its list for the next pass.
  migrate_folio_undo_src(src, was_mapped, anon_vma, locked, rc == -EAGAIN ? nullptr : ret);
  migrate_folio_undo_dst(m, dst, dst_locked);
  return rc;
}

// migrate_folio_move: MIGRATEPAGE_SUCCESS, -EAGAIN (the folio stays
// unmapped for another pass), or an error (src restored and moved to
// `ret`).
// migrate_movable_ops_page: the driver moves its page.
int migrate_movable_ops_page(const Migration& m, Folio* dst, Folio* src) {
  MovableOperations* ops = page_movable_ops(&src->page);
  if (ops == nullptr) {
    // The driver let go of the page meanwhile: nothing to move, it is
    // freed with the isolation reference (and dst unused).
    folio_clear_isolated(src);
    return MIGRATEPAGE_SUCCESS;
  }
  const int rc = ops->migrate_page(&dst->page, &src->page, m.mode);
  if (rc == MIGRATEPAGE_SUCCESS) folio_clear_isolated(src);
  return rc;
}

int migrate_folio_move(const Migration& m, const Unmapped& u, ListHead* ret) {
  const int rc =
      u.movable ? migrate_movable_ops_page(m, u.dst, u.src) : move_to_new_folio(m, u.dst, u.src);
  if (rc == -EAGAIN) return rc;
  if (rc != MIGRATEPAGE_SUCCESS) {
    list_add_tail(&u.src->page.lru, ret);
    migrate_folio_undo_src(u.src, u.was_mapped, u.anon_vma, true, nullptr);
    migrate_folio_undo_dst(m, u.dst, true);
    return rc;
  }
  if (!u.movable) folio_add_lru(u.dst);
  if (u.was_mapped) remove_migration_ptes(u.src, u.dst);
  folio_unlock(u.dst);
  folio_put(u.dst);  // the allocation's reference; mappings and the cache hold theirs
  if (u.anon_vma != nullptr) u.anon_vma->put();
  folio_unlock(u.src);
  migrate_folio_done(u.src, m.reason);
  return MIGRATEPAGE_SUCCESS;
}

bool is_pmd_thp(const Folio* folio) {
  return folio_test_large(folio) && folio_order(folio) == HPAGE_PMD_ORDER;
}

// try_split_folio: on success the folio's pieces (the head included) are on
// `split_folios`.
int try_split_folio(Folio* folio, ListHead* split_folios, MigrateMode mode) {
  if (mode == MIGRATE_ASYNC) {
    if (!folio_trylock(folio)) return -EAGAIN;
  } else {
    folio_lock(folio);
  }
  const int rc = split_folio_to_list(folio, split_folios);
  folio_unlock(folio);
  if (rc == 0) list_move_tail(&folio->page.lru, split_folios);
  return rc;
}

// migrate_pages_batch: unmap every folio of `from` (one TLB flush for the
// batch in ASYNC mode), then move them, each phase up to `nr_pass` passes.
// Large folios that must be split (partially mapped, or no target of
// their size) go to `split_folios` in pieces, if given. Returns the number
// of folios that failed (a split one counts once), or -ENOMEM.
int migrate_pages_batch(const Migration& m, ListHead* from, ListHead* ret, ListHead* split_folios,
                        MigratePagesStats& stats, int nr_pass) {
  const bool nosplit = m.reason == MR_NUMA_MISPLACED || split_folios == nullptr;
  int retry = 1;
  int thp_retry = 0;
  int nr_failed = 0;
  uint64_t nr_retry_pages = 0;
  int rc_saved = 0;
  std::vector<Unmapped> unmapped;
  TlbFlushBatch batch;

  for (int pass = 0; pass < nr_pass && retry; ++pass) {
    retry = 0;
    thp_retry = 0;
    nr_retry_pages = 0;
    for (ListHead *pos = from->load_next(), *next = pos->load_next(); pos != from;
         pos = next, next = pos->load_next()) {
      Folio* folio = folio_of_lru(pos);
      const bool is_thp = is_pmd_thp(folio);
      const uint64_t nr_pages = folio_nr_pages(folio);
      // A partially mapped THP is split rather than migrated whole.
      if (split_folios != nullptr && nr_pages > 2 && folio_test_partially_mapped(folio) &&
          try_split_folio(folio, split_folios, m.mode) == 0) {
        ++nr_failed;
        stats.nr_thp_failed += is_thp;
        stats.nr_thp_split += is_thp;
        ++stats.nr_split;
        continue;
      }
      Unmapped u{};
      const int rc = migrate_folio_unmap(m, folio, &u, ret, &batch);
      switch (rc) {
        case -ENOMEM:
          ++nr_failed;
          stats.nr_thp_failed += is_thp;
          // No target of this size: split and migrate the pieces instead.
          if (folio_test_large(folio) && !nosplit) {
            const int split = try_split_folio(folio, split_folios, m.mode);
            if (split == 0) {
              stats.nr_thp_split += is_thp;
              ++stats.nr_split;
              break;
            }
            if (m.reason == MR_LONGTERM_PIN && split == -EAGAIN) {
              ++retry;
              thp_retry += is_thp;
              nr_retry_pages += nr_pages;
              --nr_failed;
              stats.nr_thp_failed -= is_thp;
              break;
            }
          }
          stats.nr_failed_pages += nr_pages + nr_retry_pages;
          stats.nr_thp_failed += thp_retry;
          rc_saved = rc;
          goto move;
        case -EAGAIN:
          ++retry;
          thp_retry += is_thp;
          nr_retry_pages += nr_pages;
          break;
        case MIGRATEPAGE_SUCCESS:
          stats.nr_succeeded += nr_pages;
          stats.nr_thp_succeeded += is_thp;
          break;
        case MIGRATEPAGE_UNMAP:
          unmapped.push_back(u);
          break;
        default:
          ++nr_failed;
          stats.nr_thp_failed += is_thp;
          stats.nr_failed_pages += nr_pages;
          break;
      }
    }
  }
  nr_failed += retry;
  stats.nr_thp_failed += thp_retry;
  stats.nr_failed_pages += nr_retry_pages;

move:
  batch.flush();
  if (!unmapped.empty()) m.ms.injector().maybe_delay(inject_point_migrate::kAfterUnmap);
  retry = 1;
  for (int pass = 0; pass < nr_pass && retry && !unmapped.empty(); ++pass) {
    retry = 0;
    thp_retry = 0;
    nr_retry_pages = 0;
    std::vector<Unmapped> again;
    for (const Unmapped& u : unmapped) {
      const bool is_thp = is_pmd_thp(u.src);
      const uint64_t nr_pages = folio_nr_pages(u.src);
      const int rc = migrate_folio_move(m, u, ret);
      switch (rc) {
        case -EAGAIN:
          ++retry;
          thp_retry += is_thp;
          nr_retry_pages += nr_pages;
          again.push_back(u);
          break;
        case MIGRATEPAGE_SUCCESS:
          stats.nr_succeeded += nr_pages;
          stats.nr_thp_succeeded += is_thp;
          break;
        default:
          ++nr_failed;
          stats.nr_thp_failed += is_thp;
          stats.nr_failed_pages += nr_pages;
          break;
      }
    }
    unmapped.swap(again);
  }
  if (!unmapped.empty()) {
    nr_failed += retry;
    stats.nr_thp_failed += thp_retry;
    stats.nr_failed_pages += nr_retry_pages;
  }
  // What is still unmapped after the last pass goes back to its mappings.
  for (const Unmapped& u : unmapped) {
    list_add_tail(&u.src->page.lru, ret);
    migrate_folio_undo_src(u.src, u.was_mapped, u.anon_vma, true, nullptr);
    migrate_folio_undo_dst(m, u.dst, true);
  }
  return rc_saved != 0 ? rc_saved : nr_failed;
}

// migrate_pages_sync: one ASYNC batch (3 passes), then each failure on its
// own in the requested mode (7 passes), one folio locked at a time.
int migrate_pages_sync(const Migration& m, ListHead* from, ListHead* ret, ListHead* split_folios,
                       MigratePagesStats& stats) {
  ListHead folios;
  init_list_head(&folios);
  MigratePagesStats astats;
  const Migration async{m.ms, m.target, MIGRATE_ASYNC, m.reason};
  int rc =
      migrate_pages_batch(async, from, &folios, split_folios, astats, NR_MAX_MIGRATE_ASYNC_RETRY);
  stats.nr_succeeded += astats.nr_succeeded;
  stats.nr_thp_succeeded += astats.nr_thp_succeeded;
  stats.nr_thp_split += astats.nr_thp_split;
  stats.nr_split += astats.nr_split;
  if (rc < 0) {
    stats.nr_failed_pages += astats.nr_failed_pages;
    stats.nr_thp_failed += astats.nr_thp_failed;
    list_splice_tail_init(&folios, ret);
    return rc;
  }
  stats.nr_thp_failed += astats.nr_thp_split;
  int nr_failed = static_cast<int>(astats.nr_split);
  // Folios that failed the ASYNC passes, and those still on `from`, get
  // their own SYNC attempt.
  list_splice_tail_init(&folios, from);
  while (!list_empty(from)) {
    list_move(from->load_next(), &folios);
    rc = migrate_pages_batch(m, &folios, ret, split_folios, stats, NR_MAX_MIGRATE_SYNC_RETRY);
    list_splice_tail_init(&folios, ret);
    if (rc < 0) return rc;
    nr_failed += rc;
  }
  return nr_failed;
}

// unmap_and_move_huge_page. `force`: may sleep on the folio lock (from the
// fourth pass, in MIGRATE_SYNC only).
int unmap_and_move_huge_page(const Migration& m, Folio* src, bool force, ListHead* ret) {
  if (folio_ref_count(src) == 1) {
    list_del_init(&src->page.lru);
    folio_putback_active_hugetlb(src);
    return MIGRATEPAGE_SUCCESS;
  }
  Folio* dst = m.target.get_new_folio(src);
  if (dst == nullptr) return -ENOMEM;
  int rc = -EAGAIN;
  bool was_mapped = false;
  AnonVma* anon_vma = nullptr;
  if (!folio_trylock(src)) {
    if (!force || m.mode != MIGRATE_SYNC) goto out;
    folio_lock(src);
  }
  if (folio_test_anon(src)) anon_vma = folio_get_anon_vma(src);
  if (folio_trylock(dst)) {
    if (folio_mapped(src)) {
      try_to_migrate(src, TTU_NONE);
      was_mapped = true;
    }
    if (!folio_mapped(src)) rc = move_to_new_folio(m, dst, src);
    if (was_mapped) remove_migration_ptes(src, rc == MIGRATEPAGE_SUCCESS ? dst : src);
    folio_unlock(dst);
  }
  if (anon_vma != nullptr) anon_vma->put();
  folio_unlock(src);
out:
  if (rc == MIGRATEPAGE_SUCCESS) {
    list_del_init(&src->page.lru);
    folio_putback_active_hugetlb(src);
    folio_putback_active_hugetlb(dst);  // migratable; the allocation's reference goes
    return rc;
  }
  if (rc != -EAGAIN) list_move_tail(&src->page.lru, ret);
  put_new_folio(m, dst);
  return rc;
}

// hugepage_migration_supported: pinmm migrates 2 MiB hugetlb folios only
// (no PUD migration entries; docs/migrate.md).
bool hugepage_migration_supported(const Folio* folio) {
  return folio_order(folio) == HPAGE_PMD_ORDER;
}

// migrate_hugetlbs: the hugetlb folios of `from`, up to 10 passes.
int migrate_hugetlbs(const Migration& m, ListHead* from, ListHead* ret, MigratePagesStats& stats) {
  int retry = 1;
  int nr_failed = 0;
  uint64_t nr_retry_pages = 0;
  for (int pass = 0; pass < NR_MAX_MIGRATE_PAGES_RETRY && retry; ++pass) {
    retry = 0;
    nr_retry_pages = 0;
    for (ListHead *pos = from->load_next(), *next = pos->load_next(); pos != from;
         pos = next, next = pos->load_next()) {
      Folio* folio = folio_of_lru(pos);
      if (!folio_test_hugetlb(folio)) continue;
      const uint64_t nr_pages = folio_nr_pages(folio);
      if (!hugepage_migration_supported(folio)) {
        ++nr_failed;
        stats.nr_failed_pages += nr_pages;
        list_move_tail(&folio->page.lru, ret);
        continue;
      }
      const int rc = unmap_and_move_huge_page(m, folio, pass > 2, ret);
      switch (rc) {
        case -ENOMEM:
          ++nr_failed;
          stats.nr_failed_pages += nr_pages + nr_retry_pages;
          return -ENOMEM;
        case -EAGAIN:
          ++retry;
          nr_retry_pages += nr_pages;
          break;
        case MIGRATEPAGE_SUCCESS:
          stats.nr_succeeded += nr_pages;
          break;
        default:
          ++nr_failed;
          stats.nr_failed_pages += nr_pages;
          break;
      }
    }
  }
  nr_failed += retry;
  stats.nr_failed_pages += nr_retry_pages;
  return nr_failed;
}

// Moves folios from the front of `from` to `batch` until they hold
// NR_MAX_BATCHED_MIGRATION base pages (the last one may cross it); hugetlb
// folios met on the way go to `ret` (their migration already happened).
void take_batch(ListHead* from, ListHead* batch, ListHead* ret) {
  uint64_t nr_pages = 0;
  while (!list_empty(from) && nr_pages < NR_MAX_BATCHED_MIGRATION) {
    ListHead* pos = from->load_next();
    Folio* folio = folio_of_lru(pos);
    if (folio_test_hugetlb(folio)) {
      list_move_tail(pos, ret);
      continue;
    }
    nr_pages += folio_nr_pages(folio);
    list_move_tail(pos, batch);
  }
}

}  // namespace

int migrate_pages(MemorySystem& ms, ListHead* from, const MigrationTarget& target, MigrateMode mode,
                  MigrateReason reason, unsigned* nr_succeeded, MigratePagesStats* stats_out) {
  const Migration m{ms, target, mode, reason};
  PINMM_TRACE(ms.tracer(), mm_migrate_pages_start, "mode={} reason={}", migrate_mode_name(mode),
              migrate_reason_name(reason));
  MigratePagesStats stats;
  ListHead ret;
  init_list_head(&ret);
  ListHead split_folios;
  init_list_head(&split_folios);

  int rc_gather = migrate_hugetlbs(m, from, &ret, stats);
  while (rc_gather >= 0 && !list_empty(from)) {
    ListHead folios;
    init_list_head(&folios);
    take_batch(from, &folios, &ret);
    const int rc = mode == MIGRATE_ASYNC
                       ? migrate_pages_batch(m, &folios, &ret, &split_folios, stats,
                                             NR_MAX_MIGRATE_PAGES_RETRY)
                       : migrate_pages_sync(m, &folios, &ret, &split_folios, stats);
    list_splice_tail_init(&folios, &ret);
    if (rc < 0) {
      rc_gather = rc;
      list_splice_tail_init(&split_folios, &ret);
      break;
    }
    // The pieces of split folios: one ASYNC pass; their failures count in
    // pgmigrate_fail but not in the return value (the folio they came
    // from already did).
    if (!list_empty(&split_folios)) {
      const Migration async{ms, target, MIGRATE_ASYNC, reason};
      (void)migrate_pages_batch(async, &split_folios, &ret, nullptr, stats, 1);
      list_splice_tail_init(&split_folios, &ret);
    }
    rc_gather += rc;
  }
  // Everything not migrated (including what -ENOMEM left untried) is on
  // `from` again.
  list_splice_init(&ret, from);
  if (list_empty(from)) rc_gather = 0;

  VmEvents& ev = ms.events();
  ev.add(PGMIGRATE_SUCCESS, static_cast<int64_t>(stats.nr_succeeded));
  ev.add(PGMIGRATE_FAIL, static_cast<int64_t>(stats.nr_failed_pages));
  ev.add(THP_MIGRATION_SUCCESS, static_cast<int64_t>(stats.nr_thp_succeeded));
  ev.add(THP_MIGRATION_FAIL, static_cast<int64_t>(stats.nr_thp_failed));
  ev.add(THP_MIGRATION_SPLIT, static_cast<int64_t>(stats.nr_thp_split));
  PINMM_TRACE(ms.tracer(), mm_migrate_pages,
              "nr_succeeded={} nr_failed={} nr_thp_succeeded={} nr_thp_failed={} nr_thp_split={} "
              "nr_split={} mode={} reason={}",
              stats.nr_succeeded, stats.nr_failed_pages, stats.nr_thp_succeeded,
              stats.nr_thp_failed, stats.nr_thp_split, stats.nr_split, migrate_mode_name(mode),
              migrate_reason_name(reason));
  if (nr_succeeded != nullptr) *nr_succeeded = static_cast<unsigned>(stats.nr_succeeded);
  if (stats_out != nullptr) *stats_out = stats;
  return rc_gather;
}

}  // namespace pinmm
