#include "cli/demo.h"

#include <random>
#include <vector>

#include <fmt/format.h>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/report/proc.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mmap.h"
#include "pinmm/vm/validate.h"

namespace pinmm::cli {
namespace {

// Pages on the anon LRU lists (anonymous and shmem) of zones of type `t`.
int64_t anon_pages_in(const MemorySystem& ms, ZoneType t) {
  int64_t n = 0;
  for (int nid = 0; nid < ms.nr_nodes(); ++nid) {
    const ZoneStats& z = ms.zone(nid, t).stats();
    n += z.get(NR_ZONE_INACTIVE_ANON) + z.get(NR_ZONE_ACTIVE_ANON);
  }
  return n;
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

  say("pinmm run: built-in demo of the physical and vm layers (the scenario runner arrives "
      "with the scenario issue)\n");
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

  // 2. User memory through address spaces: processes fault in anonymous
  //    memory (THP where the mode and alignment allow) and share a tmpfs
  //    file; one of them forks, sharing its pages copy-on-write.
  const int64_t free_cma_before = ms.vmstat()[NR_FREE_CMA_PAGES];
  ValidationReport mid;
  {
    VmContext vm(ms);
    constexpr int kProcesses = 4;
    constexpr uint64_t kChunk = uint64_t{32} << 20;
    const uint64_t user_budget =
        static_cast<uint64_t>(ms.vmstat()[NR_FREE_PAGES]) * 3 / 4 * PAGE_SIZE;
    std::vector<MmHandle> procs;
    std::vector<std::vector<VirtAddr>> chunks(kProcesses);
    for (int i = 0; i < kProcesses; ++i)
      procs.push_back(Mm::create(vm));
    auto shared = File::create(vm, FsType::kTmpfs, "shared-buffer", kChunk);
    for (int i = 0; i < 2; ++i) {
      auto m = vm_mmap(*procs[i], VirtAddr(0), kChunk, PROT_READ | PROT_WRITE, MAP_SHARED, shared);
      if (m.ok()) (void)do_madvise(*procs[i], *m, kChunk, MADV_POPULATE_WRITE);
    }
    uint64_t mapped = kChunk;
    for (int round = 0; mapped + kChunk <= user_budget; ++round) {
      const int p = round % kProcesses;
      auto m = vm_mmap(*procs[p], VirtAddr(0), kChunk, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS);
      if (!m.ok() || !do_madvise(*procs[p], *m, kChunk, MADV_POPULATE_WRITE).ok()) break;
      chunks[p].push_back(*m);
      mapped += kChunk;
    }
    auto child = dup_mm(*procs[0]);
    lru_add_drain_all(ms);
    const VmStat s2 = ms.vmstat();
    say(fmt::format(
        "step 2: {} processes faulted in {} anonymous pages ({} THPs) and share a {} tmpfs file; "
        "process 0 forked. Anon and shmem pages: {} in ZONE_MOVABLE, {} in ZONE_NORMAL, {} in "
        "CMA; {} page-table pages\n",
        kProcesses, s2[NR_ANON_MAPPED],
        s2.by_name("nr_anon_transparent_hugepages", HPAGE_PMD_NR).value_or(0),
        Bytes(kChunk).to_string(), anon_pages_in(ms, ZONE_MOVABLE), anon_pages_in(ms, ZONE_NORMAL),
        free_cma_before - s2[NR_FREE_CMA_PAGES], s2[NR_PAGETABLE]));

    // 3. Unmap every other chunk, let the child exit, free half the kernel
    //    allocations.
    for (int p = 0; p < kProcesses; ++p) {
      for (size_t c = 0; c < chunks[p].size(); c += 2)
        (void)vm_munmap(*procs[p], chunks[p][c], kChunk);
    }
    if (child.ok()) child->reset();
    for (size_t i = 0; i < kernel.size(); i += 2)
      kfree_pages(kernel[i]);
    lru_add_drain_all(ms);
    say("step 3: unmapped every other chunk, the child exited, freed every other kernel "
        "allocation\n\n/proc/buddyinfo:\n");
    say(proc_buddyinfo(ms));

    const VmStat s = ms.vmstat();
    say(fmt::format(
        "\ncounters: nr_free_pages {} nr_free_cma {} nr_anon_pages {} nr_shmem {} "
        "nr_slab_unreclaimable {} pgfault {} thp_fault_alloc {} pgalloc_movable {} pgfree {}\n",
        s[NR_FREE_PAGES], s[NR_FREE_CMA_PAGES], s[NR_ANON_MAPPED], s[NR_SHMEM],
        s[NR_SLAB_UNRECLAIMABLE], s[PGFAULT], s[THP_FAULT_ALLOC], s[PGALLOC_MOVABLE], s[PGFREE]));
    mid = validate_vm(vm);
    procs.clear();  // every process exits
  }
  rcu::barrier();
  for (size_t i = 1; i < kernel.size(); i += 2)
    kfree_pages(kernel[i]);
  const ValidationReport end = ms.validate();
  const bool all_back = ms.vmstat()[NR_FREE_PAGES] == free_at_boot;
  say(fmt::format("audit: mid-run {}; after freeing everything {}; all pages back: {}\n",
                  mid.to_string(), end.to_string(), all_back ? "yes" : "NO"));
  return mid.ok() && end.ok() && all_back ? 0 : 1;
}

}  // namespace pinmm::cli
