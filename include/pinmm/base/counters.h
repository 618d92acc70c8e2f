// Counters with /proc/vmstat names: zone stats, NUMA events, node stats,
// system-wide items and VM events, in the kernel's /proc/vmstat order.
//
// Linux counterpart: enum zone_stat_item, numa_stat_item, node_stat_item,
// vm_stat_item and vm_event_item (include/linux/mmzone.h, vm_event_item.h)
// and vmstat_text[] in mm/vmstat.c. Zone and node items follow Debian's
// 6.12 amd64 configuration, so zoneinfo's layout matches a Debian kernel;
// items pinmm never changes stay 0. The event list holds the events pinmm
// models (allocation, faults, migration, THP, hugetlb, CMA), in kernel order;
// events of mechanisms pinmm does not model (reclaim, swap, compaction, …)
// are left out rather than printed as permanent zeros.
//
// Thread safety: counters are relaxed atomics. A value read while updates are
// in flight is approximate (as in Linux); read at a quiescent point, or under
// the lock its updaters hold, it is exact.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace pinmm {

enum ZoneStatItem : uint8_t {
  NR_FREE_PAGES,
  NR_ZONE_INACTIVE_ANON,
  NR_ZONE_ACTIVE_ANON,
  NR_ZONE_INACTIVE_FILE,
  NR_ZONE_ACTIVE_FILE,
  NR_ZONE_UNEVICTABLE,
  NR_ZONE_WRITE_PENDING,
  NR_MLOCK,
  NR_BOUNCE,
  NR_ZSPAGES,
  NR_FREE_CMA_PAGES,
  NR_UNACCEPTED,
  NR_VM_ZONE_STAT_ITEMS
};

enum NumaStatItem : uint8_t {
  NUMA_HIT,
  NUMA_MISS,
  NUMA_FOREIGN,
  NUMA_INTERLEAVE_HIT,
  NUMA_LOCAL,
  NUMA_OTHER,
  NR_VM_NUMA_EVENT_ITEMS
};

enum NodeStatItem : uint8_t {
  NR_INACTIVE_ANON,
  NR_ACTIVE_ANON,
  NR_INACTIVE_FILE,
  NR_ACTIVE_FILE,
  NR_UNEVICTABLE,
  NR_SLAB_RECLAIMABLE,
  NR_SLAB_UNRECLAIMABLE,
  NR_ISOLATED_ANON,
  NR_ISOLATED_FILE,
  WORKINGSET_NODES,
  WORKINGSET_REFAULT_ANON,
  WORKINGSET_REFAULT_FILE,
  WORKINGSET_ACTIVATE_ANON,
  WORKINGSET_ACTIVATE_FILE,
  WORKINGSET_RESTORE_ANON,
  WORKINGSET_RESTORE_FILE,
  WORKINGSET_NODERECLAIM,
  NR_ANON_MAPPED,
  NR_FILE_MAPPED,
  NR_FILE_PAGES,
  NR_FILE_DIRTY,
  NR_WRITEBACK,
  NR_WRITEBACK_TEMP,
  NR_SHMEM,
  NR_SHMEM_THPS,
  NR_SHMEM_PMDMAPPED,
  NR_FILE_THPS,
  NR_FILE_PMDMAPPED,
  NR_ANON_THPS,
  NR_VMSCAN_WRITE,
  NR_VMSCAN_IMMEDIATE,
  NR_DIRTIED,
  NR_WRITTEN,
  NR_THROTTLED_WRITTEN,
  NR_KERNEL_MISC_RECLAIMABLE,
  NR_FOLL_PIN_ACQUIRED,
  NR_FOLL_PIN_RELEASED,
  NR_KERNEL_STACK_KB,
  NR_PAGETABLE,
  NR_SECONDARY_PAGETABLE,
  NR_IOMMU_PAGES,
  NR_SWAPCACHE,
  PGPROMOTE_SUCCESS,
  PGPROMOTE_CANDIDATE,
  PGDEMOTE_KSWAPD,
  PGDEMOTE_DIRECT,
  PGDEMOTE_KHUGEPAGED,
  NR_VM_NODE_STAT_ITEMS
};

// System-wide items. The dirty thresholds of the kernel's list are left out:
// pinmm has no writeback throttling to compute them from.
enum VmStatItem : uint8_t { NR_MEMMAP_PAGES, NR_MEMMAP_BOOT_PAGES, NR_VM_STAT_ITEMS };

