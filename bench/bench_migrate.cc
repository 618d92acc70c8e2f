// Migration hot path: isolating and migrating 1 GiB of mapped anonymous
// memory between two nodes, as 4 KiB pages (in address order and in random
// order) and as 2 MiB THPs, next to the copy floor: a plain memcpy of the
// same number of frames in the same order, measured in the same run.
#include <benchmark/benchmark.h>

#include "bench_machine.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "pinmm/base/rcu.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/lru.h"
#include "pinmm/vm/mmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// Two nodes with room for 1 GiB of user memory each, host memory prefaulted.
struct Machine {
  explicit Machine(ThpMode thp) {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(1152));
    c.nodes.push_back({Bytes::MiB(1152), Bytes(0)});
    c.thp = thp;
    ms = bench::boot_prefaulted(c);
    vm = std::make_unique<VmContext>(*ms);
  }
  std::unique_ptr<MemorySystem> ms;
  std::unique_ptr<VmContext> vm;
};

// The folio mapped at addr (PMD leaf or PTE), read at a quiet point.
Folio* folio_at(Mm& mm, VirtAddr addr) {
  pmd_t* pmd = pmd_offset(mm, addr);
  const pmd_t v = pmdp_get(pmd);
  if (pmd_leaf(v)) return page_folio(mm.ms().pfn_to_page(pmd_pfn(v)));
  return page_folio(mm.ms().pfn_to_page(pte_pfn(ptep_get(pte_offset_map(mm, v, addr)))));
}

struct Populated {
  Populated(Machine& m, bool thp) : mm(Mm::create(*m.vm)) {
    addr = vm_mmap(*mm, VirtAddr(0), kGiB + HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS)
               .value();
    addr = VirtAddr((addr.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
    (void)do_madvise(*mm, addr, kGiB, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    (void)do_madvise(*mm, addr, kGiB, MADV_POPULATE_WRITE);
    lru_add_drain_all(*m.ms);
    const uint64_t step = thp ? HPAGE_PMD_SIZE : PAGE_SIZE;
    for (uint64_t off = 0; off < kGiB; off += step)
      units.push_back(addr + off);
  }
  MmHandle mm;
  VirtAddr addr;
  std::vector<VirtAddr> units;  // one address per folio
};

// Isolates the folios of `order` (addresses) and migrates them to `nid`.
// Returns base pages migrated.
unsigned isolate_and_migrate(Machine& m, Populated& p, const std::vector<VirtAddr>& order,
                             int nid) {
  ListHead list;
  init_list_head(&list);
  for (VirtAddr a : order) {
    Folio* folio = folio_at(*p.mm, a);
    folio_get(folio);
    if (isolate_folio_to_list(folio, &list)) list_move_tail(&folio->page.lru, &list);
    folio_put(folio);
  }
  MigrationTargetControl mtc;
  mtc.nid = nid;
  mtc.gfp_mask = GFP_HIGHUSER_MOVABLE | __GFP_THISNODE;
  unsigned nr = 0;
  (void)migrate_pages(*m.ms, &list, migration_target(*m.ms, mtc), MIGRATE_SYNC, MR_SYSCALL, &nr);
  putback_movable_pages(&list);
  lru_add_drain_all(*m.ms);
  return nr;
}

std::vector<VirtAddr> in_order(const Populated& p, bool random) {
  std::vector<VirtAddr> order = p.units;
  if (random) std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  return order;
}

// args: thp (0/1), random order (0/1).
void BM_Migrate1GiB(benchmark::State& state) {
  const bool thp = state.range(0) != 0;
  const bool random = state.range(1) != 0;
  Machine m(thp ? ThpMode::kAlways : ThpMode::kNever);
  Populated p(m, thp);
  const std::vector<VirtAddr> order = in_order(p, random);
  int nid = 1;
  uint64_t pages = 0;
  for (auto _ : state) {
    const unsigned nr = isolate_and_migrate(m, p, order, nid);
    if (nr != kGiB >> PAGE_SHIFT) {
      state.SkipWithError("not everything migrated");
      break;
    }
    pages += nr;
    nid ^= 1;
  }
  const double folios =
      static_cast<double>(p.units.size()) * static_cast<double>(state.iterations());
  // Seconds per folio (4 KiB page or 2 MiB THP), isolation included.
  state.counters["per_folio"] =
      benchmark::Counter(folios, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(static_cast<int64_t>(pages));
}
BENCHMARK(BM_Migrate1GiB)
    ->ArgNames({"thp", "random"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Iterations(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The copy floor: memcpy of 1 GiB of frames, 4 KiB (or 2 MiB) at a time,
// from node 0's frames to node 1's, in address or random order.
void BM_CopyFloor1GiB(benchmark::State& state) {
  const uint64_t unit = state.range(0) != 0 ? HPAGE_PMD_SIZE : PAGE_SIZE;
  const bool random = state.range(1) != 0;
  Machine m(ThpMode::kNever);
  const FrameStore& frames = m.ms->frames();
  std::byte* src = frames.frame(Pfn(0));
  std::byte* dst = frames.frame(Pfn((uint64_t{1152} << 20) >> PAGE_SHIFT));
  std::vector<uint64_t> order(kGiB / unit);
  std::iota(order.begin(), order.end(), 0);
  if (random) std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  for (auto _ : state) {
    for (uint64_t i : order)
      std::memcpy(dst + i * unit, src + i * unit, unit);
    benchmark::ClobberMemory();
  }
  state.counters["per_folio"] = benchmark::Counter(
      static_cast<double>(order.size()),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_CopyFloor1GiB)
    ->ArgNames({"thp", "random"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Iterations(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace pinmm
