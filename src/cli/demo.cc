#include "demo.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "pinmm/base/rcu.h"
#include "pinmm/cma/cma.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/hotplug/memory_hotplug.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/memory_map.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/phys/pin_owners.h"
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

// The first page of `chunks` (each kChunk long) that `want` accepts, found
// through GUP like a driver would, or 0.
template <typename Want>
VirtAddr find_user_page(Mm& mm, const std::vector<VirtAddr>& chunks, uint64_t chunk, Want want) {
  ReadGuard lock(mm.mmap_lock);
  for (VirtAddr c : chunks) {
    for (uint64_t off = 0; off < chunk; off += PAGE_SIZE) {
      Page* page = nullptr;
      if (get_user_pages_remote(mm, (c + off).value(), 1, FOLL_NONE, &page, nullptr) != 1) continue;
      const bool ok = want(page);
      put_page(page);
      if (ok) return c + off;
    }
  }
  return VirtAddr(0);
}

long pin_remote(Mm& mm, VirtAddr a, uint64_t n, Foll flags, Page** pages) {
  ReadGuard lock(mm.mmap_lock);
  return pin_user_pages_remote(mm, a.value(), n, flags, pages, nullptr);
}

// Step 4: pins against memory hotplug and CMA, with the who-pins report.
// Returns false if something the demo relies on went wrong.
bool pins_against_hotplug_and_cma(MemorySystem& ms, std::vector<MmHandle>& procs,
                                  std::vector<std::vector<VirtAddr>>& chunks, uint64_t chunk,
                                  const std::function<void(const std::string&)>& say) {
  MemoryHotplug hp(ms);
  CmaAreas cma(ms);
  const int64_t migrated0 = ms.vmstat()[PGMIGRATE_SUCCESS];
  // An RDMA NIC registers 64 MiB of process 1 (ib_umem_get: FOLL_WRITE |
  // FOLL_LONGTERM): what lies in ZONE_MOVABLE or CMA is migrated first.
  std::vector<Page*> mr;
  for (VirtAddr c : chunks[1]) {
    if (mr.size() * PAGE_SIZE >= (uint64_t{64} << 20)) break;
    std::vector<Page*> part(chunk / PAGE_SIZE);
    PinOwnerScope nic(PinOwnerKind::kDevice, "rdma0", "mr1");
    const long n = pin_remote(*procs[1], c, part.size(), FOLL_WRITE | FOLL_LONGTERM, part.data());
    if (n <= 0) break;
    mr.insert(mr.end(), part.begin(), part.begin() + n);
  }
  const int64_t migrated_by_pins = ms.vmstat()[PGMIGRATE_SUCCESS] - migrated0;
  // A direct-I/O style short-term pin of one page of process 2 in ZONE_MOVABLE,
  // and a camera's of one page of process 3 in CMA.
  auto in_cma = [&ms](const Page* p) {
    const Pfn pfn = ms.page_to_pfn(p);
    for (const CmaReservation& r : ms.cma_reservations()) {
      if (pfn >= r.base_pfn && pfn < r.base_pfn + r.count) return true;
    }
    return false;
  };
  Page* dio = nullptr;
  Page* cam = nullptr;
  const VirtAddr dio_at = find_user_page(*procs[2], chunks[2], chunk, [](const Page* p) {
    return page_zone(p)->type() == ZONE_MOVABLE;
  });
  if (dio_at.value() != 0) {
    PinOwnerScope o("O_DIRECT read");
    (void)pin_remote(*procs[2], dio_at, 1, FOLL_WRITE, &dio);
  }
  const VirtAddr cam_at = find_user_page(*procs[3], chunks[3], chunk, in_cma);
  if (cam_at.value() != 0) {
    PinOwnerScope o(PinOwnerKind::kDevice, "camera0", "capture");
    (void)pin_remote(*procs[3], cam_at, 1, FOLL_WRITE, &cam);
  }
  say(fmt::format(
      "step 4: device rdma0 long-term pinned {} pages of process 1 ({} migrated out of "
      "ZONE_MOVABLE and CMA first); process 2 has a short-term O_DIRECT pin in "
      "ZONE_MOVABLE{}\n",
      mr.size(), migrated_by_pins, cam != nullptr ? ", camera0 a short-term pin in CMA" : ""));

  // Offline the top three movable blocks and the one the O_DIRECT pin is
  // in, each under a 500 ms deadline (timeout(1) around the sysfs write).
  std::vector<uint64_t> targets;
  for (const MemoryBlock& b : ms.memory_blocks()) {
    if (b.present && b.state == MemoryBlockState::kOnline && b.zone == ZONE_MOVABLE)
      targets.push_back(b.id);
  }
  if (targets.size() > 3) targets.erase(targets.begin(), targets.end() - 3);
  const uint64_t dio_block = dio != nullptr ? ms.memory_block_of(ms.page_to_pfn(dio)).id : ~0ull;
  if (dio != nullptr && std::find(targets.begin(), targets.end(), dio_block) == targets.end())
    targets.insert(targets.begin(), dio_block);
  std::vector<uint64_t> offlined;
  for (uint64_t id : targets) {
    OfflineOptions opt;
    opt.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    OfflineResult res;
    const int rc = hp.state_store(id, "offline", opt, &res);
    if (rc == 0) {
      offlined.push_back(id);
      say(fmt::format("  memory{}: offline ({} pages migrated)\n", id, res.pages_migrated));
      continue;
    }
    say(fmt::format("  memory{}: offline failed: {} ({}) after {} migration attempts; who pins:\n",
                    id, Errno::from_neg(rc).name(), res.reason, res.migrate_attempts));
    for (const PageBlocker& b : res.blocked.blockers)
      say(fmt::format("    {}\n", format_blocker(b)));
  }
  const PhysMemoryMap map = snapshot_memory_map(ms);
  say(fmt::format(
      "  memory map: {} long-term pinned, {} pinned, {} unmovable, {} movable, {} free, "
      "{} offline pageblocks\n",
      map.count(PageblockState::kLongtermPinned), map.count(PageblockState::kPinned),
      map.count(PageblockState::kUnmovable), map.count(PageblockState::kMovable),
      map.count(PageblockState::kFree), map.count(PageblockState::kOffline)));

  // CMA: the whole area, for a device that needs it contiguous.
  bool ok = true;
  for (size_t i = 0; i < cma.size(); ++i) {
    Cma& area = cma.area(i);
    CmaAllocResult res;
    Page* got = cma.cma_alloc(&area, area.count(), 0, true, &res);
    if (got == nullptr) {
      say(fmt::format("  cma_alloc('{}', {} pages): failed {} after {} slots; who pins:\n",
                      area.name(), area.count(), Errno::from_neg(res.err).name(), res.slots_tried));
      for (const PageBlocker& b : res.blocked.blockers)
        say(fmt::format("    {}\n", format_blocker(b)));
    }
    if (cam != nullptr) {
      unpin_user_page(cam);
      cam = nullptr;
      if (got == nullptr) got = cma.cma_alloc(&area, area.count(), 0, true, &res);
    }
    if (got == nullptr) {
      ok = false;
      continue;
    }
    say(fmt::format("  cma_alloc('{}', {} pages): ok{}\n", area.name(), area.count(),
                    res.slots_tried > 0 ? "" : ""));
    ok = cma.cma_release(&area, got, area.count()) && ok;
  }
  if (cam != nullptr) unpin_user_page(cam);

  // The O_DIRECT read completes: its block offlines now.
  if (dio != nullptr) {
    unpin_user_page(dio);
    if (std::find(offlined.begin(), offlined.end(), dio_block) == offlined.end()) {
      // Bounded: with long-term pins in place (--longterm-pin-policy
      // in-place) the NIC's pins may lie in this block too, and the
      // kernel's unbounded retry would spin until a signal.
      OfflineOptions bounded;
      bounded.retry = OfflineRetryPolicy::kBounded;
      bounded.max_attempts = 100;
      const int rc = hp.state_store(dio_block, "offline", bounded);
      say(fmt::format("  after the O_DIRECT pin is released: memory{} offline {}\n", dio_block,
                      rc == 0 ? "ok" : Errno::from_neg(rc).name()));
      if (rc == 0) offlined.push_back(dio_block);
      ok = ok && rc == 0;
    }
  }
  // Everything back online, the NIC deregisters.
  for (uint64_t id : offlined)
    ok = hp.state_store(id, "online_movable") == 0 && ok;
  unpin_user_pages_dirty_lock(mr, true);
  const ValidationReport r = hp.validate();
  ok = ok && r.ok() && cma.validate().ok();
  return ok;
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
  const std::function<void(const std::string&)> say = [quiet](const std::string& s) {
    if (!quiet) fmt::print("{}", s);
  };

  say("pinmm demo: the physical, vm, gup, hotplug and CMA layers at work\n");
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
  bool demo_ok = true;
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
      std::vector<VirtAddr> kept;
      for (size_t c = 0; c < chunks[p].size(); ++c) {
        if (c % 2 == 0) {
          (void)vm_munmap(*procs[p], chunks[p][c], kChunk);
        } else {
          kept.push_back(chunks[p][c]);
        }
      }
      chunks[p] = std::move(kept);
    }
    if (child.ok()) child->reset();
    for (size_t i = 0; i < kernel.size(); i += 2)
      kfree_pages(kernel[i]);
    lru_add_drain_all(ms);
    say("step 3: unmapped every other chunk, the child exited, freed every other kernel "
        "allocation\n\n/proc/buddyinfo:\n");
    say(proc_buddyinfo(ms));

    const bool pins_ok = pins_against_hotplug_and_cma(ms, procs, chunks, kChunk, say);
    if (!pins_ok) say("step 4: something went wrong (see above)\n");
    demo_ok = pins_ok;

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
  return demo_ok && mid.ok() && end.ok() && all_back ? 0 : 1;
}

}  // namespace pinmm::cli