enum VmEventItem : uint8_t {
  PGALLOC_NORMAL,
  PGALLOC_MOVABLE,
  PGALLOC_DEVICE,
  PGFREE,
  PGACTIVATE,
  PGDEACTIVATE,
  PGFAULT,
  PGMAJFAULT,
  PGREUSE,
  PGMIGRATE_SUCCESS,
  PGMIGRATE_FAIL,
  THP_MIGRATION_SUCCESS,
  THP_MIGRATION_FAIL,
  THP_MIGRATION_SPLIT,
  HTLB_BUDDY_PGALLOC,
  HTLB_BUDDY_PGALLOC_FAIL,
  CMA_ALLOC_SUCCESS,
  CMA_ALLOC_FAIL,
  THP_FAULT_ALLOC,
  THP_FAULT_FALLBACK,
  THP_SPLIT_PAGE,
  THP_SPLIT_PAGE_FAILED,
  THP_DEFERRED_SPLIT_PAGE,
  THP_SPLIT_PMD,
  THP_SPLIT_PUD,
  THP_ZERO_PAGE_ALLOC,
  THP_ZERO_PAGE_ALLOC_FAILED,
  NR_VM_EVENT_ITEMS
};

const char* vmstat_name(ZoneStatItem item);
const char* vmstat_name(NumaStatItem item);
const char* vmstat_name(NodeStatItem item);
const char* vmstat_name(VmStatItem item);
const char* vmstat_name(VmEventItem item);
// Node items that /proc/vmstat and zoneinfo print in units of PMD-sized pages.
bool vmstat_item_print_in_thp(NodeStatItem item);

// A fixed set of relaxed atomic counters indexed by an item enum.
template <typename Item, size_t N>
class StatCounters {
 public:
  void add(Item item, int64_t delta) { v_[item].fetch_add(delta, std::memory_order_relaxed); }
  void inc(Item item) { add(item, 1); }
  int64_t get(Item item) const { return v_[item].load(std::memory_order_relaxed); }
  std::array<int64_t, N> snapshot() const {
    std::array<int64_t, N> out{};
    for (size_t i = 0; i < N; ++i)
      out[i] = v_[i].load(std::memory_order_relaxed);
    return out;
  }

 private:
  std::array<std::atomic<int64_t>, N> v_{};
};

using ZoneStats = StatCounters<ZoneStatItem, NR_VM_ZONE_STAT_ITEMS>;
using NumaEvents = StatCounters<NumaStatItem, NR_VM_NUMA_EVENT_ITEMS>;
using NodeStats = StatCounters<NodeStatItem, NR_VM_NODE_STAT_ITEMS>;
using VmStats = StatCounters<VmStatItem, NR_VM_STAT_ITEMS>;
using VmEvents = StatCounters<VmEventItem, NR_VM_EVENT_ITEMS>;

// A snapshot of every counter, summed over zones and nodes: what
// /proc/vmstat shows. Tests compare snapshots with == or read items.
struct VmStat {
  std::array<int64_t, NR_VM_ZONE_STAT_ITEMS> zone{};
  std::array<int64_t, NR_VM_NUMA_EVENT_ITEMS> numa{};
  std::array<int64_t, NR_VM_NODE_STAT_ITEMS> node{};
  std::array<int64_t, NR_VM_STAT_ITEMS> vm{};
  std::array<int64_t, NR_VM_EVENT_ITEMS> events{};

  bool operator==(const VmStat&) const = default;
  int64_t operator[](ZoneStatItem i) const { return zone[i]; }
  int64_t operator[](NumaStatItem i) const { return numa[i]; }
  int64_t operator[](NodeStatItem i) const { return node[i]; }
  int64_t operator[](VmStatItem i) const { return vm[i]; }
  int64_t operator[](VmEventItem i) const { return events[i]; }

  // Every line of /proc/vmstat in order: name and value (THP-unit node items
  // already divided by `thp_nr_pages`).
  std::vector<std::pair<std::string_view, int64_t>> lines(uint64_t thp_nr_pages) const;
  // Looks an item up by its /proc/vmstat name, in the units lines() prints.
  std::optional<int64_t> by_name(std::string_view name, uint64_t thp_nr_pages) const;
};

}  // namespace pinmm
