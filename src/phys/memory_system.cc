// Booting a MemorySystem: the steps of mm_init/memblock_free_all,
// init_per_zone_wmark_min, cma_init_reserved_areas and hugetlb_init, for the
// layout MachineConfig describes.
#include "pinmm/phys/memory_system.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>

#include "pinmm/base/rcu.h"
#include "pinmm/base/task.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/gfp.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pin_owners.h"

namespace pinmm {

const char* memory_block_state_name(MemoryBlockState s) {
  switch (s) {
    case MemoryBlockState::kOnline:
      return "online";
    case MemoryBlockState::kGoingOffline:
      return "going-offline";
    case MemoryBlockState::kOffline:
      return "offline";
  }
  return "?";
}

Result<std::unique_ptr<MemorySystem>> MemorySystem::create(const MachineConfig& config) {
  if (!config.check().empty()) return Errno(EINVAL);
  const uint64_t boot_pfns = config.total_memory().pages().value();
  const uint64_t nr_pfns =
      boot_pfns + config.hotplug.space.pages().value() + config.device_space.pages().value();

  // One descriptor and frame more than the PFN space: the zero page (see
  // zero_page()).
  void* map = ::mmap(nullptr, (nr_pfns + 1) * sizeof(Page), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return Errno(ENOMEM);
  auto frames = FrameStore::create(nr_pfns + 1);
  if (!frames.ok()) {
    ::munmap(map, (nr_pfns + 1) * sizeof(Page));
    return frames.error();
  }

  std::unique_ptr<MemorySystem> ms(new MemorySystem(
      config, boot_pfns, nr_pfns, static_cast<Page*>(map), std::move(frames).value()));
  ms->build_topology();
  ms->init_memmap();
  ms->init_zero_page();
  ms->reserve_boot_memory();
  ms->release_boot_memory();
  ms->build_zonelists();

  // init_per_zone_wmark_min, then hugetlb_init, then khugepaged's
  // set_recommended_min_free_kbytes: the kernel's boot order.
  ms->calculate_min_free_kbytes();
  ms->setup_per_zone_wmarks();
  {
    // Boot allocations run in a kernel thread's context on the boot CPU.
    Task boot(1, "swapper/0");
    CurrentTask scope(boot);
    for (const HugepageConfig& h : config.hugepages) {
      if (h.page_size != Bytes::MiB(2)) continue;  // gigantic pages came from boot memory
      if (h.nid) {
        ms->hugetlb().hugetlb_hstate_alloc_pages_onenode(HugetlbPools::kPmdIndex, *h.nid, h.count);
      } else {
        // Interleave over the nodes, as hugetlb_hstate_alloc_pages does:
        // each page comes from the next node that has one, and the pool
        // stops growing once no node has any.
        int next = 0;
        for (uint64_t i = 0; i < h.count; ++i) {
          bool got = false;
          for (int tried = 0; tried < ms->nr_nodes() && !got; ++tried) {
            got = ms->hugetlb().hugetlb_hstate_alloc_pages_onenode(HugetlbPools::kPmdIndex, next,
                                                                   1) == 1;
            next = (next + 1) % ms->nr_nodes();
          }
          if (!got) break;
        }
      }
    }
  }
  ms->set_recommended_min_free_kbytes();
  if (config.min_free_kbytes) {
    // vm.min_free_kbytes written by the user after boot.
    ms->min_free_kbytes_.store(*config.min_free_kbytes, std::memory_order_relaxed);
    ms->setup_per_zone_wmarks();
  }
  return ms;
}

void MemorySystem::set_recommended_min_free_kbytes() {
  if (config_.thp == ThpMode::kNever || config_.min_free_kbytes) return;
  // set_recommended_min_free_kbytes: room for two free pageblocks per kernel
  // zone plus fallback headroom, at most 5% of lowmem.
  uint64_t nr_zones = 0, buffer_pages = 0;
  for (int n = 0; n < nr_nodes(); ++n) {
    const Zone& z = zone(n, ZONE_NORMAL);
    if (!z.populated()) continue;
    ++nr_zones;
    buffer_pages += z.managed_pages() - std::min(z.managed_pages(), z.wmark(WMARK_HIGH));
  }
  uint64_t recommended = pageblock_nr_pages * nr_zones * 2 +
                         pageblock_nr_pages * nr_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES;
  recommended = std::min(recommended, buffer_pages / 20);
  recommended <<= (PAGE_SHIFT - 10);
  if (recommended > min_free_kbytes()) {
    min_free_kbytes_.store(recommended, std::memory_order_relaxed);
    setup_per_zone_wmarks();
  }
}

void MemorySystem::init_per_zone_wmark_min() {
  if (config_.min_free_kbytes) {
    setup_per_zone_wmarks();
    return;
  }
  calculate_min_free_kbytes();
  setup_per_zone_wmarks();
  set_recommended_min_free_kbytes();
}

MemorySystem::MemorySystem(const MachineConfig& config, uint64_t boot_pfns, uint64_t nr_pfns,
                           Page* mem_map, FrameStore frames)
    : config_(config),
      boot_pfns_(boot_pfns),
      device_start_pfns_(boot_pfns + config.hotplug.space.pages().value()),
      nr_pfns_(nr_pfns),
      mem_map_(mem_map),
      frames_(std::move(frames)),
      pageblock_flags_(nr_pfns + 1),
      longterm_pin_policy_(config.longterm_pin_policy),
      zero_pfn_(nr_pfns),
      lru_batches_(std::make_unique<LruAddBatch[]>(static_cast<size_t>(config.cpus))),
      tracer_(size_t{1} << 20, config.cpus),
      wait_table_(std::make_unique<FolioWaitTable>()),
      pin_owners_(std::make_unique<PinOwners>(mem_map, nr_pfns)) {}

MemorySystem::~MemorySystem() {
  // Page tables and other memory freed through RCU must be back first.
  rcu::barrier();
  hugetlb_.reset();
  ::munmap(mem_map_, (nr_pfns_ + 1) * sizeof(Page));
}

void MemorySystem::build_topology() {
  const PageCount block = block_pages();
  const uint64_t nr_sections = nr_pfns_ / section_pages().value();
  section_flags_ = std::make_unique<std::atomic<uint8_t>[]>(nr_sections);
  {
    MutexGuard g(device_lock_);
    device_sections_used_.assign((nr_pfns_ - device_start_pfns_) / section_pages().value(), false);
  }
  for (Pfn b{0}; b < device_start_pfn(); b += block) {
    MemoryBlock mb;
    mb.id = b.value() / block.value();
    mb.start_pfn = b;
    mb.nr_pages = block;
    blocks_.push_back(std::move(mb));
  }
  Pfn start{0};
  for (size_t n = 0; n < config_.nodes.size(); ++n) {
    const NodeConfig& nc = config_.nodes[n];
    auto node = std::make_unique<Node>(*this, static_cast<int>(n));
    const PageCount pages = nc.memory.pages();
    const PageCount kernel = pages - nc.movable.pages();
    node->set_span(start, pages.value());
    if (kernel.value() != 0) node->zone(ZONE_NORMAL).grow_span(start, kernel);
    if (nc.movable.value() != 0)
      node->zone(ZONE_MOVABLE).grow_span(start + kernel, nc.movable.pages());
    for (Pfn b = start; b < start + pages; b += block) {
      MemoryBlock& mb = memory_block_of(b);
      mb.nid = static_cast<int>(n);
      mb.present = true;
      mb.early = true;
      mb.state = MemoryBlockState::kOnline;
      mb.zone = b < start + kernel ? ZONE_NORMAL : ZONE_MOVABLE;
    }
    set_section_flags(start, start + pages, kSectionPresent | kSectionOnline | kSectionEarly, 0);
    nodes_.push_back(std::move(node));
    start += pages;
  }
  hugetlb_ = std::make_unique<HugetlbPools>(*this);
}

void MemorySystem::set_section_flags(Pfn start, Pfn end, uint8_t set, uint8_t clear) {
  const uint64_t per = section_pages().value();
  for (uint64_t s = start.value() / per; s < (end.value() + per - 1) / per; ++s) {
    uint8_t v = section_flags_[s].load(std::memory_order_relaxed);
    // Release: a reader that sees a section online sees its initialised
    // descriptors (pairs with the acquire in section_flags()).
    section_flags_[s].store(static_cast<uint8_t>((v & ~clear) | set), std::memory_order_release);
  }
}

void MemorySystem::init_zero_page() {
  // The zero page lives in a frame after the end of RAM, reserved like a page
  // of the kernel image, so it never takes a page from any zone. It belongs
  // to node 0's kernel zone for lookups (page_zone, page_to_pfn).
  Page* zp = pfn_to_page(zero_pfn_);
  zp->set_zone(&zone(0, ZONE_NORMAL));
  zp->store_flags(uint64_t{1} << PG_reserved);
  folio_set_count(reinterpret_cast<Folio*>(zp), 1);
  pageblock_flags_.set(zero_pfn_, MIGRATE_UNMOVABLE);
}

void MemorySystem::init_memmap() {
  // __init_single_page for every PFN: reserved until boot memory is freed,
  // refcount 1, in the zone that spans it. Every pageblock starts MOVABLE.
  for (const auto& node : nodes_) {
    for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE}) {
      Zone& z = node->zone(t);
      if (!z.populated()) continue;
      for (Pfn pfn = z.zone_start_pfn(); pfn < z.zone_end_pfn(); ++pfn) {
        Page* p = pfn_to_page(pfn);
        p->set_zone(&z);
        p->store_flags(uint64_t{1} << PG_reserved);
        folio_set_count(reinterpret_cast<Folio*>(p), 1);
        if (pfn.is_aligned(kPageblockOrder)) pageblock_flags_.set(pfn, MIGRATE_MOVABLE);
      }
    }
  }
}

