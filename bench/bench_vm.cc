// vm hot paths: faulting in 1 GiB of anonymous memory (4 KiB pages and
// THP), walking the page tables once per page (sequentially and in random
// order, locklessly as GUP-fast will and under the PTE lock as the slow
// paths do), and CPU read/write throughput through the MMU model.
#include <benchmark/benchmark.h>

#include "bench_machine.h"

#include <algorithm>
#include <random>
#include <vector>

#include "pinmm/base/rcu.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/mmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

// A machine with room for 1 GiB of user memory plus page tables.
struct Machine {
  explicit Machine(ThpMode thp) {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(1280));
    c.thp = thp;
    ms = bench::boot_prefaulted(c);
    vm = std::make_unique<VmContext>(*ms);
  }
  std::unique_ptr<MemorySystem> ms;
  std::unique_ptr<VmContext> vm;
};

VirtAddr map_anon(Mm& mm, uint64_t len) {
  return vm_mmap(mm, VirtAddr(0), len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS).value();
}

// Write faults over 1 GiB (MADV_POPULATE_WRITE: one handle_mm_fault per 4 KiB
// page, or per 2 MiB with THP), then munmap outside the timing.
void BM_FaultIn1GiB(benchmark::State& state) {
  const bool thp = state.range(0) != 0;
  Machine m(thp ? ThpMode::kAlways : ThpMode::kNever);
  MmHandle mm = Mm::create(*m.vm);
  const int64_t faults0 = m.ms->vmstat()[PGFAULT];
  for (auto _ : state) {
    const VirtAddr a = map_anon(*mm, kGiB);
    if (!do_madvise(*mm, a, kGiB, MADV_POPULATE_WRITE).ok()) {
      state.SkipWithError("populate failed");
      break;
    }
    state.PauseTiming();
    (void)vm_munmap(*mm, a, kGiB);
    lru_add_drain_all(*m.ms);
    rcu::barrier();
    state.ResumeTiming();
  }
  const double pages = static_cast<double>(kGiB >> PAGE_SHIFT);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(pages));
  state.counters["faults_per_GiB"] = static_cast<double>(m.ms->vmstat()[PGFAULT] - faults0) /
                                     static_cast<double>(state.iterations());
  state.counters["ns_per_4KiB"] =
      benchmark::Counter(pages * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_FaultIn1GiB)
    ->ArgName("thp")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The addresses of every 4 KiB page of a populated 1 GiB mapping.
struct Populated {
  Populated() : m(ThpMode::kNever), mm(Mm::create(*m.vm)) {
    base = map_anon(*mm, kGiB);
    (void)do_madvise(*mm, base, kGiB, MADV_POPULATE_WRITE);
    for (uint64_t off = 0; off < kGiB; off += PAGE_SIZE)
      addrs.push_back(base + off);
  }
  void shuffle() { std::shuffle(addrs.begin(), addrs.end(), std::mt19937_64(42)); }

  Machine m;
  MmHandle mm;
  VirtAddr base;
  std::vector<VirtAddr> addrs;
};

// PGD -> PUD -> PMD -> PTE inside an RCU read section, reading each level
// once, as the GUP-fast walk does.
uint64_t lockless_walk(const Mm& mm, VirtAddr addr) {
  pmd_t* pmd = pmd_offset(mm, addr);
  if (pmd == nullptr) return 0;
  const pmd_t pmdval = pmdp_get(pmd);
  if (!pmd_is_table(pmdval)) return pmdval.val;
  return ptep_get(pte_offset_map(mm, pmdval, addr)).val;
}

// arg 0: sequential, 1: random order. One RCU read section per 512 pages
// (GUP-fast takes one per call, not per page); items are pages.
void BM_PageTableWalkLockless(benchmark::State& state) {
  Populated p;
  if (state.range(0) != 0) p.shuffle();
  constexpr size_t kBatch = 512;
  size_t i = 0;
  for (auto _ : state) {
    rcu::ReadSection rs;
    for (size_t n = 0; n < kBatch; ++n)
      benchmark::DoNotOptimize(lockless_walk(*p.mm, p.addrs[i + n]));
    i += kBatch;
    if (i == p.addrs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
}
BENCHMARK(BM_PageTableWalkLockless)->ArgName("random")->Arg(0)->Arg(1);

// What one RCU read section costs (liburcu's memb flavour).
void BM_RcuReadSection(benchmark::State& state) {
  for (auto _ : state) {
    rcu::ReadSection rs;
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_RcuReadSection);

// The same walk with the PTE table's lock taken (pte_offset_map_lock), as
// the slow GUP path and the fault handler do, under the mmap read lock.
void BM_PageTableWalkLocked(benchmark::State& state) {
  Populated p;
  if (state.range(0) != 0) p.shuffle();
  size_t i = 0;
  ReadGuard g(p.mm->mmap_lock);
  for (auto _ : state) {
    pmd_t* pmd = pmd_offset(*p.mm, p.addrs[i]);
    LockedPte lp = pte_offset_map_lock(*p.mm, pmd, p.addrs[i]);
    benchmark::DoNotOptimize(ptep_get(lp.pte));
    pte_unmap_unlock(lp);
    if (++i == p.addrs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PageTableWalkLocked)->ArgName("random")->Arg(0)->Arg(1);

// copy_from_user / copy_to_user over a populated 64 MiB region, in chunks
// of state.range(1) bytes. arg 0: 0 read, 1 write.
void BM_CpuAccess(benchmark::State& state) {
  const bool write = state.range(0) != 0;
  const uint64_t chunk = static_cast<uint64_t>(state.range(1));
  constexpr uint64_t kRegion = uint64_t{64} << 20;
  Machine m(ThpMode::kNever);
  MmHandle mm = Mm::create(*m.vm);
  const VirtAddr a = map_anon(*mm, kRegion);
  (void)do_madvise(*mm, a, kRegion, MADV_POPULATE_WRITE);
  std::vector<std::byte> buf(chunk, std::byte{0x5a});
  uint64_t off = 0;
  for (auto _ : state) {
    const Result<void> r =
        write ? copy_to_user(*mm, a + off, buf) : copy_from_user(*mm, buf, a + off);
    benchmark::DoNotOptimize(r);
    off = (off + chunk) % kRegion;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(chunk));
}
BENCHMARK(BM_CpuAccess)
    ->ArgNames({"write", "chunk"})
    ->Args({0, 64})
    ->Args({0, 4096})
    ->Args({0, 1 << 20})
    ->Args({1, 64})
    ->Args({1, 4096})
    ->Args({1, 1 << 20});

}  // namespace
}  // namespace pinmm
