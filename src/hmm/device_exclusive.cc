// make_device_exclusive_range (mm/rmap.c, 6.12): GUP for writing, then an
// rmap walk that turns each mapping of the page into a device-exclusive
// entry.
#include "pinmm/hmm/device_exclusive.h"

#include <algorithm>

#include "pinmm/gup/gup.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/mmu_notifier.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

// One present PTE becomes a device-exclusive entry; false if the entry is
// not present (already exclusive, or PMD-mapped), which ends the walk.
bool page_make_device_exclusive_one(Folio* folio, const PageVmaMapped& m, Mm& want_mm,
                                    VirtAddr want_addr, bool* valid) {
  if (m.pte == nullptr || !pte_present(ptep_get(m.pte))) return false;
  Mm& mm = m.vma->vm_mm();
  if (&mm == &want_mm && m.address == want_addr) *valid = true;
  const pte_t old = ptep_get_and_clear(m.pte);
  mm.tlb().flush();
  if (pte_dirty(old)) folio_mark_dirty(folio);
  Page* page = mm.ms().pfn_to_page(pte_pfn(old));
  const Pfn pfn = page_to_pfn(page);
  set_pte(m.pte, swp_entry_to_pte(pte_write(old) ? make_writable_device_exclusive_entry(pfn)
                                                 : make_readable_device_exclusive_entry(pfn)));
  // The entry keeps the mapping's reference, not its mapcount.
  folio_remove_rmap_pte(folio, page, m.vma);
  return true;
}

// folio_make_device_exclusive: every mapping of the locked anonymous folio
// becomes exclusive; true if `addr` in `mm` was one and none is left.
bool folio_make_device_exclusive(Folio* folio, Mm& mm, VirtAddr addr, const void* owner) {
  if (!folio_test_anon(folio)) return false;
  bool valid = false;
  rmap_walk(folio, [&](Vma* vma, VirtAddr at) {
    const VirtAddr end(
        std::min(vma->vm_end.value(), at.value() + folio_nr_pages(folio) * PAGE_SIZE));
    const MmuNotifierRange range{&vma->vm_mm(),        at,   end, MMU_NOTIFIER_RANGE_BLOCKABLE,
                                 MMU_NOTIFY_EXCLUSIVE, owner};
    mmu_notifier_invalidate_range_start(range);
    const bool done = page_vma_mapped_walk(folio, vma, /*migration=*/false, [&](PageVmaMapped& m) {
      return page_make_device_exclusive_one(folio, m, mm, addr, &valid);
    });
    mmu_notifier_invalidate_range_end(range);
    return done;
  });
  return valid && folio_mapcount(folio) == 0;
}

}  // namespace

long make_device_exclusive_range(Mm& mm, VirtAddr start, VirtAddr end, Page** pages,
                                 const void* owner) {
  const long npages = static_cast<long>((end - start) >> PAGE_SHIFT);
  const long got = get_user_pages_remote(mm, start.value(), static_cast<unsigned long>(npages),
                                         FOLL_GET | FOLL_WRITE | FOLL_SPLIT_PMD, pages, nullptr);
  if (got < 0) return got;
  VirtAddr addr = start;
  for (long i = 0; i < got; ++i, addr = addr + PAGE_SIZE) {
    Folio* folio = page_folio(pages[i]);
    if (&folio->page != pages[i] || !folio_trylock(folio)) {
      folio_put(folio);
      pages[i] = nullptr;
      continue;
    }
    if (!folio_make_device_exclusive(folio, mm, addr, owner)) {
      folio_unlock(folio);
      folio_put(folio);
      pages[i] = nullptr;
    }
  }
  return got;
}

}  // namespace pinmm
