// Page migration: isolation, the per-folio state machine and migrate_pages.
//
// Linux counterpart: mm/migrate.c (migrate_pages, migrate_pages_batch,
// migrate_pages_sync, migrate_hugetlbs, migrate_folio_unmap/move,
// __migrate_folio, __folio_migrate_mapping, folio_migrate_flags,
// putback_movable_pages, isolate_folio_to_list), isolate_hugetlb and
// folio_putback_active_hugetlb (mm/hugetlb.c), include/linux/migrate_mode.h
// and include/trace/events/migrate.h. KERNEL-SPEC section 6 is the
// reference; docs/migrate.md describes what pinmm does and does not model.
//
// A folio to migrate is first isolated: taken off its LRU list (or, for
// hugetlb, marked not migratable) with one extra reference, the isolation
// reference, and put on a list through its `lru` field. migrate_pages moves
// what it can and leaves the rest on the list; the caller puts those back
// with putback_movable_pages.
//
// Per folio (KERNEL-SPEC 6.5): lock src (trylock in ASYNC), handle
// writeback by mode, allocate dst from the target policy and lock it,
// unmap src through try_to_migrate (migration entries), then, after the
// batch's TLB flush, check the expected refcount (isolation reference +
// page-cache references + PG_private), copy the bytes, freeze the refcount
// and switch the page-cache slot (file folios), copy the flags, and map dst
// where the migration entries were. Any extra reference (a GUP pin, a
// FOLL_GET, a per-CPU LRU batch) fails the check with -EAGAIN until the
// retry passes run out.
//
// Thread safety: the caller owns the list (folios on it are isolated and
// referenced). Everything else is the folio lock protocol: src and dst are
// locked from unmap to remap, so faults on the migration entries sleep on
// src's lock bit (without a reference) and retry after it is released.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "pinmm/base/list.h"
#include "pinmm/phys/mmzone.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;

enum MigrateMode : uint8_t { MIGRATE_ASYNC = 0, MIGRATE_SYNC_LIGHT = 1, MIGRATE_SYNC = 2 };

enum MigrateReason : uint8_t {
  MR_COMPACTION,
  MR_MEMORY_FAILURE,
  MR_MEMORY_HOTPLUG,
  MR_SYSCALL,
  MR_MEMPOLICY_MBIND,
  MR_NUMA_MISPLACED,
  MR_CONTIG_RANGE,
  MR_LONGTERM_PIN,
  MR_DEMOTION,
  MR_DAMON,
  MR_TYPES
};

// "MIGRATE_ASYNC" …, as the migrate trace events print them.
std::string_view migrate_mode_name(MigrateMode mode);
// "compaction" …, the trace strings of KERNEL-SPEC 6.2.
std::string_view migrate_reason_name(MigrateReason reason);

inline constexpr int NR_MAX_MIGRATE_PAGES_RETRY = 10;
inline constexpr int NR_MAX_MIGRATE_ASYNC_RETRY = 3;
inline constexpr int NR_MAX_MIGRATE_SYNC_RETRY =
    NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY;
inline constexpr uint64_t NR_MAX_BATCHED_MIGRATION = HPAGE_PMD_NR;

// Per-folio results besides negative errnos.
inline constexpr int MIGRATEPAGE_SUCCESS = 0;
inline constexpr int MIGRATEPAGE_UNMAP = 1;

// Folios on a migration list, linked through Page::lru.
inline Folio* folio_of_lru(ListHead* lh) {
  return reinterpret_cast<Folio*>(reinterpret_cast<char*>(lh) - offsetof(Page, lru));
}

// ---- isolation ----

// isolate_folio_to_list: takes a folio (the caller holds a reference) off
// its LRU list, or a hugetlb folio out of circulation, adds it to `list`
// with the isolation reference and accounts NR_ISOLATED_ANON/FILE. False if
// it cannot be isolated (not on an LRU list, e.g. still in a per-CPU batch;
// a free or non-migratable hugetlb folio).
bool isolate_folio_to_list(Folio* folio, ListHead* list);
// isolate_hugetlb: clears HPG_migratable and takes a reference; false if
// the folio is not an in-use, migratable hugetlb folio.
bool isolate_hugetlb(Folio* folio, ListHead* list);
// folio_putback_active_hugetlb: migratable again, reference dropped.
void folio_putback_active_hugetlb(Folio* folio);
// Puts every folio on `list` back (LRU or hugetlb) and drops the isolation
// references; the list ends empty.
void putback_movable_pages(ListHead* list);

// ---- migrate_pages ----

// get_new_folio / put_new_folio of the kernel: allocate the destination for
// a source folio (nullptr: -ENOMEM), and free one that was not used (empty:
// folio_put).
struct MigrationTarget {
  std::function<Folio*(Folio* src)> get_new_folio;
  std::function<void(Folio* dst)> put_new_folio;
};

struct MigratePagesStats {
  uint64_t nr_succeeded = 0;     // base pages
  uint64_t nr_failed_pages = 0;  // base pages
  uint64_t nr_thp_succeeded = 0;
  uint64_t nr_thp_failed = 0;
  uint64_t nr_thp_split = 0;
  uint64_t nr_split = 0;
};

// Migrates the folios on `from` (KERNEL-SPEC 6.6): hugetlb first, then
// batches of up to 512 base pages. Returns the number of folios not
// migrated (0 whenever `from` ends empty) or -ENOMEM if a target could not
// be allocated (the rest is left untried). Folios not migrated stay on
// `from`. Counts pgmigrate_success/fail and thp_migration_*, and emits
// mm_migrate_pages_start / mm_migrate_pages. `nr_succeeded` (optional):
// base pages migrated; `stats` (optional): all of the above.
int migrate_pages(MemorySystem& ms, ListHead* from, const MigrationTarget& target, MigrateMode mode,
                  MigrateReason reason, unsigned* nr_succeeded = nullptr,
                  MigratePagesStats* stats = nullptr);

// ---- the pieces migrate_device.h shares ----

class AddressSpace;

// folio_expected_refs: the references a folio being migrated holds besides
// unexpected ones: the caller's (isolation) reference, plus one per page
// for the page cache and one for PG_private when it has a mapping.
int folio_expected_refs(const AddressSpace* mapping, const Folio* folio);
// dst takes src's place (page-cache slot, index, mapping,
// swap-backedness). -EAGAIN unless src holds exactly `expected` references
// (frozen while a page-cache slot changes).
int __folio_migrate_mapping(AddressSpace* mapping, Folio* dst, Folio* src, int expected);
// The same, expecting folio_expected_refs() plus `extra_count` references
// (a device fault's own reference on the faulting page, say).
int folio_migrate_mapping(AddressSpace* mapping, Folio* dst, Folio* src, int extra_count);
// folio_migrate_flags: referenced, uptodate, active/unevictable,
// workingset, dirty, young, idle follow the contents to dst.
void folio_migrate_flags(Folio* dst, Folio* src);

// Injection points: moving a folio fails with -EAGAIN as if someone held a
// transient reference (hit once per move attempt, so tests can count
// passes); the folio copy fails as a machine check would (folio_mc_copy:
// -EHWPOISON, a permanent failure); a delay after a batch's unmap, before
// the move, holds migration entries in place.
namespace inject_point_migrate {
inline constexpr std::string_view kMoveFolio = "migrate.move_folio";
inline constexpr std::string_view kFolioCopy = "migrate.folio_copy";
inline constexpr std::string_view kAfterUnmap = "migrate.after_unmap";
}  // namespace inject_point_migrate

}  // namespace pinmm
