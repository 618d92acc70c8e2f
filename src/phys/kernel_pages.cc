#include "pinmm/phys/kernel_pages.h"

#include "pinmm/phys/page_alloc.h"

namespace pinmm {
namespace {
// The head page's index holds the owner tag id and whether the allocation
// was reclaimable (which slab counter it was charged to).
constexpr uint64_t kReclaimableBit = uint64_t{1} << 32;
}  // namespace

Page* kmalloc_pages(MemorySystem& ms, Order order, std::string_view owner, Gfp gfp, int nid) {
  if (MM_WARN_ON_ONCE(any(gfp & __GFP_MOVABLE))) return nullptr;
  if (ms.injector().should_fail(inject_point::kKmallocPages)) return nullptr;
  Page* page = alloc_pages_node(ms, nid, gfp | __GFP_COMP, order);
  if (page == nullptr) return nullptr;
  const bool reclaimable = any(gfp & __GFP_RECLAIMABLE);
  page->set_type(PageType::kSlab);
  page->set_index(ms.intern_owner(owner) | (reclaimable ? kReclaimableBit : 0));
  ms.node(page_to_nid(page))
      .stats()
      .add(reclaimable ? NR_SLAB_RECLAIMABLE : NR_SLAB_UNRECLAIMABLE,
           static_cast<int64_t>(order.nr_pages().value()));
  return page;
}

void kfree_pages(Page* page) {
  MM_BUG_ON(!PageSlab(page) || page->is_tail(), page);
  Folio* folio = page_folio(page);
  MemorySystem& ms = page_memory_system(page);
  const bool reclaimable = page->index() & kReclaimableBit;
  ms.node(page_to_nid(page))
      .stats()
      .add(reclaimable ? NR_SLAB_RECLAIMABLE : NR_SLAB_UNRECLAIMABLE,
           -static_cast<int64_t>(folio_nr_pages(folio)));
  page->set_type(PageType::kNone);
  page->set_index(0);
  folio_put(folio);
}

std::string kernel_page_owner(const Page* page) {
  const Page* head = page->compound_head();
  if (!PageSlab(head)) return {};
  return page_memory_system(head).owner_name(static_cast<uint32_t>(head->index() & 0xffffffffu));
}

}  // namespace pinmm