std::optional<Pfn> MemorySystem::reserve_top_down(int nid, PageCount nr, Order align,
                                                  Pfn below) const {
  // memblock-style: the highest aligned range below `below` in the node's
  // kernel zone that overlaps no CMA area.
  const Zone& z = zone(nid, ZONE_NORMAL);
  Pfn floor = z.zone_start_pfn();
  for (const CmaReservation& c : cma_) {
    if (c.nid == nid) floor = std::max(floor, c.base_pfn + c.count);
  }
  if (below.value() < floor.value() + nr.value()) return std::nullopt;
  const Pfn start = (below - nr).align_down(align);
  if (start < floor) return std::nullopt;
  return start;
}

void MemorySystem::reserve_boot_memory() {
  for (int nid = 0; nid < nr_nodes(); ++nid) {
    Zone& z = zone(nid, ZONE_NORMAL);
    if (!z.populated()) continue;

    // CMA areas: bottom-up from the start of the node's kernel zone, aligned
    // to a pageblock (cma_declare_contiguous_nid placing near the node start).
    Pfn cma_next = z.zone_start_pfn();
    for (const CmaConfig& c : config_.cma) {
      if (c.nid != nid) continue;
      const Pfn base = cma_next.align_up(kPageblockOrder);
      cma_.push_back({c.name, nid, base, c.size.pages(), c.order_per_bit});
      for (Pfn pfn = base; pfn < base + c.size.pages(); pfn += PageCount(pageblock_nr_pages)) {
        pageblock_flags_.set(pfn, MIGRATE_CMA);
      }
      z.add_cma_pages(c.size.pages().value());
      cma_next = base + c.size.pages();
    }

    // The node's page descriptors, allocated at boot (64 bytes per page).
    Pfn top = z.zone_end_pfn();
    if (config_.reserve_memmap) {
      const PageCount memmap(node(nid).node_spanned_pages() * sizeof(Page) / PAGE_SIZE);
      const Pfn start = top - memmap;
      boot_ranges_.push_back({start, memmap, false});
      vm_stats_.add(NR_MEMMAP_BOOT_PAGES, static_cast<int64_t>(memmap.value()));
      top = start;
    }

    // Gigantic (1 GiB) hugetlb pages come from boot memory, top-down.
    for (const HugepageConfig& h : config_.hugepages) {
      if (h.page_size != Bytes::GiB(1)) continue;
      uint64_t want = h.nid ? (*h.nid == nid ? h.count : 0)
                            : h.count / nr_nodes() +
                                  (static_cast<uint64_t>(nid) < h.count % nr_nodes() ? 1 : 0);
      const PageCount nr = Order(HPAGE_PUD_ORDER).nr_pages();
      // Like the kernel, allocate as many as fit; the pool counts show how many.
      while (want-- > 0) {
        const std::optional<Pfn> start = reserve_top_down(nid, nr, Order(HPAGE_PUD_ORDER), top);
        if (!start) break;
        boot_ranges_.push_back({*start, nr, true});
        top = *start;
      }
    }
  }
}

