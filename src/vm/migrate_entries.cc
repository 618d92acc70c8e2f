#include "pinmm/vm/migrate_entries.h"

#include <algorithm>

#include "internal.h"
#include "pinmm/base/rcu.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mmu_notifier.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

void TlbFlushBatch::add(Mm& mm) {
  if (std::find(mms_.begin(), mms_.end(), &mm) != mms_.end()) return;
  mm.mmgrab();
  mms_.push_back(&mm);
}

void TlbFlushBatch::flush() {
  for (Mm* mm : mms_) {
    mm->tlb().flush();
    mm->mmdrop();
  }
  mms_.clear();
}

AnonVma* folio_get_anon_vma(const Folio* folio) {
  rcu::ReadSection rs;
  AnonVma* av = folio_anon_vma(folio);
  if (av == nullptr) return nullptr;
  // Only a mapped folio's AnonVma is known to be alive (its VMAs hold it);
  // the reference keeps it alive afterwards. Re-check after taking it: the
  // last unmap may have raced with the lookup.
  if (!folio_mapped(folio) || !av->try_get()) return nullptr;
  if (!folio_mapped(folio)) {
    av->put();
    return nullptr;
  }
  return av;
}

namespace {

// The migration entry standing for a present entry with these bits.
swp_entry_t migration_entry_for(Pfn pfn, bool writable, bool anon_exclusive, bool young,
                                bool dirty) {
  swp_entry_t e = writable         ? make_writable_migration_entry(pfn)
                  : anon_exclusive ? make_readable_exclusive_migration_entry(pfn)
                                   : make_readable_migration_entry(pfn);
  if (young) e = make_migration_entry_young(e);
  if (dirty) e = make_migration_entry_dirty(e);
  return e;
}

// Clears the entry now (flushing) or defers the flush to the batch.
template <typename E>
E clear_entry(Mm& mm, E* p, TlbFlushBatch* batch) {
  const E old = entry_get_and_clear(p);
  if (batch != nullptr) {
    batch->add(mm);
  } else {
    mm.tlb().flush();
  }
  return old;
}

// try_to_migrate_one for a device-private entry: the CPU has no
// translation to flush, and a device-private page is never pinned, so an
// exclusive page can always become shared.
bool migrate_one_device_private_pte(Folio* folio, const PageVmaMapped& m) {
  Mm& mm = m.vma->vm_mm();
  const swp_entry_t old = pte_to_swp_entry(ptep_get_and_clear(m.pte));
  MM_BUG_ON(!is_device_private_entry(old), folio);
  Page* page = mm.ms().pfn_to_page(swp_offset_pfn(old));
  const bool anon_exclusive = folio_test_anon(folio) && PageAnonExclusive(page);
  if (anon_exclusive && folio_try_share_anon_rmap_pte(folio, page) != 0) {
    set_pte(m.pte, swp_entry_to_pte(old));
    return false;
  }
  const swp_entry_t e = migration_entry_for(
      page_to_pfn(page), is_writable_device_private_entry(old), anon_exclusive, false, false);
  set_pte(m.pte, swp_entry_to_pte(e));
  folio_remove_rmap_pte(folio, page, m.vma);
  folio_put(folio);
  return true;
}

// try_to_migrate_one for a PTE. False: the folio may be pinned and the
// page is exclusive; the entry is back and the walk must stop.
bool migrate_one_pte(Folio* folio, const PageVmaMapped& m, TlbFlushBatch* batch) {
  Mm& mm = m.vma->vm_mm();
  if (is_swap_pte(ptep_get(m.pte)) &&
      is_device_exclusive_entry(pte_to_swp_entry(ptep_get(m.pte)))) {
    // The device loses its exclusive access (we hold the folio lock the
    // restore needs); then the page migrates like any mapped one.
    restore_exclusive_pte(m.vma,
                          mm.ms().pfn_to_page(swp_offset_pfn(pte_to_swp_entry(ptep_get(m.pte)))),
                          m.address, m.pte);
  }
  if (is_swap_pte(ptep_get(m.pte))) return migrate_one_device_private_pte(folio, m);
  const pte_t old = clear_entry(mm, m.pte, batch);
  Page* page = mm.ms().pfn_to_page(pte_pfn(old));
  const bool anon_exclusive = folio_test_anon(folio) && PageAnonExclusive(page);
  if (anon_exclusive) {
    // No flush needed first: the barrier in folio_try_share_anon_rmap_*
    // orders the cleared entry against GUP-fast's re-check.
    if (folio_try_share_anon_rmap_pte(folio, page) != 0) {
      set_pte(m.pte, old);
      return false;
    }
  }
  if (pte_dirty(old)) folio_mark_dirty(folio);
  const swp_entry_t e = migration_entry_for(page_to_pfn(page), pte_write(old), anon_exclusive,
                                            pte_young(old), pte_dirty(old));
  set_pte(m.pte, swp_entry_to_pte(e));
  folio_remove_rmap_pte(folio, page, m.vma);
  folio_put(folio);
  return true;
}

// set_pmd_migration_entry (THP) or the hugetlb PMD case.
bool set_pmd_migration_entry(Folio* folio, const PageVmaMapped& m, TlbFlushBatch* batch) {
  Mm& mm = m.vma->vm_mm();
  const pmd_t old = clear_entry(mm, m.pmd, batch);
  const bool hugetlb = folio_test_hugetlb(folio);
  const bool anon_exclusive = folio_test_anon(folio) && PageAnonExclusive(&folio->page);
  if (anon_exclusive) {
    if (folio_try_share_anon_rmap_pmd(folio, &folio->page) != 0) {
      set_pmd(m.pmd, old);
      return false;
    }
  }
  if (pmd_dirty(old)) folio_mark_dirty(folio);
  const swp_entry_t e = migration_entry_for(folio_pfn(folio), pmd_write(old), anon_exclusive,
                                            pmd_young(old), pmd_dirty(old));
  set_pmd(m.pmd, swp_entry_to_pmd(e));
  if (hugetlb) {
    hugetlb_remove_rmap(folio);
  } else {
    folio_remove_rmap_pmd(folio, &folio->page, m.vma);
  }
  folio_put(folio);
  return true;
}

// The folio's range in `vma`, for the MMU notifiers.
MmuNotifierRange folio_range(Folio* folio, Vma* vma, VirtAddr addr) {
  const VirtAddr end(
      std::min(vma->vm_end.value(), addr.value() + folio_nr_pages(folio) * PAGE_SIZE));
  return MmuNotifierRange{&vma->vm_mm(),    addr,   end, MMU_NOTIFIER_RANGE_BLOCKABLE,
                          MMU_NOTIFY_CLEAR, nullptr};
}

// TTU_SPLIT_HUGE_PMD: every PMD mapping of the (THP) folio becomes 512 PTEs.
void split_pmd_mappings(Folio* folio) {
  rmap_walk(folio, [folio](Vma* vma, VirtAddr addr) {
    const VirtAddr haddr(addr.value() & HPAGE_PMD_MASK);
    if (haddr < vma->vm_start || haddr.value() + HPAGE_PMD_SIZE > vma->vm_end.value()) return true;
    pmd_t* pmd = pmd_offset(vma->vm_mm(), haddr);
    if (pmd == nullptr) return true;
    const pmd_t v = pmdp_get(pmd);
    if (pmd_leaf(v) && pmd_pfn(v) == folio_pfn(folio)) split_huge_pmd(vma, pmd, haddr);
    return true;
  });
}

}  // namespace

