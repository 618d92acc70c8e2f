// Hot paths of hotplug/ and cma/: offlining a 128 MiB block full of mapped
// anonymous memory (4 KiB pages and 2 MiB THPs) and onlining it again;
// offlining a free block; cma_alloc of a 128 MiB area holding user pages
// and of a free 2 MiB range; and a physical memory map snapshot of a 4 GiB
// machine. Items are base pages.
#include <benchmark/benchmark.h>

#include "bench_machine.h"

#include "pinmm/machine/machine.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_map.h"
#include "pinmm/vm/mmap.h"

namespace pinmm {
namespace {

// The whole machine (hotplug and CMA need it), its RAM backed by the host.
std::unique_ptr<Machine> boot_machine(const MachineConfig& c) {
  auto machine = std::move(Machine::boot(c)).value();
  bench::prefault(machine->ms());
  return machine;
}

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Maps and writes `bytes` of anonymous memory (THP or 4 KiB pages).
VirtAddr populate(Mm& mm, uint64_t bytes, bool thp) {
  VirtAddr a = vm_mmap(mm, VirtAddr(0), bytes + HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS)
                   .value();
  a = VirtAddr((a.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  (void)do_madvise(mm, a, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  (void)do_madvise(mm, a, bytes, MADV_POPULATE_WRITE);
  lru_add_drain_all(mm.ms());
  return a;
}

// 1 GiB kernel memory and two 128 MiB movable blocks; 120 MiB of user
// memory that each iteration moves out of the movable block holding most
// of it (into the other one) and back online.
void BM_OfflineBlockOfMovablePages(benchmark::State& state) {
  const bool thp = state.range(0) != 0;
  MachineConfig c = MachineConfig::uniform(Bytes::MiB(1280), 1, Bytes::MiB(256));
  c.cma.clear();
  c.thp = ThpMode::kAlways;
  auto machine = boot_machine(c);
  MemorySystem* ms = &machine->ms();
  VmContext& vm = machine->vm();
  MemoryHotplug& hp = machine->hotplug();
  MmHandle mm = Mm::create(vm);
  populate(*mm, 120 * kMiB, thp);
  const uint64_t first =
      ms->zone(0, ZONE_MOVABLE).zone_start_pfn().value() / ms->block_pages().value();
  uint64_t pages = 0;
  for (auto _ : state) {
    // The block with more pages in use.
    uint64_t best = first, most = 0;
    for (uint64_t b = first; b < first + 2; ++b) {
      const MemoryBlock& mb = ms->memory_blocks()[b];
      uint64_t used = 0;
      for (Pfn p = mb.start_pfn; p < mb.start_pfn + mb.nr_pages; p += PageCount(64))
        used += ms->pfn_to_page(p)->refcount() > 0 || ms->pfn_to_page(p)->is_tail();
      if (used > most) {
        most = used;
        best = b;
      }
    }
    OfflineResult res;
    if (hp.state_store(best, "offline", {}, &res) != 0) state.SkipWithError("offline failed");
    pages += res.pages_migrated;
    if (hp.state_store(best, "online_movable") != 0) state.SkipWithError("online failed");
  }
  state.SetItemsProcessed(static_cast<int64_t>(pages));
}
BENCHMARK(BM_OfflineBlockOfMovablePages)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("thp")
    ->Unit(benchmark::kMillisecond);

// Offlining and onlining a free 128 MiB block: the mechanism alone.
void BM_OfflineOnlineFreeBlock(benchmark::State& state) {
  MachineConfig c = MachineConfig::uniform(Bytes::MiB(1024), 1, Bytes::MiB(512));
  c.cma.clear();
  auto machine = boot_machine(c);
  MemorySystem* ms = &machine->ms();
  MemoryHotplug& hp = machine->hotplug();
  const uint64_t block = ms->memory_blocks().size() - 1;
  for (auto _ : state) {
    if (hp.state_store(block, "offline") != 0 || hp.state_store(block, "online_movable") != 0)
      state.SkipWithError("state change failed");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ms->block_pages().value()));
}
BENCHMARK(BM_OfflineOnlineFreeBlock)->Unit(benchmark::kMillisecond);

// cma_alloc of a 128 MiB area whose pages user memory borrowed (the
// balancing rule put 100 MiB of anonymous memory there); the user memory is
// faulted in again, untimed, before each iteration.
void BM_CmaAllocOccupiedArea(benchmark::State& state) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(256));
  c.cma.push_back({"reserved", Bytes::MiB(128), 0});
  auto machine = boot_machine(c);
  MemorySystem* ms = &machine->ms();
  VmContext& vm = machine->vm();
  CmaAreas& cma = machine->cma();
  Cma* area = cma.find("reserved");
  MmHandle mm = Mm::create(vm);
  uint64_t pages = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const int64_t migrated0 = ms->vmstat()[PGMIGRATE_SUCCESS];
    const VirtAddr a = populate(*mm, 100 * kMiB, false);
    state.ResumeTiming();
    Page* p = cma.cma_alloc(area, area->count(), 0, true);
    if (p == nullptr) state.SkipWithError("cma_alloc failed");
    state.PauseTiming();
    pages += static_cast<uint64_t>(ms->vmstat()[PGMIGRATE_SUCCESS] - migrated0);
    (void)cma.cma_release(area, p, area->count());
    (void)vm_munmap(*mm, a, 100 * kMiB);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(pages));
}
BENCHMARK(BM_CmaAllocOccupiedArea)->Unit(benchmark::kMillisecond);

// cma_alloc and cma_release of a free 2 MiB range.
void BM_CmaAllocFree2MiB(benchmark::State& state) {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(256));
  c.cma.push_back({"reserved", Bytes::MiB(128), 0});
  auto machine = boot_machine(c);
  CmaAreas& cma = machine->cma();
  Cma* area = cma.find("reserved");
  for (auto _ : state) {
    Page* p = cma.cma_alloc(area, pageblock_nr_pages, pageblock_order, true);
    benchmark::DoNotOptimize(p);
    (void)cma.cma_release(area, p, pageblock_nr_pages);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * pageblock_nr_pages));
}
BENCHMARK(BM_CmaAllocFree2MiB)->Unit(benchmark::kMicrosecond);

// A memory map snapshot of the Foundation machine (4 GiB) with 1 GiB of
// 4 KiB anonymous pages and 1 GiB of THPs in use.
void BM_MemoryMapSnapshot(benchmark::State& state) {
  MachineConfig c = MachineConfig::uniform(Bytes::GiB(4), 1, Bytes::GiB(2));
  c.cma.push_back({"reserved", Bytes::MiB(256), 0});
  auto machine = boot_machine(c);
  MemorySystem* ms = &machine->ms();
  VmContext& vm = machine->vm();
  MmHandle mm = Mm::create(vm);
  populate(*mm, 1024 * kMiB, false);
  populate(*mm, 1024 * kMiB, true);
  for (auto _ : state) {
    PhysMemoryMap map = snapshot_memory_map(*ms);
    benchmark::DoNotOptimize(map);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * ms->boot_end_pfn().value()));
}
BENCHMARK(BM_MemoryMapSnapshot)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pinmm
