#include "cli/demo.h"

#include <random>
#include <vector>

#include <fmt/format.h>

#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/report/proc.h"

namespace pinmm::cli {
namespace {

struct Placement {
  uint64_t movable_zone = 0;
  uint64_t normal_zone = 0;
  uint64_t normal_cma = 0;
};

void place(const Page* p, uint64_t nr, Placement& where) {
  if (page_zone(p)->type() == ZONE_MOVABLE) {
    where.movable_zone += nr;
  } else {
    where.normal_zone += nr;
    if (get_pageblock_migratetype(p) == MIGRATE_CMA) where.normal_cma += nr;
  }
}

uint64_t count_blocks(const MemorySystem& ms, MigrateType mt) {
  uint64_t n = 0;
  for (Pfn pfn{0}; pfn < ms.max_pfn(); pfn += PageCount(pageblock_nr_pages))
    n += ms.pageblock_flags().get(pfn) == mt;
  return n;
}

}  // namespace

int run_foundation_demo(const MachineConfig& config, uint64_t seed, bool quiet) {
  auto booted = MemorySystem::create(config);
  if (!booted.ok()) {
    fmt::print(stderr, "pinmm: cannot boot the machine: {}\n", booted.error().name());
    return 1;
  }
  MemorySystem& ms = **booted;
  std::mt19937_64 rng(seed);
  const int64_t free_at_boot = ms.vmstat()[NR_FREE_PAGES];
  auto say = [quiet](const std::string& s) {
    if (!quiet) fmt::print("{}", s);
  };

  say("pinmm run: built-in foundation demo (the scenario runner arrives with the scenario "
      "issue)\n");
  Bytes movable(0);
  for (const NodeConfig& n : config.nodes)
    movable = movable + n.movable;
  say(fmt::format("machine: {} node(s), {} memory, {} movable, THP {}, min_free_kbytes {}\n",
                  ms.nr_nodes(), config.total_memory().to_string(), movable.to_string(),
                  thp_mode_name(config.thp), ms.min_free_kbytes()));
  for (const CmaReservation& c : ms.cma_reservations()) {
    say(fmt::format("cma: '{}' node {} pfn {:#x}-{:#x} ({})\n", c.name, c.nid, c.base_pfn.value(),
                    (c.base_pfn + c.count).value() - 1, Bytes::of_pages(c.count).to_string()));
  }

  // 1. Kernel memory: unmovable allocations of mixed orders from a few owners.
  static const char* kOwners[] = {"net-rx-ring", "nvme-sq", "dentry-cache", "inode-cache",
                                  "bpf-map"};
  std::vector<Page*> kernel;
  uint64_t kernel_pages = 0;
  const uint64_t kernel_budget = static_cast<uint64_t>(ms.vmstat()[NR_FREE_PAGES]) / 32;
  while (kernel_pages < kernel_budget) {
    const unsigned order = static_cast<unsigned>(rng() % 4);
    Page* p = kmalloc_pages(ms, Order(order), kOwners[rng() % 5], GFP_KERNEL,
                            static_cast<int>(rng() % ms.nr_nodes()));
    if (p == nullptr) break;
    kernel.push_back(p);
    kernel_pages += uint64_t{1} << order;
  }
  say(fmt::format(
      "step 1: {} unmovable kernel pages in {} allocations; unmovable pageblocks now {}\n",
      kernel_pages, kernel.size(), count_blocks(ms, MIGRATE_UNMOVABLE)));

  // 2. User memory: movable allocations, small pages and THP-sized folios.
  std::vector<std::pair<Page*, unsigned>> user;
  Placement where;
  const uint64_t user_budget = static_cast<uint64_t>(ms.vmstat()[NR_FREE_PAGES]) * 3 / 4;
  uint64_t user_pages = 0;
  while (user_pages < user_budget) {
    const unsigned order = (rng() % 8 == 0) ? HPAGE_PMD_ORDER : 0;
    Page* p = alloc_pages(ms, GFP_HIGHUSER_MOVABLE, Order(order));
    if (p == nullptr) break;
    user.emplace_back(p, order);
    user_pages += uint64_t{1} << order;
    place(p, uint64_t{1} << order, where);
  }
  say(fmt::format(
      "step 2: {} movable user pages: {} in ZONE_MOVABLE, {} in ZONE_NORMAL of which {} in CMA\n",
      user_pages, where.movable_zone, where.normal_zone, where.normal_cma));

  // 3. Free every other user allocation and half of the kernel ones.
  for (size_t i = 0; i < user.size(); i += 2)
    __free_pages(user[i].first, Order(user[i].second));
  for (size_t i = 0; i < kernel.size(); i += 2)
    kfree_pages(kernel[i]);
  say("step 3: freed every other allocation\n\n/proc/buddyinfo:\n");
  say(proc_buddyinfo(ms));

  const VmStat s = ms.vmstat();
  say(fmt::format(
      "\ncounters: nr_free_pages {} nr_free_cma {} nr_slab_unreclaimable {} pgalloc_normal {} "
      "pgalloc_movable {} pgfree {}\n",
      s[NR_FREE_PAGES], s[NR_FREE_CMA_PAGES], s[NR_SLAB_UNRECLAIMABLE], s[PGALLOC_NORMAL],
      s[PGALLOC_MOVABLE], s[PGFREE]));

  const ValidationReport mid = ms.validate();
  for (size_t i = 1; i < user.size(); i += 2)
    __free_pages(user[i].first, Order(user[i].second));
  for (size_t i = 1; i < kernel.size(); i += 2)
    kfree_pages(kernel[i]);
  const ValidationReport end = ms.validate();
  const bool all_back = ms.vmstat()[NR_FREE_PAGES] == free_at_boot;
  say(fmt::format("audit: mid-run {}; after freeing everything {}; all pages back: {}\n",
                  mid.to_string(), end.to_string(), all_back ? "yes" : "NO"));
  return mid.ok() && end.ok() && all_back ? 0 : 1;
}

}  // namespace pinmm::cli