void MemorySystem::release_boot_memory() {
  // memblock_free_all: free every present range that is not reserved, in
  // blocks as large and aligned as possible, in ascending PFN order.
  std::vector<BootRange> reserved = boot_ranges_;
  std::sort(reserved.begin(), reserved.end(),
            [](const BootRange& a, const BootRange& b) { return a.start < b.start; });
  auto free_range = [this](Pfn start, Pfn end) {
    while (start < end) {
      unsigned order = MAX_PAGE_ORDER;
      while (order > 0 &&
             (!start.is_aligned(Order(order)) || start + Order(order).nr_pages() > end))
        --order;
      __free_pages_core(pfn_to_page(start), Order(order));
      start += Order(order).nr_pages();
    }
  };
  for (const auto& node : nodes_) {
    for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE}) {
      const Zone& z = node->zone(t);
      if (!z.populated()) continue;
      Pfn cursor = z.zone_start_pfn();
      for (const BootRange& r : reserved) {
        if (r.start >= z.zone_end_pfn() || r.start + r.nr <= z.zone_start_pfn()) continue;
        free_range(cursor, r.start);
        cursor = r.start + r.nr;
      }
      free_range(cursor, z.zone_end_pfn());
    }
  }
  // Gigantic boot pages become free hugetlb folios (gather_bootmem_prealloc),
  // counted as managed memory.
  for (const BootRange& r : boot_ranges_) {
    if (!r.gigantic) continue;
    Page* head = pfn_to_page(r.start);
    page_zone(head)->add_managed_pages(static_cast<int64_t>(r.nr.value()));
    hugetlb_->add_bootmem_folio(HugetlbPools::kPudIndex, head);
  }
}

