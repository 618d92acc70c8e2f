#include "pinmm/phys/zone.h"

#include "pinmm/phys/memory_system.h"

namespace pinmm {

Zone::Zone(MemorySystem& ms, Node& node, ZoneType type)
    : ms_(ms), node_(node), type_(type), mem_map_(ms.mem_map()) {
  for (FreeArea& area : free_area_) {
    for (ListHead& head : area.free_list)
      init_list_head(&head);
  }
}

int Zone::nid() const { return node_.nid(); }

void Zone::grow_span(Pfn start, PageCount nr) {
  resize_span(start, nr);
  adjust_present_pages(static_cast<int64_t>(nr.value()), /*early=*/true);
}

void Zone::resize_span(Pfn start, PageCount nr) {
  const Pfn end = start + nr;
  if (spanned_pages() == 0) {
    set_span(start, nr.value());
    return;
  }
  const Pfn new_start = std::min(zone_start_pfn(), start);
  const Pfn new_end = std::max(zone_end_pfn(), end);
  set_span(new_start, (new_end - new_start).value());
}

void Zone::set_span(Pfn start, uint64_t spanned) {
  start_pfn_.store(spanned == 0 ? 0 : start.value(), std::memory_order_relaxed);
  spanned_pages_.store(spanned, std::memory_order_relaxed);
}

bool Zone::zone_intersects(Pfn start, PageCount nr) const {
  if (spanned_pages() == 0) return false;
  return start < zone_end_pfn() && zone_start_pfn() < start + nr;
}

void Zone::adjust_present_pages(int64_t nr, bool early) {
  present_pages_.fetch_add(static_cast<uint64_t>(nr), std::memory_order_relaxed);
  if (early) present_early_pages_.fetch_add(static_cast<uint64_t>(nr), std::memory_order_relaxed);
}

Zone::FreeCounts Zone::free_counts() const {
  FreeCounts c;
  SpinGuard g(lock);
  for (unsigned o = 0; o < NR_PAGE_ORDERS; ++o) {
    c.nr_free[o] = free_area_[o].nr_free;
    for (unsigned mt = 0; mt < MIGRATE_TYPES; ++mt)
      c.per_type[mt][o] = free_area_[o].nr_free_type[mt];
  }
  return c;
}

Node::Node(MemorySystem& ms, int nid) : nid_(nid) {
  for (unsigned t = 0; t < MAX_NR_ZONES; ++t) {
    zones_[t] = std::make_unique<Zone>(ms, *this, static_cast<ZoneType>(t));
  }
}

void Node::update_span() {
  Pfn start{0}, end{0};
  bool any = false;
  for (const auto& z : zones_) {
    if (z->spanned_pages() == 0) continue;
    start = any ? std::min(start, z->zone_start_pfn()) : z->zone_start_pfn();
    end = any ? std::max(end, z->zone_end_pfn()) : z->zone_end_pfn();
    any = true;
  }
  set_span(start, any ? (end - start).value() : 0);
}

uint64_t Node::node_present_pages() const {
  uint64_t n = 0;
  for (const auto& z : zones_)
    n += z->present_pages();
  return n;
}

}  // namespace pinmm