namespace {

// One VMA's mappings of the folio become migration entries, under one
// MMU-notifier invalidation; false stops the rmap walk.
bool try_to_migrate_one(Folio* folio, Vma* vma, VirtAddr addr, TlbFlushBatch* batch) {
  const MmuNotifierRange range = folio_range(folio, vma, addr);
  mmu_notifier_invalidate_range_start(range);
  const bool done = page_vma_mapped_walk(folio, vma, /*migration=*/false, [&](PageVmaMapped& m) {
    if (m.pud != nullptr) return true;  // 1 GiB hugetlb: callers refuse it
    return m.pte != nullptr ? migrate_one_pte(folio, m, batch)
                            : set_pmd_migration_entry(folio, m, batch);
  });
  mmu_notifier_invalidate_range_end(range);
  return done;
}

}  // namespace

void try_to_migrate(Folio* folio, unsigned ttu_flags, TlbFlushBatch* batch) {
  MM_BUG_ON(!folio_test_locked(folio), folio);
  MM_BUG_ON((ttu_flags & TTU_BATCH_FLUSH) && batch == nullptr, folio);
  if (!(ttu_flags & TTU_BATCH_FLUSH)) batch = nullptr;
  if ((ttu_flags & TTU_SPLIT_HUGE_PMD) && folio_test_large(folio) && !folio_test_hugetlb(folio))
    split_pmd_mappings(folio);
  rmap_walk(folio,
            [&](Vma* vma, VirtAddr addr) { return try_to_migrate_one(folio, vma, addr, batch); });
}

