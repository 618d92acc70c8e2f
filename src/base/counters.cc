#include "pinmm/base/counters.h"

#include <string_view>

namespace pinmm {
namespace {

constexpr const char* kZoneNames[NR_VM_ZONE_STAT_ITEMS] = {
    "nr_free_pages",
    "nr_zone_inactive_anon",
    "nr_zone_active_anon",
    "nr_zone_inactive_file",
    "nr_zone_active_file",
    "nr_zone_unevictable",
    "nr_zone_write_pending",
    "nr_mlock",
    "nr_bounce",
    "nr_zspages",
    "nr_free_cma",
    "nr_unaccepted",
};

constexpr const char* kNumaNames[NR_VM_NUMA_EVENT_ITEMS] = {
    "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
};

constexpr const char* kNodeNames[NR_VM_NODE_STAT_ITEMS] = {
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_isolated_anon",
    "nr_isolated_file",
    "workingset_nodes",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "nr_anon_pages",
    "nr_mapped",
    "nr_file_pages",
    "nr_dirty",
    "nr_writeback",
    "nr_writeback_temp",
    "nr_shmem",
    "nr_shmem_hugepages",
    "nr_shmem_pmdmapped",
    "nr_file_hugepages",
    "nr_file_pmdmapped",
    "nr_anon_transparent_hugepages",
    "nr_vmscan_write",
    "nr_vmscan_immediate_reclaim",
    "nr_dirtied",
    "nr_written",
    "nr_throttled_written",
    "nr_kernel_misc_reclaimable",
    "nr_foll_pin_acquired",
    "nr_foll_pin_released",
    "nr_kernel_stack",
    "nr_page_table_pages",
    "nr_sec_page_table_pages",
    "nr_iommu_pages",
    "nr_swapcached",
    "pgpromote_success",
    "pgpromote_candidate",
    "pgdemote_kswapd",
    "pgdemote_direct",
    "pgdemote_khugepaged",
};

constexpr const char* kVmNames[NR_VM_STAT_ITEMS] = {"nr_memmap_pages", "nr_memmap_boot_pages"};

constexpr const char* kEventNames[NR_VM_EVENT_ITEMS] = {
    "pgalloc_normal",
    "pgalloc_movable",
    "pgalloc_device",
    "pgfree",
    "pgactivate",
    "pgdeactivate",
    "pgfault",
    "pgmajfault",
    "pgreuse",
    "pgmigrate_success",
    "pgmigrate_fail",
    "thp_migration_success",
    "thp_migration_fail",
    "thp_migration_split",
    "htlb_buddy_alloc_success",
    "htlb_buddy_alloc_fail",
    "cma_alloc_success",
    "cma_alloc_fail",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "thp_split_page",
    "thp_split_page_failed",
    "thp_deferred_split_page",
    "thp_split_pmd",
    "thp_split_pud",
    "thp_zero_page_alloc",
    "thp_zero_page_alloc_failed",
};

}  // namespace

const char* vmstat_name(ZoneStatItem item) { return kZoneNames[item]; }
const char* vmstat_name(NumaStatItem item) { return kNumaNames[item]; }
const char* vmstat_name(NodeStatItem item) { return kNodeNames[item]; }
const char* vmstat_name(VmStatItem item) { return kVmNames[item]; }
const char* vmstat_name(VmEventItem item) { return kEventNames[item]; }

bool vmstat_item_print_in_thp(NodeStatItem item) {
  switch (item) {
    case NR_ANON_THPS:
    case NR_SHMEM_THPS:
    case NR_SHMEM_PMDMAPPED:
    case NR_FILE_THPS:
    case NR_FILE_PMDMAPPED:
      return true;
    default:
      return false;
  }
}

std::vector<std::pair<std::string_view, int64_t>> VmStat::lines(uint64_t thp_nr_pages) const {
  std::vector<std::pair<std::string_view, int64_t>> out;
  out.reserve(zone.size() + numa.size() + node.size() + vm.size() + events.size());
  for (unsigned i = 0; i < NR_VM_ZONE_STAT_ITEMS; ++i)
    out.emplace_back(kZoneNames[i], zone[i]);
  for (unsigned i = 0; i < NR_VM_NUMA_EVENT_ITEMS; ++i)
    out.emplace_back(kNumaNames[i], numa[i]);
  for (unsigned i = 0; i < NR_VM_NODE_STAT_ITEMS; ++i) {
    int64_t v = node[i];
    if (vmstat_item_print_in_thp(static_cast<NodeStatItem>(i)))
      v /= static_cast<int64_t>(thp_nr_pages);
    out.emplace_back(kNodeNames[i], v);
  }
  for (unsigned i = 0; i < NR_VM_STAT_ITEMS; ++i)
    out.emplace_back(kVmNames[i], vm[i]);
  for (unsigned i = 0; i < NR_VM_EVENT_ITEMS; ++i)
    out.emplace_back(kEventNames[i], events[i]);
  return out;
}

std::optional<int64_t> VmStat::by_name(std::string_view name, uint64_t thp_nr_pages) const {
  for (const auto& [n, v] : lines(thp_nr_pages)) {
    if (n == name) return v;
  }
  return std::nullopt;
}

}  // namespace pinmm
