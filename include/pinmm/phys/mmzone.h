// Zone types, migratetypes, orders and watermark indexes.
//
// Linux counterpart: include/linux/mmzone.h and pageblock-flags.h for x86-64
// with 4 KiB pages: MAX_PAGE_ORDER 10, pageblock_order 9 (2 MiB). pinmm
// models the zones that matter to pinning and offlining: ZONE_NORMAL (the
// kernel zone), ZONE_MOVABLE and ZONE_DEVICE. The DMA/DMA32 zones of a real
// x86-64 machine are left out; their memory is part of ZONE_NORMAL here.
#pragma once

#include <bitset>

#include <cstdint>

#include "pinmm/base/types.h"

namespace pinmm {

inline constexpr unsigned MAX_PAGE_ORDER = 10;
inline constexpr unsigned NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
inline constexpr unsigned pageblock_order = 9;
inline constexpr uint64_t pageblock_nr_pages = uint64_t{1} << pageblock_order;
inline constexpr uint64_t MAX_ORDER_NR_PAGES = uint64_t{1} << MAX_PAGE_ORDER;
// PMD-sized THP and hugetlb pages (2 MiB) and PUD-sized ones (1 GiB).
inline constexpr unsigned HPAGE_PMD_ORDER = 9;
inline constexpr uint64_t HPAGE_PMD_NR = uint64_t{1} << HPAGE_PMD_ORDER;
inline constexpr unsigned HPAGE_PUD_ORDER = 18;

inline constexpr int NUMA_NO_NODE = -1;
inline constexpr int MAX_NUMNODES = 64;
// nodemask_t.
using NodeMask = std::bitset<MAX_NUMNODES>;

enum ZoneType : uint8_t { ZONE_NORMAL, ZONE_MOVABLE, ZONE_DEVICE, MAX_NR_ZONES };

const char* zone_type_name(ZoneType z);  // "Normal", "Movable", "Device"

enum MigrateType : uint8_t {
  MIGRATE_UNMOVABLE,
  MIGRATE_MOVABLE,
  MIGRATE_RECLAIMABLE,
  MIGRATE_PCPTYPES,  // the number of types on the per-cpu lists
  // Kept for the layout of /proc/pagetypeinfo; pinmm makes no high-order
  // atomic allocations, so no pageblock ever becomes HighAtomic.
  MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES,
  MIGRATE_CMA,
  MIGRATE_ISOLATE,
  MIGRATE_TYPES
};

const char* migratetype_name(MigrateType mt);  // "Unmovable", "Movable", … "Isolate"

inline bool is_migrate_cma(MigrateType mt) { return mt == MIGRATE_CMA; }
inline bool is_migrate_isolate(MigrateType mt) { return mt == MIGRATE_ISOLATE; }
inline bool is_migrate_movable(MigrateType mt) {
  return mt == MIGRATE_MOVABLE || mt == MIGRATE_CMA;
}
// Free pages of these types may merge with buddies of another of these types.
inline bool migratetype_is_mergeable(MigrateType mt) { return mt < MIGRATE_PCPTYPES; }

enum WmarkIndex : uint8_t { WMARK_MIN, WMARK_LOW, WMARK_HIGH, WMARK_PROMO, NR_WMARK };

inline constexpr Order kPageblockOrder{pageblock_order};
inline constexpr Order kMaxPageOrder{MAX_PAGE_ORDER};

}  // namespace pinmm
