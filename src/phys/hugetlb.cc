#include "pinmm/phys/hugetlb.h"

#include <fmt/format.h>

#include "pinmm/base/task.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page_alloc.h"

namespace pinmm {
namespace {

Folio* folio_of(ListHead* lh) {
  return reinterpret_cast<Folio*>(reinterpret_cast<char*>(lh) - offsetof(Page, lru));
}

}  // namespace

HugetlbPools::HugetlbPools(MemorySystem& ms) : ms_(ms) {
  const unsigned orders[2] = {HPAGE_PMD_ORDER, HPAGE_PUD_ORDER};
  for (unsigned i = 0; i < hstates_.size(); ++i) {
    Hstate& h = hstates_[i];
    h.order = orders[i];
    h.name = fmt::format("hugepages-{}kB", (uint64_t{1} << orders[i]) * (PAGE_SIZE >> 10));
    h.free_lists.resize(static_cast<size_t>(ms.nr_nodes()));
    for (ListHead& l : h.free_lists)
      init_list_head(&l);
    h.nr_huge_pages_node.assign(static_cast<size_t>(ms.nr_nodes()), 0);
    h.free_huge_pages_node.assign(static_cast<size_t>(ms.nr_nodes()), 0);
  }
}

Hstate* HugetlbPools::hstate_for_order(unsigned order) {
  for (Hstate& h : hstates_) {
    if (h.order == order) return &h;
  }
  return nullptr;
}

void HugetlbPools::enqueue_hugetlb_folio(Hstate& h, Folio* folio) {
  const int nid = folio_nid(folio);
  list_add_tail(&folio->page.lru, &h.free_lists[nid]);
  ++h.free_huge_pages;
  ++h.free_huge_pages_node[nid];
}

uint64_t HugetlbPools::hugetlb_hstate_alloc_pages_onenode(unsigned index, int nid, uint64_t count) {
  Hstate& h = hstates_[index];
  MM_BUG_ON(h.order > MAX_PAGE_ORDER);  // gigantic pages come from boot memory
  uint64_t got = 0;
  for (; got < count; ++got) {
    Folio* folio = folio_alloc(
        ms_, GFP_HIGHUSER | __GFP_COMP | __GFP_THISNODE | __GFP_NOWARN | __GFP_RETRY_MAYFAIL,
        Order(h.order), nid);
    if (folio == nullptr) {
      ms_.events().inc(HTLB_BUDDY_PGALLOC_FAIL);
      break;
    }
    ms_.events().inc(HTLB_BUDDY_PGALLOC);
    MM_BUG_ON(!folio_ref_freeze(folio, 1), folio);
    folio->page.set_type(PageType::kHugetlb);
    MutexGuard g(hugetlb_lock);
    ++h.nr_huge_pages;
    ++h.nr_huge_pages_node[folio_nid(folio)];
    enqueue_hugetlb_folio(h, folio);
  }
  return got;
}

void HugetlbPools::add_bootmem_folio(unsigned index, Page* head) {
  Hstate& h = hstates_[index];
  const uint64_t nr = h.nr_pages_per_huge_page();
  for (uint64_t i = 0; i < nr; ++i) {
    head[i].__clear(PG_reserved);
    folio_set_count(reinterpret_cast<Folio*>(head + i), 0);
  }
  prep_compound_page(head, h.order);
  head->set_type(PageType::kHugetlb);
  Folio* folio = reinterpret_cast<Folio*>(head);
  MutexGuard g(hugetlb_lock);
  ++h.nr_huge_pages;
  ++h.nr_huge_pages_node[folio_nid(folio)];
  enqueue_hugetlb_folio(h, folio);
}

Folio* HugetlbPools::dequeue_hugetlb_folio_node_exact(Hstate& h, int nid, bool pin_scope) {
  ListHead* head = &h.free_lists[nid];
  for (ListHead* pos = head->load_next(); pos != head; pos = pos->load_next()) {
    Folio* folio = folio_of(pos);
    // In a memalloc_pin scope, only folios that may be pinned long-term.
    if (pin_scope && !folio_is_longterm_pinnable(folio)) continue;
    if (folio_test_hwpoison(folio)) continue;
    list_del_init(&folio->page.lru);
    --h.free_huge_pages;
    --h.free_huge_pages_node[nid];
    folio_ref_unfreeze(folio, 1);
    return folio;
  }
  return nullptr;
}

Folio* HugetlbPools::dequeue_hugetlb_folio_nodemask(Hstate& h, int nid) {
  const bool pin_scope = current().flags() & PF_MEMALLOC_PIN;
  MutexGuard g(hugetlb_lock);
  const int nr_nodes = ms_.nr_nodes();
  const int first = nid == NUMA_NO_NODE ? 0 : nid;
  for (int k = 0; k < nr_nodes; ++k) {
    if (Folio* folio = dequeue_hugetlb_folio_node_exact(h, (first + k) % nr_nodes, pin_scope))
      return folio;
  }
  return nullptr;
}

Folio* HugetlbPools::alloc_hugetlb_folio_nodemask(Hstate& h, int preferred_nid,
                                                  const NodeMask* nodemask, bool fallback) {
  const bool pin_scope = current().flags() & PF_MEMALLOC_PIN;
  if (preferred_nid < 0) preferred_nid = 0;
  MutexGuard g(hugetlb_lock);
  if (h.free_huge_pages <= h.resv_huge_pages) return nullptr;
  const int nr_nodes = ms_.nr_nodes();
  for (int k = 0; k < nr_nodes && (k == 0 || fallback); ++k) {
    const int n = (preferred_nid + k) % nr_nodes;
    if (nodemask != nullptr && !nodemask->test(static_cast<size_t>(n))) continue;
    if (Folio* folio = dequeue_hugetlb_folio_node_exact(h, n, pin_scope)) return folio;
  }
  return nullptr;
}

void HugetlbPools::free_huge_folio(Folio* folio) {
  MM_BUG_ON(folio_ref_count(folio) != 0 || folio_entire_mapcount(folio) != 0 ||
                folio_pincount(folio) != 0,
            folio);
  Hstate* h = hstate_for_order(folio_order(folio));
  MM_BUG_ON(h == nullptr, folio);
  folio->page.clear(PG_anon_exclusive);
  folio->page.clear(PG_dirty);
  folio->page.set_mapping(0);
  folio->page.set_private_data(0);
  MutexGuard g(hugetlb_lock);
  enqueue_hugetlb_folio(*h, folio);
}

int HugetlbPools::dissolve_free_hugetlb_folio(Folio* folio) {
  if (!folio_test_hugetlb(folio)) return 0;  // unlocked fast check, as the kernel
  {
    MutexGuard g(hugetlb_lock);
    if (!folio_test_hugetlb(folio)) return 0;
    if (folio_ref_count(folio) != 0) return -EBUSY;
    Hstate* h = hstate_for_order(folio_order(folio));
    MM_BUG_ON(h == nullptr, folio);
    if (h->free_huge_pages <= h->resv_huge_pages) return -EBUSY;  // !available_huge_pages
    const int nid = folio_nid(folio);
    list_del_init(&folio->page.lru);
    --h->free_huge_pages;
    --h->free_huge_pages_node[nid];
    --h->nr_huge_pages;
    --h->nr_huge_pages_node[nid];
    folio->page.set_type(PageType::kNone);
  }
  // update_and_free_hugetlb_folio: the frozen compound page goes back.
  free_frozen_pages(&folio->page, Order(folio_order(folio)));
  return 0;
}

int HugetlbPools::dissolve_free_hugetlb_folios(Pfn start, Pfn end) {
  const PageCount step = Order(hstates_[kPmdIndex].order).nr_pages();
  for (Pfn pfn = start; pfn < end; pfn += step) {
    Page* page = ms_.pfn_to_page(pfn);
    const int rc = dissolve_free_hugetlb_folio(page_folio(page));
    if (rc != 0) return rc;
  }
  return 0;
}

HstateCounts HugetlbPools::counts(unsigned index) const {
  MutexGuard g(hugetlb_lock);
  const Hstate& h = hstates_[index];
  return {h.nr_huge_pages, h.free_huge_pages, h.resv_huge_pages};
}

HstateCounts HugetlbPools::counts_node(unsigned index, int nid) const {
  MutexGuard g(hugetlb_lock);
  const Hstate& h = hstates_[index];
  return {h.nr_huge_pages_node[nid], h.free_huge_pages_node[nid], 0};
}

}  // namespace pinmm
