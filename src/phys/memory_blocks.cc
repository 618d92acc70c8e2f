// The mechanism under memory hotplug: sections and memory blocks coming and
// going, page descriptors initialised for a zone, pages handed to and taken
// from the buddy allocator, zone and node spans.
//
// Linux counterpart: mm/sparse.c (sparse_add_section, online/offline
// sections), the memmap and span parts of mm/memory_hotplug.c
// (move_pfn_range_to_zone, online_pages_range, remove_pfn_range_from_zone,
// shrink_zone_span, update_pgdat_span, adjust_present_page_count) and
// __offline_isolated_pages (mm/page_alloc.c). The policy (which zone, when
// to give up) is the hotplug layer's.
#include <algorithm>
#include <bit>
#include <cstring>

#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"

namespace pinmm {

namespace {

// __init_single_page for memory joining a zone: a PageOffline page with
// refcount 1, as 6.12 leaves hot-plugged pages until they are onlined.
void init_hotplug_page(Page* page, Zone* zone) {
  std::memset(static_cast<void*>(page), 0, sizeof(Page));
  page->set_zone(zone);
  page->set_type(PageType::kOffline);
  folio_set_count(reinterpret_cast<Folio*>(page), 1);
}

// The descriptor of an offlined page: unreferenced PageOffline (the kernel
// poisons it; pinmm keeps it recognisable and keeps its stale zone).
void reset_offline_page(Page* page) {
  Zone* zone = page->zone();
  std::memset(static_cast<void*>(page), 0, sizeof(Page));
  page->set_zone(zone);
  page->set_type(PageType::kOffline);
}

}  // namespace

Result<void> MemorySystem::add_memory_blocks(int nid, Pfn start, PageCount nr, int group) {
  const uint64_t block = block_pages().value();
  // In __add_memory's order: the range must lie in the pluggable range,
  // here [0, max_pfn) (register_memory_resource: E2BIG when
  // mhp_range_allowed() refuses it); it must not overlap present memory,
  // boot memory included (the resource request conflicts: EEXIST); then
  // check_hotplug_memory_range wants it block aligned and the node must
  // exist (EINVAL).
  if (nr.value() == 0 || start + nr > max_pfn() || start + nr < start) return Errno(E2BIG);
  if (start < boot_end_pfn()) return Errno(EEXIST);
  for (Pfn b(start.value() / block * block); b < start + nr; b += block_pages()) {
    if (memory_block_of(b).present) return Errno(EEXIST);
  }
  if (start.value() % block != 0 || nr.value() % block != 0) return Errno(EINVAL);
  if (nid < 0 || nid >= nr_nodes()) return Errno(EINVAL);
  if (group != kNoMemoryGroup && (group < 0 || static_cast<size_t>(group) >= groups_.size()))
    return Errno(EINVAL);
  // The page descriptors of every section, from kernel memory on the node
  // (vmemmap_populate's PMD-sized chunks), when the machine models memmap.
  std::vector<std::vector<Page*>> memmap(nr.value() / block);
  if (config_.reserve_memmap) {
    const uint64_t per_block = block * sizeof(Page) / PAGE_SIZE;
    const unsigned max_order = std::min<unsigned>(pageblock_order, std::bit_width(per_block) - 1);
    bool failed = false;
    for (auto& pages : memmap) {
      for (uint64_t got = 0; got < per_block && !failed; got += uint64_t{1} << max_order) {
        Page* p = alloc_pages_node(*this, nid, GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN,
                                   Order(max_order));
        if (p == nullptr) {
          failed = true;
          break;
        }
        pages.push_back(p);
      }
    }
    if (failed) {
      for (auto& pages : memmap) {
        for (Page* p : pages)
          __free_pages(p, Order(max_order));
      }
      return Errno(ENOMEM);
    }
    vm_stats_.add(NR_MEMMAP_PAGES, static_cast<int64_t>(per_block * memmap.size()));
  }
  size_t i = 0;
  for (Pfn b = start; b < start + nr; b += block_pages(), ++i) {
    MemoryBlock& mb = memory_block_of(b);
    mb.nid = nid;
    mb.present = true;
    mb.early = false;
    mb.state = MemoryBlockState::kOffline;
    mb.group = group;
    mb.memmap_pages = std::move(memmap[i]);
    for (Pfn pfn = b; pfn < b + block_pages(); ++pfn)
      reset_offline_page(pfn_to_page(pfn));
  }
  set_section_flags(start, start + nr, kSectionPresent, 0);
  return {};
}

Result<void> MemorySystem::remove_memory_blocks(Pfn start, PageCount nr) {
  const uint64_t block = block_pages().value();
  if (nr.value() == 0 || start.value() % block != 0 || nr.value() % block != 0 ||
      start + nr > max_pfn())
    return Errno(EINVAL);
  for (Pfn b = start; b < start + nr; b += block_pages()) {
    const MemoryBlock& mb = memory_block_of(b);
    if (!mb.present || mb.early) return Errno(EINVAL);
    if (mb.state != MemoryBlockState::kOffline) return Errno(EBUSY);
  }
  const uint64_t per_block = block * sizeof(Page) / PAGE_SIZE;
  const unsigned max_order = std::min<unsigned>(pageblock_order, std::bit_width(per_block) - 1);
  for (Pfn b = start; b < start + nr; b += block_pages()) {
    MemoryBlock& mb = memory_block_of(b);
    if (!mb.memmap_pages.empty()) vm_stats_.add(NR_MEMMAP_PAGES, -static_cast<int64_t>(per_block));
    for (Page* p : mb.memmap_pages)
      __free_pages(p, Order(max_order));
    mb.memmap_pages.clear();
    mb.present = false;
    mb.group = kNoMemoryGroup;
  }
  set_section_flags(start, start + nr, 0, kSectionPresent | kSectionOnline);
  return {};
}

void MemorySystem::move_pfn_range_to_zone(Zone& zone, Pfn start, PageCount nr, MigrateType mt) {
  zone.resize_span(start, nr);
  zone.node().update_span();
  for (Pfn pfn = start; pfn < start + nr; ++pfn)
    init_hotplug_page(pfn_to_page(pfn), &zone);
  for (Pfn pfn = start; pfn < start + nr; pfn += PageCount(pageblock_nr_pages))
    pageblock_flags_.set(pfn, mt);
}

void MemorySystem::online_pages_range(Pfn start, PageCount nr) {
  const Pfn end = start + nr;
  for (Pfn pfn = start; pfn < end;) {
    // The largest aligned chunk, at most MAX_PAGE_ORDER. Linux's blocks are
    // at least that big; pinmm's small test blocks also stop at the end.
    unsigned order = pfn.value() == 0
                         ? MAX_PAGE_ORDER
                         : std::min<unsigned>(MAX_PAGE_ORDER, std::countr_zero(pfn.value()));
    while (pfn + Order(order).nr_pages() > end)
      --order;
    __free_pages_core(pfn_to_page(pfn), Order(order), MEMINIT_HOTPLUG);
    pfn += Order(order).nr_pages();
  }
  set_section_flags(start, end, kSectionOnline, 0);
}

uint64_t MemorySystem::offline_isolated_pages(Pfn start, Pfn end) {
  set_section_flags(start, end, 0, kSectionOnline);
  return page_zone(pfn_to_page(start))->remove_isolated_free_pages(start, end);
}

void MemorySystem::remove_pfn_range_from_zone(Zone& zone, Pfn start, PageCount nr) {
  const Pfn end = start + nr;
  for (Pfn pfn = start; pfn < end; ++pfn)
    reset_offline_page(pfn_to_page(pfn));
  // shrink_zone_span: only a range at either end of the span moves it, to
  // the nearest online section of this zone.
  const PageCount section = section_pages();
  auto online_here = [&](Pfn pfn) {
    const Page* p = pfn_to_online_page(pfn);
    return p != nullptr && p->zone() == &zone;
  };
  if (zone.zone_start_pfn() == start) {
    Pfn first = end;
    while (first < zone.zone_end_pfn() && !online_here(first))
      first += section;
    if (first < zone.zone_end_pfn()) {
      zone.set_span(first, (zone.zone_end_pfn() - first).value());
    } else {
      zone.set_span(Pfn(0), 0);
    }
  } else if (zone.zone_end_pfn() == end) {
    Pfn last_end = start;
    while (last_end > zone.zone_start_pfn() && !online_here(last_end - PageCount(1)))
      last_end = last_end - section;
    if (last_end > zone.zone_start_pfn()) {
      zone.set_span(zone.zone_start_pfn(), (last_end - zone.zone_start_pfn()).value());
    } else {
      zone.set_span(Pfn(0), 0);
    }
  }
  zone.node().update_span();
}

void MemorySystem::adjust_present_page_count(Zone& zone, Pfn start, int64_t nr, int group) {
  zone.adjust_present_pages(nr, memory_block_of(start).early);
  if (group == kNoMemoryGroup) return;
  MemoryGroup& g = groups_[static_cast<size_t>(group)];
  uint64_t& count = zone.type() == ZONE_MOVABLE ? g.present_movable_pages : g.present_kernel_pages;
  count = static_cast<uint64_t>(static_cast<int64_t>(count) + nr);
}

Result<Pfn> MemorySystem::reserve_device_range(int nid, PageCount nr) {
  if (nid < 0 || nid >= nr_nodes() || nr.value() == 0) return Errno(EINVAL);
  const uint64_t per = section_pages().value();
  const uint64_t want = (nr.value() + per - 1) / per;
  uint64_t first = 0;
  {
    MutexGuard g(device_lock_);
    // First fit over the device space's sections.
    uint64_t run = 0;
    for (uint64_t s = 0; s < device_sections_used_.size() && run < want; ++s) {
      run = device_sections_used_[s] ? 0 : run + 1;
      if (run == 1) first = s;
    }
    if (run < want) return Errno(ENOMEM);
    for (uint64_t s = first; s < first + want; ++s)
      device_sections_used_[s] = true;
  }
  const Pfn start = device_start_pfn() + PageCount(first * per);
  Zone& zone = node(nid).zone(ZONE_DEVICE);
  for (Pfn pfn = start; pfn < start + PageCount(want * per); ++pfn) {
    Page* page = pfn_to_page(pfn);
    std::memset(static_cast<void*>(page), 0, sizeof(Page));
    page->set_zone(&zone);
  }
  zone.resize_span(start, PageCount(want * per));
  set_section_flags(start, start + PageCount(want * per), kSectionPresent, 0);
  return start;
}

void MemorySystem::release_device_range(Pfn start, PageCount nr) {
  const uint64_t per = section_pages().value();
  const uint64_t count = (nr.value() + per - 1) / per;
  set_section_flags(start, start + PageCount(count * per), 0, kSectionPresent);
  MutexGuard g(device_lock_);
  const uint64_t first = (start - device_start_pfn()).value() / per;
  for (uint64_t s = first; s < first + count; ++s)
    device_sections_used_[s] = false;
}

}  // namespace pinmm
