// The lock order of pinmm, written once, as a tree (outermost first).
//
// Linux counterpart: the lock-ordering comment at the top of mm/rmap.c and
// mm/filemap.c. A thread may block on a lock only while every lock it holds
// has a strictly lower rank. Trylocks never deadlock and are exempt; locks of
// equal rank nest only through an explicit *_nested() acquisition. Debug
// builds (PINMM_DEBUG) check ranks on every acquisition and abort on an
// inversion, naming both locks.
//
//   a scenario run's tables (a step may create a device's   kScenario
//   view of a process while it looks the view up)
//   device_hotplug_lock (memory block state changes)     kDeviceHotplug
//     mem_hotplug_lock (online/offline vs readers)        kMemHotplug
//   driver mutexes (ioctl-level state of a module)        kDriver
//     cma_mutex (one alloc_contig_range at a time)        kCmaMutex
//   mmap_lock (Mm)                                        kMmapLock
//     folio lock (PG_locked bit, phys/folio_lock.h)       kFolioLock
//       device memory lock (a driver's chunk list, taken   kDevmemLock
//       while migrate_vma holds source folios locked)
//       i_mmap rwsem (file mapping)                       kIMmap
//         anon_vma rwsem                                  kAnonVma
//           notifier locks (what an MMU notifier callback     kNotifierLock
//           takes: a mirror's page-table lock)
//           mm page_table_lock (PUD level)            kPudLock
//             PMD lock (split, per PMD table)             kPmdLock
//               PTE-table lock (split)                    kPteLock
//                 page-cache xarray lock (i_pages)        kMappingPages
//                   per-CPU LRU add batch                 kLruBatch
//                     LRU lock (lruvec)                   kLruLock
//                   hugetlb_lock                          kHugetlbLock
//                     zone->lock                          kZoneLock
//                       pin-owner table                   kPinTable
//                         cma->lock (an area's bitmap)    kCmaBitmap
//                         leaf locks (tracer, injector, registries)   kLeaf
//                           hashed folio wait-queue bucket            kWaitQueue
#pragma once

#include <cstdint>

namespace pinmm {

enum class LockRank : uint16_t {
  kScenario = 10,
  kDeviceHotplug = 20,
  kMemHotplug = 30,
  kDriver = 50,
  kCmaMutex = 60,
  kMmapLock = 100,
  kFolioLock = 200,
  kDevmemLock = 250,
  kIMmap = 300,
  kAnonVma = 310,
  kNotifierLock = 350,
  kPudLock = 390,
  kPmdLock = 400,
  kPteLock = 410,
  kMappingPages = 500,
  kLruBatch = 550,
  kLruLock = 600,
  kHugetlbLock = 650,
  kZoneLock = 700,
  kPinTable = 800,
  kCmaBitmap = 850,
  kLeaf = 900,
  kWaitQueue = 950,
};

const char* lock_rank_name(LockRank rank);

}  // namespace pinmm