void MemorySystem::build_zonelists() {
  // Node order: the local node, then the others by increasing distance;
  // pinmm's nodes are equidistant, so in id order after the local one.
  for (int n = 0; n < nr_nodes(); ++n) {
    std::vector<Zone*> fallback, own;
    for (int k = 0; k < nr_nodes(); ++k) {
      Node& other = node((n + k) % nr_nodes());
      for (ZoneType t : {ZONE_MOVABLE, ZONE_NORMAL}) {
        if (k == 0) own.push_back(&other.zone(t));
        fallback.push_back(&other.zone(t));
      }
    }
    node(n).set_zonelists(std::move(fallback), std::move(own));
  }
}

void MemorySystem::calculate_min_free_kbytes() {
  // min_free_kbytes = sqrt(lowmem_kbytes * 16), clamped to [128, 262144].
  uint64_t lowmem_pages = 0;
  for (const auto& node : nodes_) {
    const Zone& z = node->zone(ZONE_NORMAL);
    lowmem_pages += z.managed_pages() - std::min(z.managed_pages(), z.wmark(WMARK_HIGH));
  }
  const uint64_t lowmem_kbytes = lowmem_pages * (PAGE_SIZE >> 10);
  const auto v = static_cast<uint64_t>(std::sqrt(static_cast<double>(lowmem_kbytes * 16)));
  min_free_kbytes_.store(std::clamp<uint64_t>(v, 128, 262144), std::memory_order_relaxed);
}

