// hmm_range_fault's hot path: a snapshot (no fault requested) of 1 GiB of
// present 4 KiB pages, and of 1 GiB of PMD-mapped THPs, per call covering
// the whole range and per 2 MiB chunk (what a driver mirroring on demand
// asks for). Items are 4 KiB pages.
#include <benchmark/benchmark.h>

#include "bench_machine.h"

#include <vector>

#include "pinmm/hmm/hmm.h"
#include "pinmm/phys/lru.h"
#include "pinmm/vm/mmap.h"

namespace pinmm {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

class NullMirror : public MmuIntervalNotifierOps {
 public:
  bool invalidate(MmuIntervalNotifier* sub, const MmuNotifierRange&, uint64_t cur_seq) override {
    mmu_interval_set_seq(sub, cur_seq);
    return true;
  }
};

void BM_HmmRangeFaultSnapshot(benchmark::State& state) {
  const bool thp = state.range(0) != 0;
  const uint64_t chunk = static_cast<uint64_t>(state.range(1)) << 20;
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(1152));
  c.thp = ThpMode::kAlways;
  auto ms = bench::boot_prefaulted(c);
  VmContext vm(*ms);
  MmHandle mm = Mm::create(vm);
  VirtAddr a = vm_mmap(*mm, VirtAddr(0), kGiB + HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS)
                   .value();
  a = VirtAddr((a.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
  (void)do_madvise(*mm, a, kGiB, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  (void)do_madvise(*mm, a, kGiB, MADV_POPULATE_WRITE);
  lru_add_drain_all(*ms);
  NullMirror ops;
  MmuIntervalNotifier sub;
  (void)mmu_interval_notifier_insert(&sub, *mm, a.value(), kGiB, &ops);
  std::vector<uint64_t> pfns(chunk / PAGE_SIZE);
  for (auto _ : state) {
    for (uint64_t off = 0; off < kGiB; off += chunk) {
      HmmRange r;
      r.notifier = &sub;
      r.notifier_seq = mmu_interval_read_begin(&sub);
      r.start = a + off;
      r.end = a + off + chunk;
      r.hmm_pfns = pfns.data();
      ReadGuard g(mm->mmap_lock);
      if (hmm_range_fault(&r) != 0) state.SkipWithError("hmm_range_fault failed");
      benchmark::DoNotOptimize(pfns.data());
    }
  }
  const int64_t pages = static_cast<int64_t>(state.iterations() * (kGiB / PAGE_SIZE));
  state.SetItemsProcessed(pages);
  state.counters["ns_per_page"] = benchmark::Counter(
      static_cast<double>(pages), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  mmu_interval_notifier_remove(&sub);
}
BENCHMARK(BM_HmmRangeFaultSnapshot)
    ->Args({0, 1024})
    ->Args({0, 2})
    ->Args({1, 1024})
    ->Args({1, 2})
    ->ArgNames({"thp", "chunk_mib"})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pinmm
