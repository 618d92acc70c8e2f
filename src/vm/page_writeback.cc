// Dirty folios and writeback (mm/page-writeback.c, folio_mkclean from
// mm/rmap.c).
#include "pinmm/vm/filemap.h"

#include "pinmm/phys/folio_lock.h"
#include "pinmm/vm/rmap.h"

namespace pinmm {

bool folio_mark_dirty(Folio* folio) {
  if (folio_test_set_dirty(folio)) return false;
  if (folio_mapping(folio) != nullptr && !folio_test_hugetlb(folio)) {
    MemorySystem& ms = page_memory_system(&folio->page);
    NodeStats& st = ms.node(folio_nid(folio)).stats();
    st.add(NR_FILE_DIRTY, static_cast<int64_t>(folio_nr_pages(folio)));
    st.add(NR_DIRTIED, static_cast<int64_t>(folio_nr_pages(folio)));
  }
  return true;
}

namespace {

// folio_mkclean: write-protect and clean every PTE mapping the folio, so
// the next write through a mapping faults and dirties it again.
void folio_mkclean(Folio* folio) {
  rmap_walk(folio, [folio](Vma* vma, VirtAddr) {
    bool changed = false;
    Mm& mm = vma->vm_mm();
    const MmuNotifierRange range{&mm,
                                 vma->vm_start,
                                 vma->vm_end,
                                 MMU_NOTIFIER_RANGE_BLOCKABLE,
                                 MMU_NOTIFY_PROTECTION_PAGE,
                                 nullptr};
    mmu_notifier_invalidate_range_start(range);
    page_vma_mapped_walk(folio, vma, false, [&](PageVmaMapped& m) {
      if (m.pte != nullptr) {
        const pte_t pte = ptep_get(m.pte);
        if (pte_write(pte) || pte_dirty(pte)) {
          set_pte(m.pte, pte_mkclean(pte_wrprotect(pte)));
          changed = true;
        }
      }
      return true;
    });
    if (changed) mm.tlb().flush();
    mmu_notifier_invalidate_range_end(range);
    return true;
  });
}

}  // namespace

uint64_t File::writeback() {
  if (!needs_dirty_tracking()) return 0;
  std::vector<Folio*> dirty;
  {
    SpinGuard g(mapping_.i_pages_lock);
    for (const auto& [index, folio] : mapping_.i_pages) {
      if (folio_test_dirty(folio)) {
        folio_get(folio);
        dirty.push_back(folio);
      }
    }
  }
  MemorySystem& ms = vm_.ms();
  uint64_t written = 0;
  for (Folio* folio : dirty) {
    folio_lock(folio);
    if (folio_mapping(folio) == &mapping_ && folio_test_dirty(folio)) {
      // folio_clear_dirty_for_io: clean the mappings first, then the folio.
      folio_mkclean(folio);
      folio_clear_dirty(folio);
      const auto nr = static_cast<int64_t>(folio_nr_pages(folio));
      NodeStats& st = ms.node(folio_nid(folio)).stats();
      st.add(NR_FILE_DIRTY, -nr);
      folio_set_writeback(folio);
      st.add(NR_WRITEBACK, nr);
      // The I/O completes at once.
      st.add(NR_WRITEBACK, -nr);
      st.add(NR_WRITTEN, nr);
      folio_end_writeback(folio);
      ++written;
    }
    folio_unlock(folio);
    folio_put(folio);
  }
  return written;
}

}  // namespace pinmm