void MemorySystem::setup_per_zone_wmarks() {
  const uint64_t pages_min = min_free_kbytes() >> (PAGE_SHIFT - 10);
  uint64_t lowmem_pages = 0;
  for (const auto& node : nodes_)
    lowmem_pages += node->zone(ZONE_NORMAL).managed_pages();

  for (const auto& node : nodes_) {
    for (unsigned t = 0; t < MAX_NR_ZONES; ++t) {
      Zone& z = node->zone(static_cast<ZoneType>(t));
      const uint64_t managed = z.managed_pages();
      uint64_t tmp = lowmem_pages == 0 ? 0 : pages_min * managed / lowmem_pages;
      if (t == ZONE_MOVABLE) {
        // Movable zones get a small min: __GFP_HIGH and PF_MEMALLOC
        // allocations rarely need their pages.
        z.set_wmark(WMARK_MIN,
                    std::clamp<uint64_t>(managed / 1024, 32 /* SWAP_CLUSTER_MAX */, 128));
      } else {
        z.set_wmark(WMARK_MIN, tmp);
      }
      // The kswapd distances, at least 0.1% (watermark_scale_factor 10) of the zone.
      tmp = std::max<uint64_t>(tmp >> 2, managed * 10 / 10000);
      z.set_wmark(WMARK_LOW, z.wmark(WMARK_MIN) + tmp);
      z.set_wmark(WMARK_HIGH, z.wmark(WMARK_LOW) + tmp);
      z.set_wmark(WMARK_PROMO, z.wmark(WMARK_HIGH) + tmp);
    }
  }

  // setup_per_zone_lowmem_reserve: a lower zone keeps managed(higher)/ratio
  // pages from allocations that could have used a higher zone. Ratios:
  // Normal 32, Movable 0.
  static constexpr uint64_t kRatio[MAX_NR_ZONES] = {32, 0, 0};
  for (const auto& node : nodes_) {
    for (unsigned i = 0; i < MAX_NR_ZONES; ++i) {
      Zone& z = node->zone(static_cast<ZoneType>(i));
      const bool clear = kRatio[i] == 0 || z.managed_pages() == 0;
      uint64_t managed_above = 0;
      for (unsigned j = 0; j < MAX_NR_ZONES; ++j) {
        if (j <= i) {
          z.set_lowmem_reserve(static_cast<ZoneType>(j), 0);
          continue;
        }
        managed_above += node->zone(static_cast<ZoneType>(j)).managed_pages();
        z.set_lowmem_reserve(static_cast<ZoneType>(j), clear ? 0 : managed_above / kRatio[i]);
      }
    }
  }
}

bool MemorySystem::pfn_valid(Pfn pfn) const {
  return pfn < max_pfn() && (section_flags(pfn) & kSectionPresent) != 0;
}

Page* MemorySystem::pfn_to_online_page(Pfn pfn) const {
  if (pfn >= max_pfn() || (section_flags(pfn) & kSectionOnline) == 0) return nullptr;
  return pfn_to_page(pfn);
}

int MemorySystem::cpu_to_node(int cpu) const {
  return static_cast<int>(static_cast<int64_t>(cpu) * nr_nodes() / config_.cpus);
}

uint32_t MemorySystem::intern_owner(std::string_view owner) {
  MutexGuard g(owners_lock_);
  for (size_t i = 0; i < owners_.size(); ++i) {
    if (owners_[i] == owner) return static_cast<uint32_t>(i);
  }
  owners_.emplace_back(owner);
  return static_cast<uint32_t>(owners_.size() - 1);
}

std::string MemorySystem::owner_name(uint32_t id) const {
  MutexGuard g(owners_lock_);
  return id < owners_.size() ? owners_[id] : std::string();
}

uint64_t MemorySystem::metadata_bytes() const {
  return nr_pfns_ * sizeof(Page) + pageblock_flags_.bytes() + nr_pfns_ / section_pages().value() +
         static_cast<uint64_t>(nodes_.size()) * (sizeof(Node) + MAX_NR_ZONES * sizeof(Zone)) +
         blocks_.capacity() * sizeof(MemoryBlock) + sizeof(MemorySystem);
}

VmStat MemorySystem::vmstat() const {
  VmStat s;
  for (const auto& node : nodes_) {
    for (unsigned t = 0; t < MAX_NR_ZONES; ++t) {
      const Zone& z = node->zone(static_cast<ZoneType>(t));
      const auto zs = z.stats().snapshot();
      for (size_t i = 0; i < zs.size(); ++i)
        s.zone[i] += zs[i];
      const auto ns = z.numa_events().snapshot();
      for (size_t i = 0; i < ns.size(); ++i)
        s.numa[i] += ns[i];
    }
    const auto nd = node->stats().snapshot();
    for (size_t i = 0; i < nd.size(); ++i)
      s.node[i] += nd[i];
  }
  s.vm = vm_stats_.snapshot();
  s.events = events_.snapshot();
  return s;
}

}  // namespace pinmm
