// Moving pages between system RAM and device memory: migrate_vma and the
// PFN-based device eviction calls.
//
// Linux counterpart: mm/migrate_device.c and include/linux/migrate.h
// (struct migrate_vma, MIGRATE_PFN_*). KERNEL-SPEC 9.5-9.6 are the
// reference. The kernel has this under mm/ beside migrate.c, and so does
// pinmm (migrate/ rather than DESIGN's hmm/): the long-term GUP path, a
// layer below hmm/, calls migrate_device_coherent_folio.
//
// A driver migrates a virtual range of one VMA in three steps, holding the
// mmap lock (read or write) throughout:
//
//   migrate_vma_setup(&args);     // collect + unmap: src[] says what moves
//   for each src[i] & MIGRATE:    // the driver: allocate a (device) page,
//     dst[i] = migrate_pfn(pfn);  // lock it, copy (or clear if src has no
//                                 // PFN); leaving dst[i] 0 skips the page
//   migrate_vma_pages(&args);     // commit: src[i] keeps MIGRATE if it moved
//   (update the device's page table for entries still marked MIGRATE)
//   migrate_vma_finalize(&args);  // map dst (or src again), unlock, put
//
// Between setup and finalize every migrating page is locked and its
// mappings are migration entries, so CPU faults on it wait, and its
// contents are stable for the copy.
//
// src[] is the kernel's, with one pinmm-private bit: MIGRATE_PFN_ANON_HELD
// marks an entry whose anonymous folio's AnonVma the migration keeps alive
// (folio_get_anon_vma) until the entries are restored, so that a range torn
// down meanwhile cannot free it under remove_migration_ptes. The caller
// must not change src[] after setup (the kernel's rule too).
//
// Thread safety: the page-table changes are done under the PTE locks inside
// an MMU_NOTIFY_MIGRATE invalidation carrying pgmap_owner (so the owning
// driver may skip invalidating its own device-private mappings); folio
// locks are taken with trylock (a page that cannot be locked is skipped:
// migration is best effort). Device pages are never on an LRU list.
#pragma once

#include <cstdint>

#include "pinmm/base/types.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;
class Vma;

inline constexpr uint64_t MIGRATE_PFN_VALID = uint64_t{1} << 0;
inline constexpr uint64_t MIGRATE_PFN_MIGRATE = uint64_t{1} << 1;
inline constexpr uint64_t MIGRATE_PFN_WRITE = uint64_t{1} << 3;
// pinmm-private (see above); never set in dst[].
inline constexpr uint64_t MIGRATE_PFN_ANON_HELD = uint64_t{1} << 4;
inline constexpr unsigned MIGRATE_PFN_SHIFT = 6;

inline constexpr uint64_t migrate_pfn(Pfn pfn) {
  return (pfn.value() << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID;
}
// The page an entry names, or nullptr (no VALID bit).
Page* migrate_pfn_to_page(MemorySystem& ms, uint64_t mpfn);

enum MigrateVmaDirection : unsigned {
  MIGRATE_VMA_SELECT_SYSTEM = 1u << 0,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE = 1u << 1,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT = 1u << 2,
};

// struct migrate_vma.
struct MigrateVma {
  Vma* vma = nullptr;
  uint64_t* dst = nullptr;  // (end - start) / PAGE_SIZE entries each
  uint64_t* src = nullptr;
  uint64_t cpages = 0;  // out: pages collected (still migrating after unmap)
  uint64_t npages = 0;  // out: entries filled
  VirtAddr start;
  VirtAddr end;
  const void* pgmap_owner = nullptr;
  unsigned flags = 0;          // MigrateVmaDirection bits
  Page* fault_page = nullptr;  // the device-private page migrate_to_ram faulted on
};

// KERNEL-SPEC 9.6. -EINVAL: no VMA, a hugetlb, VM_IO/VM_PFNMAP/VM_MIXEDMAP/
// VM_DONTEXPAND VMA, an empty range, start or end outside the VMA, no src
// or dst array, a fault_page that is not device-private. Otherwise 0 (even
// if nothing was collected): src[i] holds migrate_pfn(pfn) | MIGRATE
// [| WRITE] for each page that is migrating, MIGRATE alone for a hole or
// the zero page of an anonymous VMA (a new page may be inserted), 0 for
// what is not; dst[] is zeroed; end is trimmed to start + npages pages.
int migrate_vma_setup(MigrateVma* args);
// Commits the migration of every entry with a locked destination in dst[];
// entries that cannot move lose MIGRATE in src[].
void migrate_vma_pages(MigrateVma* args);
// Maps the destinations of the pages that moved (and the sources of those
// that did not), unlocks and releases both.
void migrate_vma_finalize(MigrateVma* args);

// Eviction without a VMA (a driver freeing its memory): every allocated
// page of [start, start + npages) (device pages) is referenced, locked and
// unmapped into migration entries; src_pfns[i] = migrate_pfn | MIGRATE,
// or 0 for a free page, one that could not be locked, or one still mapped
// or pinned. Returns 0. Then the driver fills dst_pfns and calls
// migrate_device_pages and migrate_device_finalize (as for migrate_vma).
int migrate_device_range(MemorySystem& ms, uint64_t* src_pfns, Pfn start, uint64_t npages);
void migrate_device_pages(MemorySystem& ms, uint64_t* src_pfns, uint64_t* dst_pfns,
                          uint64_t npages);
void migrate_device_finalize(MemorySystem& ms, uint64_t* src_pfns, uint64_t* dst_pfns,
                             uint64_t npages);

// A device-coherent folio goes back to system RAM (GFP_USER), for the
// long-term GUP path. The caller's reference is consumed either way.
// 0, or -EBUSY (it could not be unmapped, is pinned, or no page was free).
int migrate_device_coherent_folio(Folio* folio);

}  // namespace pinmm
