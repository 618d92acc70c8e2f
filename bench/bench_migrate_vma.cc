// migrate_vma's hot path: 1 GiB of present anonymous 4 KiB pages migrated
// to device-private memory and back, the way a driver does it (setup,
// allocate and copy, pages, finalize, in batches of `batch` pages), and the
// copy floor measured in the same run: the same bytes copied frame to
// frame with no page-table work. Items are 4 KiB pages moved (two per page
// and round trip).
#include <benchmark/benchmark.h>

#include "bench_machine.h"

#include <vector>

#include "pinmm/devices/dmirror.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/mmap.h"

namespace pinmm {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kPages = kGiB / PAGE_SIZE;

MachineConfig machine() {
  MachineConfig c = MachineConfig::tiny(Bytes::MiB(1280));
  c.device_space = Bytes::MiB(1024 + 128);
  return c;
}

void set_rate(benchmark::State& state, uint64_t pages_per_iteration) {
  const auto pages = static_cast<int64_t>(state.iterations() * pages_per_iteration);
  state.SetItemsProcessed(pages);
  state.counters["ns_per_page"] = benchmark::Counter(
      static_cast<double>(pages), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// One direction of a migration of [a, a + kGiB): to the device when
// `dev` is set (SELECT_SYSTEM), else back to RAM (SELECT_DEVICE_PRIVATE).
bool migrate_range(Mm& mm, VirtAddr a, DmirrorDevice& dev, bool to_device, uint64_t batch,
                   std::vector<uint64_t>& src, std::vector<uint64_t>& dst) {
  MemorySystem& ms = mm.ms();
  ReadGuard g(mm.mmap_lock);
  Vma* vma = mm.vma_lookup(a);
  for (uint64_t off = 0; off < kGiB; off += batch * PAGE_SIZE) {
    MigrateVma args;
    args.vma = vma;
    args.src = src.data();
    args.dst = dst.data();
    args.start = a + off;
    args.end = a + off + batch * PAGE_SIZE;
    args.pgmap_owner = dev.owner();
    args.flags = to_device ? MIGRATE_VMA_SELECT_SYSTEM : MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
    if (migrate_vma_setup(&args) != 0 || args.cpages != batch) return false;
    for (uint64_t i = 0; i < args.npages; ++i) {
      Page* spage = migrate_pfn_to_page(ms, src[i]);
      Page* dpage = nullptr;
      if (to_device) {
        dpage = dev.dmirror_devmem_alloc_page();
      } else {
        Folio* f = folio_alloc(ms, GFP_HIGHUSER_MOVABLE, Order(0));
        if (f != nullptr && folio_trylock(f)) dpage = &f->page;
      }
      if (dpage == nullptr) return false;
      ms.frames().copy(page_to_pfn(dpage), page_to_pfn(spage), PageCount(1));
      dst[i] = migrate_pfn(page_to_pfn(dpage)) | (src[i] & MIGRATE_PFN_WRITE);
    }
    migrate_vma_pages(&args);
    migrate_vma_finalize(&args);
  }
  return true;
}

void BM_MigrateVma1GiBToDeviceAndBack(benchmark::State& state) {
  const auto batch = static_cast<uint64_t>(state.range(0));
  auto ms = bench::boot_prefaulted(machine());
  VmContext vm(*ms);
  MmHandle mm = Mm::create(vm);
  const VirtAddr a =
      vm_mmap(*mm, VirtAddr(0), kGiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS).value();
  (void)do_madvise(*mm, a, kGiB, MADV_NOHUGEPAGE);
  (void)do_madvise(*mm, a, kGiB, MADV_POPULATE_WRITE);
  lru_add_drain_all(*ms);
  DmirrorDevice dev(*ms, DmirrorMemory::kPrivate, 0, 0, PageCount(kPages / 8));
  std::vector<uint64_t> src(batch), dst(batch);
  for (auto _ : state) {
    if (!migrate_range(*mm, a, dev, true, batch, src, dst) ||
        !migrate_range(*mm, a, dev, false, batch, src, dst)) {
      state.SkipWithError("migration incomplete");
      break;
    }
  }
  set_rate(state, 2 * kPages);
}
BENCHMARK(BM_MigrateVma1GiBToDeviceAndBack)
    ->Arg(64)
    ->Arg(512)
    ->ArgName("batch")
    ->MinTime(2.0)
    ->Unit(benchmark::kMillisecond);

// The floor: copying the same 1 GiB there and back, frame to frame.
void BM_CopyFloor1GiB(benchmark::State& state) {
  auto ms = bench::boot_prefaulted(machine());
  const Pfn from(kPages / 8);  // inside RAM, clear of the zero page
  const Pfn to = ms->device_start_pfn();
  for (auto _ : state) {
    for (uint64_t i = 0; i < kPages; ++i)
      ms->frames().copy(to + PageCount(i), from + PageCount(i), PageCount(1));
    for (uint64_t i = 0; i < kPages; ++i)
      ms->frames().copy(from + PageCount(i), to + PageCount(i), PageCount(1));
  }
  set_rate(state, 2 * kPages);
}
BENCHMARK(BM_CopyFloor1GiB)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pinmm
