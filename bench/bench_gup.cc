// GUP hot paths: pinning and unpinning 1 GiB of prefaulted anonymous
// memory with pin_user_pages_fast, 512 pages per call (as gup_test -n 512
// does), as 4 KiB pages and as THPs; and the slow path for comparison.
// BM_PinOwnerTable isolates the pin-owner table's share of that cost.
#include <benchmark/benchmark.h>

#include "bench_machine.h"

#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/mmap.h"

namespace pinmm {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr unsigned long kBatch = 512;

struct Machine {
  explicit Machine(bool thp) {
    MachineConfig c = MachineConfig::tiny(Bytes::MiB(1280));
    c.thp = thp ? ThpMode::kAlways : ThpMode::kNever;
    ms = bench::boot_prefaulted(c);
    vm = std::make_unique<VmContext>(*ms);
    mm = Mm::create(*vm);
    current().set_mm(mm.get());
    addr = vm_mmap(*mm, VirtAddr(0), kGiB + HPAGE_PMD_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS)
               .value();
    addr = VirtAddr((addr.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
    (void)do_madvise(*mm, addr, kGiB, MADV_POPULATE_WRITE);
    lru_add_drain_all(*ms);
  }
  ~Machine() { current().set_mm(nullptr); }
  std::unique_ptr<MemorySystem> ms;
  std::unique_ptr<VmContext> vm;
  MmHandle mm;
  VirtAddr addr;
};

// args: thp (0/1), slow path (0/1). Reports ns per 4 KiB page for pin and
// for unpin separately.
void BM_Pin1GiB(benchmark::State& state) {
  const bool thp = state.range(0) != 0;
  const bool slow = state.range(1) != 0;
  Machine m(thp);
  const uint64_t nr = kGiB >> PAGE_SHIFT;
  std::vector<Page*> pages(nr);
  double pin_ns = 0, unpin_ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < nr; i += kBatch) {
      const unsigned long start = (m.addr + i * PAGE_SIZE).value();
      long got;
      if (slow) {
        m.mm->mmap_lock.down_read();
        got = pin_user_pages(start, kBatch, FOLL_WRITE | FOLL_LONGTERM, pages.data() + i);
        m.mm->mmap_lock.up_read();
      } else {
        got = pin_user_pages_fast(start, kBatch, FOLL_WRITE | FOLL_LONGTERM, pages.data() + i);
      }
      if (got != static_cast<long>(kBatch)) state.SkipWithError("short pin");
    }
    const auto t1 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < nr; i += kBatch)
      unpin_user_pages(std::span<Page* const>(pages.data() + i, kBatch));
    const auto t2 = std::chrono::steady_clock::now();
    pin_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    unpin_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  const double pages_done = static_cast<double>(nr) * static_cast<double>(state.iterations());
  state.counters["pin_ns_per_page"] = pin_ns / pages_done;
  state.counters["unpin_ns_per_page"] = unpin_ns / pages_done;
}
BENCHMARK(BM_Pin1GiB)
    ->ArgNames({"thp", "slow"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The pin-owner table alone: recording and releasing 1 GiB of 4 KiB folios
// in calls of 512, as the pin entry points and unpin_user_pages do (no pin
// counts change). Reports ns per folio for each.
void BM_PinOwnerTable(benchmark::State& state) {
  Machine m(false);
  const uint64_t nr = kGiB >> PAGE_SHIFT;
  std::vector<Page*> pages(nr);
  for (uint64_t i = 0; i < nr; ++i)
    pages[i] = m.ms->mem_map() + i;  // any distinct folios will do
  PinOwners& table = m.ms->pin_owners();
  double record_ns = 0, release_ns = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < nr; i += kBatch)
      table.record(std::span<Page* const>(pages.data() + i, kBatch), "bench", true);
    const auto t1 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < nr; i += kBatch)
      table.release(std::span<Page* const>(pages.data() + i, kBatch));
    const auto t2 = std::chrono::steady_clock::now();
    record_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    release_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  const double done = static_cast<double>(nr) * static_cast<double>(state.iterations());
  state.counters["record_ns_per_folio"] = record_ns / done;
  state.counters["release_ns_per_folio"] = release_ns / done;
}
BENCHMARK(BM_PinOwnerTable)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace pinmm
