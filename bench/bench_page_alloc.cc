// Buddy allocator hot paths: an alloc/free pair of order 0 and order 9, on a
// pristine zone and on a fragmented one; and the host bytes of metadata per
// simulated 4 KiB page (target: <= 64).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "pinmm/phys/page_alloc.h"

namespace pinmm {
namespace {

std::unique_ptr<MemorySystem> machine(Bytes memory) {
  MachineConfig c = MachineConfig::tiny(memory);
  return std::move(MemorySystem::create(c)).value();
}

void BM_AllocFreePair(benchmark::State& state) {
  auto ms = machine(Bytes::MiB(256));
  const Order order(static_cast<unsigned>(state.range(0)));
  for (auto _ : state) {
    Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, order);
    benchmark::DoNotOptimize(p);
    __free_pages(p, order);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocFreePair)->Arg(0)->Arg(9);

// Half of the zone held in scattered order-0 pages: frees merge only partway
// and allocations split from mid-sized blocks.
void BM_AllocFreePairFragmented(benchmark::State& state) {
  auto ms = machine(Bytes::MiB(256));
  std::vector<Page*> all;
  while (Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, Order(0)))
    all.push_back(p);
  std::mt19937 rng(1);
  std::shuffle(all.begin(), all.end(), rng);
  for (size_t i = 0; i < all.size() / 2; ++i)
    free_page(all[i]);
  const Order order(static_cast<unsigned>(state.range(0)));
  for (auto _ : state) {
    Page* p = alloc_pages(*ms, GFP_HIGHUSER_MOVABLE, order);
    if (p == nullptr) {
      state.SkipWithError("no block of that order left");
      break;
    }
    __free_pages(p, order);
  }
  for (size_t i = all.size() / 2; i < all.size(); ++i)
    free_page(all[i]);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AllocFreePairFragmented)->Arg(0)->Arg(3);

// Not a timing: reports the metadata cost of a 4 GiB machine as counters.
void BM_MetadataBytesPerPage(benchmark::State& state) {
  MachineConfig c = MachineConfig::uniform(Bytes::GiB(4), 1, Bytes::GiB(2));
  c.cma.push_back({"reserved", Bytes::MiB(256), 0});
  uint64_t bytes = 0, pages = 0;
  for (auto _ : state) {
    auto ms = std::move(MemorySystem::create(c)).value();
    bytes = ms->metadata_bytes();
    pages = ms->max_pfn().value();
  }
  state.counters["bytes_per_page"] = static_cast<double>(bytes) / static_cast<double>(pages);
  state.counters["page_descriptor_bytes"] = sizeof(Page);
  state.counters["pages"] = static_cast<double>(pages);
}
BENCHMARK(BM_MetadataBytesPerPage)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pinmm
