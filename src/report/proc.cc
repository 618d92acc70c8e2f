#include "pinmm/report/proc.h"

#include <iterator>

#include <fmt/format.h>

#include "pinmm/phys/pageblock.h"

namespace pinmm {
namespace {

constexpr uint64_t kPagetypeinfoCap = 100000;  // the kernel stops counting a list there

// walk_zones_in_node: the zones of a node, populated ones only if asked.
template <typename Fn>
void for_each_zone_in_node(const MemorySystem& ms, int nid, bool only_populated, Fn&& fn) {
  for (unsigned t = 0; t < MAX_NR_ZONES; ++t) {
    const Zone& z = ms.zone(nid, static_cast<ZoneType>(t));
    if (only_populated && !z.populated()) continue;
    fn(z);
  }
}

}  // namespace

std::string proc_buddyinfo(const MemorySystem& ms) {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  for (int nid = 0; nid < ms.nr_nodes(); ++nid) {
    for_each_zone_in_node(ms, nid, true, [&](const Zone& z) {
      fmt::format_to(it, "Node {}, zone {:>8} ", nid, z.name());
      for (uint64_t n : z.free_counts().nr_free)
        fmt::format_to(it, "{:>6} ", n);
      fmt::format_to(it, "\n");
    });
  }
  return fmt::to_string(out);
}

std::string proc_pagetypeinfo(const MemorySystem& ms) {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  for (int nid = 0; nid < ms.nr_nodes(); ++nid) {
    if (ms.node(nid).node_present_pages() == 0) continue;  // memoryless node
    fmt::format_to(it, "Page block order: {}\n", pageblock_order);
    fmt::format_to(it, "Pages per block:  {}\n\n", pageblock_nr_pages);

    fmt::format_to(it, "{:<43} ", "Free pages count per migrate type at order");
    for (unsigned o = 0; o < NR_PAGE_ORDERS; ++o)
      fmt::format_to(it, "{:>6} ", o);
    fmt::format_to(it, "\n");
    for_each_zone_in_node(ms, nid, true, [&](const Zone& z) {
      const Zone::FreeCounts counts = z.free_counts();
      for (unsigned mt = 0; mt < MIGRATE_TYPES; ++mt) {
        fmt::format_to(it, "Node {:>4}, zone {:>8}, type {:>12} ", nid, z.name(),
                       migratetype_name(static_cast<MigrateType>(mt)));
        for (unsigned o = 0; o < NR_PAGE_ORDERS; ++o) {
          const uint64_t n = counts.per_type[mt][o];
          if (n >= kPagetypeinfoCap) {
            fmt::format_to(it, ">{:>6} ", kPagetypeinfoCap);
          } else {
            fmt::format_to(it, "{:>6} ", n);
          }
        }
        fmt::format_to(it, "\n");
      }
    });

    fmt::format_to(it, "\n{:<23}", "Number of blocks type ");
    for (unsigned mt = 0; mt < MIGRATE_TYPES; ++mt) {
      fmt::format_to(it, "{:>12} ", migratetype_name(static_cast<MigrateType>(mt)));
    }
    fmt::format_to(it, "\n");
    for_each_zone_in_node(ms, nid, true, [&](const Zone& z) {
      std::array<uint64_t, MIGRATE_TYPES> count{};
      for (Pfn pfn = z.zone_start_pfn(); pfn < z.zone_end_pfn();
           pfn += PageCount(pageblock_nr_pages)) {
        const Page* page = ms.pfn_to_online_page(pfn);
        if (page == nullptr || page_zone(page) != &z) continue;
        ++count[ms.pageblock_flags().get(pfn)];
      }
      fmt::format_to(it, "Node {}, zone {:>8} ", nid, z.name());
      for (uint64_t n : count)
        fmt::format_to(it, "{:>12} ", n);
      fmt::format_to(it, "\n");
    });
  }
  return fmt::to_string(out);
}

std::string proc_zoneinfo(const MemorySystem& ms) {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  const int nr_cpus = ms.config().cpus;
  for (int nid = 0; nid < ms.nr_nodes(); ++nid) {
    const Node& node = ms.node(nid);
    bool first_populated_seen = false;
    for_each_zone_in_node(ms, nid, false, [&](const Zone& z) {
      fmt::format_to(it, "Node {}, zone {:>8}", nid, z.name());
      if (z.populated() && !first_populated_seen) {
        first_populated_seen = true;
        fmt::format_to(it, "\n  per-node stats");
        const auto stats = node.stats().snapshot();
        for (unsigned i = 0; i < NR_VM_NODE_STAT_ITEMS; ++i) {
          const auto item = static_cast<NodeStatItem>(i);
          int64_t v = stats[i];
          if (vmstat_item_print_in_thp(item)) v /= static_cast<int64_t>(HPAGE_PMD_NR);
          fmt::format_to(it, "\n      {:<12} {}", vmstat_name(item), v);
        }
      }
      fmt::format_to(it,
                     "\n  pages free     {}"
                     "\n        boost    {}"
                     "\n        min      {}"
                     "\n        low      {}"
                     "\n        high     {}"
                     "\n        promo    {}"
                     "\n        spanned  {}"
                     "\n        present  {}"
                     "\n        managed  {}"
                     "\n        cma      {}",
                     z.stats().get(NR_FREE_PAGES), z.watermark_boost(), z.wmark(WMARK_MIN),
                     z.wmark(WMARK_LOW), z.wmark(WMARK_HIGH), z.wmark(WMARK_PROMO),
                     z.spanned_pages(), z.present_pages(), z.managed_pages(), z.cma_pages());
      fmt::format_to(it, "\n        protection: ({}", z.lowmem_reserve(static_cast<ZoneType>(0)));
      for (unsigned i = 1; i < MAX_NR_ZONES; ++i) {
        fmt::format_to(it, ", {}", z.lowmem_reserve(static_cast<ZoneType>(i)));
      }
      fmt::format_to(it, ")");
      if (!z.populated()) {
        fmt::format_to(it, "\n");
        return;
      }
      const auto zs = z.stats().snapshot();
      for (unsigned i = 0; i < NR_VM_ZONE_STAT_ITEMS; ++i) {
        fmt::format_to(it, "\n      {:<12} {}", vmstat_name(static_cast<ZoneStatItem>(i)), zs[i]);
      }
      const auto ne = z.numa_events().snapshot();
      for (unsigned i = 0; i < NR_VM_NUMA_EVENT_ITEMS; ++i) {
        fmt::format_to(it, "\n      {:<12} {}", vmstat_name(static_cast<NumaStatItem>(i)), ne[i]);
      }
      fmt::format_to(it, "\n  pagesets");
      for (int cpu = 0; cpu < nr_cpus; ++cpu) {
        fmt::format_to(it,
                       "\n    cpu: {}"
                       "\n              count: {}"
                       "\n              high:  {}"
                       "\n              batch: {}"
                       "\n  vm stats threshold: {}",
                       cpu, 0, 0, 1, 0);
      }
      fmt::format_to(it,
                     "\n  node_unreclaimable:  {}"
                     "\n  start_pfn:           {}\n",
                     0, z.zone_start_pfn().value());
    });
  }
  return fmt::to_string(out);
}

std::string proc_vmstat(const MemorySystem& ms) {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  for (const auto& [name, value] : ms.vmstat().lines(HPAGE_PMD_NR))
    fmt::format_to(it, "{} {}\n", name, value);
  return fmt::to_string(out);
}

}  // namespace pinmm