namespace {

void remove_migration_pte(Folio* src, Folio* dst, const PageVmaMapped& m) {
  const swp_entry_t e = pte_to_swp_entry(ptep_get(m.pte));
  const uint64_t i = (swp_offset_pfn(e) - folio_pfn(src)).value();
  Page* page = folio_page(dst, i);
  Vma* vma = m.vma;
  pte_t pte;
  if (is_device_private_page(page)) {
    // The CPU cannot map device-private memory: the entry stands for it.
    const Pfn pfn = page_to_pfn(page);
    pte =
        swp_entry_to_pte(is_writable_migration_entry(e) ? make_writable_device_private_entry(pfn)
                                                        : make_readable_device_private_entry(pfn));
  } else {
    pte = pfn_pte(page_to_pfn(page), vma->vm_page_prot);
    pte = is_migration_entry_young(e) ? pte_mkyoung(pte) : pte_mkold(pte);
    if (is_migration_entry_dirty(e) && folio_test_dirty(dst)) pte = pte_mkdirty(pte);
    pte = is_writable_migration_entry(e) ? pte_mkwrite(pte) : pte_wrprotect(pte);
  }
  folio_get(dst);
  if (folio_test_anon(dst)) {
    folio_add_anon_rmap_ptes(dst, page, 1, vma, m.address,
                             is_readable_migration_entry(e) ? RMAP_NONE : RMAP_EXCLUSIVE);
  } else {
    folio_add_file_rmap_ptes(dst, page, 1, vma);
  }
  set_pte(m.pte, pte);
}

void remove_migration_pmd(Folio* dst, const PageVmaMapped& m) {
  const swp_entry_t e = pmd_to_swp_entry(pmdp_get(m.pmd));
  Vma* vma = m.vma;
  pmd_t pmd = pfn_pmd(folio_pfn(dst), vma->vm_page_prot);
  pmd = is_migration_entry_young(e) ? pmd_mkyoung(pmd) : pmd_mkold(pmd);
  if (is_migration_entry_dirty(e) && folio_test_dirty(dst)) pmd = pmd_mkdirty(pmd);
  pmd = is_writable_migration_entry(e) ? pmd_mkwrite(pmd) : pmd_wrprotect(pmd);
  const RmapFlags flags = is_readable_migration_entry(e) ? RMAP_NONE : RMAP_EXCLUSIVE;
  folio_get(dst);
  if (folio_test_hugetlb(dst)) {
    if (folio_test_anon(dst)) {
      hugetlb_add_anon_rmap(dst, vma, m.address, flags);
    } else {
      hugetlb_add_file_rmap(dst);
    }
  } else if (folio_test_anon(dst)) {
    folio_add_anon_rmap_pmd(dst, &dst->page, vma, m.address, flags);
  } else {
    folio_add_file_rmap_pmd(dst, &dst->page, vma);
  }
  set_pmd(m.pmd, pmd);
}

}  // namespace

void remove_migration_ptes(Folio* src, Folio* dst) {
  MM_BUG_ON(!folio_test_locked(src), src);
  // Walk dst's VMAs (dst has src's mapping and index by now) for entries
  // that point at src.
  rmap_walk(dst, [&](Vma* vma, VirtAddr) {
    page_vma_mapped_walk(src, vma, /*migration=*/true, [&](PageVmaMapped& m) {
      if (m.pte != nullptr) {
        if (is_swap_pte(ptep_get(m.pte)) && is_migration_entry(pte_to_swp_entry(ptep_get(m.pte))))
          remove_migration_pte(src, dst, m);
      } else if (m.pmd != nullptr && is_swap_pmd(pmdp_get(m.pmd))) {
        remove_migration_pmd(dst, m);
      }
      return true;
    });
    return true;
  });
}

}  // namespace pinmm
