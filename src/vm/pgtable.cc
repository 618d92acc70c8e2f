#include "pinmm/vm/pgtable.h"

#include "pinmm/base/rcu.h"
#include "pinmm/phys/page_alloc.h"

namespace pinmm {

namespace {
// GFP_PGTABLE_USER: kernel memory, accounted, zeroed.
constexpr Gfp GFP_PGTABLE_USER = GFP_KERNEL_ACCOUNT | __GFP_ZERO;
}  // namespace

Page* pagetable_alloc(MemorySystem& ms, int nid, LockRank rank) {
  Page* page = alloc_pages_node(ms, nid, GFP_PGTABLE_USER, Order(0));
  if (page == nullptr) return nullptr;
  page->set_type(PageType::kTable);
  page->set_private_data(reinterpret_cast<uintptr_t>(new SpinLock(rank)));
  // The page's index is whatever its last user left (an anonymous page's
  // linear index, say); a PMD table keeps the head of its deposited PTE
  // tables there, which starts empty (pagetable_pmd_ctor's pmd_huge_pte).
  page->set_index(0);
  ms.node(page_to_nid(page)).stats().inc(NR_PAGETABLE);
  return page;
}

SpinLock& ptlock_of(const Page* table) {
  MM_DCHECK(PageTable(table), table);
  return *reinterpret_cast<SpinLock*>(table->private_data());
}

void pagetable_free_rcu(Page* table) {
  MM_BUG_ON(!PageTable(table), table);
  rcu::call([table] {
    MemorySystem& ms = page_memory_system(table);
    delete &ptlock_of(table);
    table->set_private_data(0);
    table->set_type(PageType::kNone);
    ms.node(page_to_nid(table)).stats().add(NR_PAGETABLE, -1);
    free_page(table);
  });
}

}  // namespace pinmm
