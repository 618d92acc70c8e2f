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
  const Pfn end = start + nr;
  if (spanned_pages_ == 0) {
    start_pfn_ = start;
    spanned_pages_ = nr.value();
  } else {
    const Pfn new_start = std::min(start_pfn_, start);
    const Pfn new_end = std::max(zone_end_pfn(), end);
    start_pfn_ = new_start;
    spanned_pages_ = (new_end - new_start).value();
  }
  present_pages_ += nr.value();
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

uint64_t Node::node_present_pages() const {
  uint64_t n = 0;
  for (const auto& z : zones_)
    n += z->present_pages();
  return n;
}

}  // namespace pinmm
