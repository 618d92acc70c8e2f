// migrate_vma and the device eviction calls (KERNEL-SPEC 9.5-9.6), in
// mm/migrate_device.c's order: collect under an MMU_NOTIFY_MIGRATE
// invalidation, unmap with the refcount check, commit, finalize.
#include "pinmm/migrate/migrate_device.h"

#include <algorithm>
#include <cerrno>

#include "pinmm/base/check.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/huge_memory.h"
#include "pinmm/vm/migrate_entries.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/mmu_notifier.h"
#include "pinmm/vm/pagewalk.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

Page* migrate_pfn_to_page(MemorySystem& ms, uint64_t mpfn) {
  if (!(mpfn & MIGRATE_PFN_VALID)) return nullptr;
  return ms.pfn_to_page(Pfn(mpfn >> MIGRATE_PFN_SHIFT));
}

namespace {

// ---- collect ----

MigrateVma& migrate_of(MmWalk* walk) { return *static_cast<MigrateVma*>(walk->priv); }

void migrate_vma_emit(MigrateVma& m, uint64_t mpfn) {
  m.dst[m.npages] = 0;
  m.src[m.npages++] = mpfn;
}

int migrate_vma_collect_skip(VirtAddr start, VirtAddr end, MmWalk* walk) {
  for (VirtAddr a = start; a < end; a = a + PAGE_SIZE)
    migrate_vma_emit(migrate_of(walk), 0);
  return 0;
}

// A range with no page table: anonymous memory may be populated.
int migrate_vma_collect_hole(VirtAddr start, VirtAddr end, int /*depth*/, MmWalk* walk) {
  if (!vma_is_anonymous(walk->vma)) return migrate_vma_collect_skip(start, end, walk);
  MigrateVma& m = migrate_of(walk);
  for (VirtAddr a = start; a < end; a = a + PAGE_SIZE) {
    migrate_vma_emit(m, MIGRATE_PFN_MIGRATE);
    ++m.cpages;
  }
  return 0;
}

// split_folio() of an LRU folio: pinmm splits isolated folios, so the
// folio is taken off its LRU list for the split and the pieces go back.
bool migrate_vma_split_folio(Folio* folio) {
  if (!folio_trylock(folio)) return false;
  MemorySystem& ms = page_memory_system(&folio->page);
  if (!folio_test_lru(folio)) lru_add_drain_all(ms);
  if (!folio_isolate_lru(folio)) {
    folio_unlock(folio);
    return false;
  }
  ListHead pieces;
  init_list_head(&pieces);
  // The isolation reference stands in for ours during the split.
  folio_put(folio);
  const int rc = split_folio_to_list(folio, &pieces);
  folio_get(folio);
  folio_unlock(folio);
  folio_putback_lru(folio);
  while (!list_empty(&pieces)) {
    Folio* piece = folio_of_lru(pieces.next);
    list_del_init(&piece->page.lru);
    folio_putback_lru(piece);
  }
  return rc == 0;
}

// A THP mapped by this PMD is split first (the huge zero page only loses
// its PMD mapping); false: it could not be, skip the range.
bool migrate_vma_split_pmd(Vma* vma, pmd_t* pmd, VirtAddr addr) {
  Mm& mm = vma->vm_mm();
  SpinLock* ptl = &pmd_lockptr(mm, pmd);
  ptl_lock(ptl);
  const pmd_t v = pmdp_get(pmd);
  if (!pmd_leaf(v)) {
    ptl_unlock(ptl);
    return true;
  }
  Folio* folio = page_folio(mm.ms().pfn_to_page(pmd_pfn(v)));
  if (mm.vm().is_huge_zero_folio(folio)) {
    ptl_unlock(ptl);
    split_huge_pmd(vma, pmd, VirtAddr(addr.value() & PMD_MASK));
    return true;
  }
  folio_get(folio);
  ptl_unlock(ptl);
  const bool split = migrate_vma_split_folio(folio);
  folio_put(folio);
  return split;
}

// The entry for one PTE before the folio is locked: 0 (not migrating),
// MIGRATE alone (fill a hole), or the page's PFN with MIGRATE [| WRITE];
// *page is the page to collect (null for the first two).
uint64_t migrate_vma_classify(const MigrateVma& m, VirtAddr addr, pte_t pte, Page** page) {
  *page = nullptr;
  Vma* vma = m.vma;
  Mm& mm = vma->vm_mm();
  if (pte_none(pte)) return vma_is_anonymous(vma) ? MIGRATE_PFN_MIGRATE : 0;
  uint64_t mpfn = 0;
  Page* p = nullptr;
  if (!pte_present(pte)) {
    const swp_entry_t e = pte_to_swp_entry(pte);
    if (!is_device_private_entry(e)) return 0;  // migration, exclusive, hwpoison
    p = mm.ms().pfn_to_page(swp_offset_pfn(e));
    if (!(m.flags & MIGRATE_VMA_SELECT_DEVICE_PRIVATE) || page_pgmap(p)->owner != m.pgmap_owner)
      return 0;
    mpfn = migrate_pfn(page_to_pfn(p)) | MIGRATE_PFN_MIGRATE;
    if (is_writable_device_private_entry(e)) mpfn |= MIGRATE_PFN_WRITE;
  } else {
    if (mm.ms().is_zero_pfn(pte_pfn(pte)) && (m.flags & MIGRATE_VMA_SELECT_SYSTEM))
      return MIGRATE_PFN_MIGRATE;
    p = vm_normal_page(vma, addr, pte);
    if (p != nullptr && !is_zone_device_page(p) && !(m.flags & MIGRATE_VMA_SELECT_SYSTEM)) return 0;
    if (p != nullptr && is_device_coherent_page(p) &&
        (!(m.flags & MIGRATE_VMA_SELECT_DEVICE_COHERENT) || page_pgmap(p)->owner != m.pgmap_owner))
      return 0;
    mpfn = migrate_pfn(pte_pfn(pte)) | MIGRATE_PFN_MIGRATE;
    if (pte_write(pte)) mpfn |= MIGRATE_PFN_WRITE;
  }
  // Pages not (yet) reachable by rmap and pieces of large folios stay.
  if (p == nullptr || p->mapping() == 0 || folio_test_large(page_folio(p))) return 0;
  *page = p;
  return mpfn;
}

// Turns the locked folio's PTE into a migration entry; false if the page
// is exclusive and may be pinned (the PTE is put back).
bool migrate_vma_install_entry(Vma* vma, Folio* folio, Page* page, pte_t* ptep, uint64_t* mpfn,
                               bool* flushed_present) {
  Mm& mm = vma->vm_mm();
  const bool anon_exclusive = folio_test_anon(folio) && PageAnonExclusive(page);
  const pte_t pte = ptep_get_and_clear(ptep);
  if (anon_exclusive) {
    // ptep_clear_flush: GUP-fast must not find the page through a stale
    // translation once it is shared.
    if (pte_present(pte)) mm.tlb().flush();
    if (folio_try_share_anon_rmap_pte(folio, page) != 0) {
      set_pte(ptep, pte);
      return false;
    }
  }
  if (folio_test_anon(folio)) {
    // Keeps the AnonVma alive until the entries are restored (the
    // folio is still mapped here).
    if (AnonVma* av = folio_get_anon_vma(folio); av != nullptr) *mpfn |= MIGRATE_PFN_ANON_HELD;
  }
  const bool present = pte_present(pte);
  if (present && pte_dirty(pte)) folio_mark_dirty(folio);
  swp_entry_t e = (*mpfn & MIGRATE_PFN_WRITE) ? make_writable_migration_entry(page_to_pfn(page))
                  : anon_exclusive ? make_readable_exclusive_migration_entry(page_to_pfn(page))
                                   : make_readable_migration_entry(page_to_pfn(page));
  if (present && pte_young(pte)) e = make_migration_entry_young(e);
  if (present && pte_dirty(pte)) e = make_migration_entry_dirty(e);
  set_pte(ptep, swp_entry_to_pte(e));
  folio_remove_rmap_pte(folio, page, vma);
  // The mapping's reference goes; ours (taken by the caller) stays.
  folio_put(folio);
  *flushed_present |= present;
  return true;
}

void migrate_vma_collect_ptes(MigrateVma& m, LockedPte& lp, VirtAddr start, VirtAddr end) {
  bool unmapped = false;
  pte_t* ptep = lp.pte;
  for (VirtAddr addr = start; addr < end; addr = addr + PAGE_SIZE, ++ptep) {
    Page* page = nullptr;
    uint64_t mpfn = migrate_vma_classify(m, addr, ptep_get(ptep), &page);
    if (page == nullptr) {
      if (mpfn & MIGRATE_PFN_MIGRATE) ++m.cpages;
      migrate_vma_emit(m, mpfn);
      continue;
    }
    // Our reference freezes the entry against other migrations; the
    // folio lock is only tried (two migrations must not wait on each
    // other).
    Folio* folio = page_folio(page);
    folio_get(folio);
    if (!folio_trylock(folio)) {
      folio_put(folio);
      migrate_vma_emit(m, 0);
      continue;
    }
    if (!migrate_vma_install_entry(m.vma, folio, page, ptep, &mpfn, &unmapped)) {
      folio_unlock(folio);
      folio_put(folio);
      migrate_vma_emit(m, 0);
      continue;
    }
    ++m.cpages;
    migrate_vma_emit(m, mpfn);
  }
  if (unmapped) m.vma->vm_mm().tlb().flush();
}

int migrate_vma_collect_pmd(pmd_t* pmd, VirtAddr start, VirtAddr end, MmWalk* walk) {
  MigrateVma& m = migrate_of(walk);
  Mm& mm = *walk->mm;
  for (;;) {
    const pmd_t v = pmdp_get(pmd);
    if (pmd_none(v)) return migrate_vma_collect_hole(start, end, -1, walk);
    if (pmd_leaf(v)) {
      if (!migrate_vma_split_pmd(walk->vma, pmd, start))
        return migrate_vma_collect_skip(start, end, walk);
      continue;
    }
    if (!pmd_is_table(v)) {
      // A PMD migration entry: wait for that migration, then look again.
      if (is_swap_pmd(v) && is_migration_entry(pmd_to_swp_entry(v))) {
        pmd_migration_entry_wait(mm, pmd);
        continue;
      }
      return migrate_vma_collect_skip(start, end, walk);
    }
    LockedPte lp = pte_offset_map_lock(mm, pmd, start);
    if (!lp) continue;
    migrate_vma_collect_ptes(m, lp, start, end);
    pte_unmap_unlock(lp);
    return 0;
  }
}

constexpr MmWalkOps migrate_vma_walk_ops{
    .pmd_entry = migrate_vma_collect_pmd,
    .pte_hole = migrate_vma_collect_hole,
};

void migrate_vma_collect(MigrateVma* m) {
  const MmuNotifierRange range{
      &m->vma->vm_mm(),   m->start,      m->end, MMU_NOTIFIER_RANGE_BLOCKABLE,
      MMU_NOTIFY_MIGRATE, m->pgmap_owner};
  mmu_notifier_invalidate_range_start(range);
  walk_page_range(m->vma->vm_mm(), m->start, m->end, &migrate_vma_walk_ops, m);
  mmu_notifier_invalidate_range_end(range);
  m->end = m->start + m->npages * PAGE_SIZE;
}

// ---- unmap ----

// migrate_vma_check_page: no reference beyond the collection's (an
// isolated LRU folio's isolation reference, or a device folio's own), the
// fault path's, the page cache's, and one per remaining mapping.
bool migrate_vma_check_page(Page* page, const Page* fault_page) {
  Folio* folio = page_folio(page);
  if (folio_test_large(folio)) return false;
  int extra = 1 + (page == fault_page ? 1 : 0);
  if (is_zone_device_page(&folio->page)) ++extra;
  if (folio_mapping(folio) != nullptr) extra += 1 + (folio_test_private(folio) ? 1 : 0);
  return folio_ref_count(folio) - extra <= folio_mapcount(folio);
}

// Drops the AnonVma reference an entry holds.
void release_anon_vma(Folio* folio, uint64_t* mpfn) {
  if (!(*mpfn & MIGRATE_PFN_ANON_HELD)) return;
  folio_anon_vma(folio)->put();
  *mpfn &= ~MIGRATE_PFN_ANON_HELD;
}

// migrate_device_unmap: isolates system folios, unmaps what is still
// mapped, checks for unexpected references; entries that cannot migrate are
// restored and zeroed. Returns the entries still migrating.
uint64_t migrate_device_unmap(MemorySystem& ms, uint64_t* src, uint64_t npages,
                              const Page* fault_page) {
  uint64_t restore = 0, unmapped = 0;
  bool allow_drain = true;
  lru_add_drain(ms);
  for (uint64_t i = 0; i < npages; ++i) {
    Page* page = migrate_pfn_to_page(ms, src[i]);
    if (page == nullptr) {
      if (src[i] & MIGRATE_PFN_MIGRATE) ++unmapped;
      continue;
    }
    Folio* folio = page_folio(page);
    const bool device = is_zone_device_page(&folio->page);
    if (!device) {
      if (!folio_test_lru(folio) && allow_drain) {
        lru_add_drain_all(ms);
        allow_drain = false;
      }
      if (!folio_isolate_lru(folio)) {
        src[i] &= ~MIGRATE_PFN_MIGRATE;
        ++restore;
        continue;
      }
      folio_put(folio);  // the isolation reference replaces the collection's
    }
    if (folio_mapped(folio)) {
      if (folio_test_anon(folio) && !(src[i] & MIGRATE_PFN_ANON_HELD)) {
        if (AnonVma* av = folio_get_anon_vma(folio); av != nullptr) src[i] |= MIGRATE_PFN_ANON_HELD;
      }
      try_to_migrate(folio, TTU_NONE);
    }
    if (folio_mapped(folio) || !migrate_vma_check_page(page, fault_page)) {
      if (!device) {
        folio_get(folio);
        folio_putback_lru(folio);
      }
      src[i] &= ~MIGRATE_PFN_MIGRATE;
      ++restore;
      continue;
    }
    ++unmapped;
  }
  for (uint64_t i = 0; i < npages && restore > 0; ++i) {
    Page* page = migrate_pfn_to_page(ms, src[i]);
    if (page == nullptr || (src[i] & MIGRATE_PFN_MIGRATE)) continue;
    Folio* folio = page_folio(page);
    remove_migration_ptes(folio, folio);
    release_anon_vma(folio, &src[i]);
    src[i] = 0;
    folio_unlock(folio);
    folio_put(folio);
    --restore;
  }
  return unmapped;
}

// ---- commit ----

// migrate_vma_insert_page: a new page where the range had none (or the
// zero page), as do_anonymous_page maps one. Clears MIGRATE on failure.
void migrate_vma_insert_page(MigrateVma* m, VirtAddr addr, Page* page, uint64_t* src) {
  Folio* folio = page_folio(page);
  Vma* vma = m->vma;
  Mm& mm = vma->vm_mm();
  auto abort = [src] { *src &= ~MIGRATE_PFN_MIGRATE; };
  if (!vma_is_anonymous(vma)) return abort();
  auto pmd = pmd_alloc(mm, addr);
  if (!pmd.ok() || pmd_leaf(pmdp_get(*pmd))) return abort();
  if (!pte_alloc(mm, *pmd).ok() || !pmd_is_table(pmdp_get(*pmd))) return abort();
  if (!anon_vma_prepare(vma).ok()) return abort();
  folio_set_uptodate(folio);

  pte_t entry;
  if (is_device_private_page(page)) {
    const Pfn pfn = page_to_pfn(page);
    entry =
        swp_entry_to_pte(any(vma->vm_flags & VM_WRITE) ? make_writable_device_private_entry(pfn)
                                                       : make_readable_device_private_entry(pfn));
  } else {
    if (is_zone_device_page(page) && !is_device_coherent_page(page)) return abort();
    entry = pfn_pte(page_to_pfn(page), vma->vm_page_prot);
    if (any(vma->vm_flags & VM_WRITE)) entry = pte_mkwrite(pte_mkdirty(entry));
  }

  LockedPte lp = pte_offset_map_lock(mm, *pmd, addr);
  if (!lp) return abort();
  const pte_t orig = ptep_get(lp.pte);
  bool flush = false;
  if (pte_present(orig)) {
    if (!mm.ms().is_zero_pfn(pte_pfn(orig))) {
      pte_unmap_unlock(lp);
      return abort();  // a racing fault mapped a page
    }
    flush = true;
  } else if (!pte_none(orig)) {
    pte_unmap_unlock(lp);
    return abort();
  }
  mm.add_mm_counter(MM_ANONPAGES, 1);
  folio_add_new_anon_rmap(folio, vma, addr, RMAP_EXCLUSIVE);
  if (!is_zone_device_page(page)) folio_add_lru(folio);
  folio_get(folio);  // the mapping's
  if (flush) {
    ptep_get_and_clear(lp.pte);
    mm.tlb().flush();
  }
  set_pte(lp.pte, entry);
  pte_unmap_unlock(lp);
  *src = MIGRATE_PFN_MIGRATE;
}

void __migrate_device_pages(MemorySystem& ms, uint64_t* src, const uint64_t* dst, uint64_t npages,
                            MigrateVma* m) {
  MmuNotifierRange range;
  bool notified = false;
  for (uint64_t i = 0; i < npages; ++i) {
    Page* newpage = migrate_pfn_to_page(ms, dst[i]);
    Page* page = migrate_pfn_to_page(ms, src[i]);
    if (newpage == nullptr) {
      src[i] &= ~MIGRATE_PFN_MIGRATE;
      continue;
    }
    if (page == nullptr) {
      if (!(src[i] & MIGRATE_PFN_MIGRATE)) continue;
      // Only migrate_vma has holes to fill; the PFN variants never do.
      MM_BUG_ON(m == nullptr, newpage);
      const VirtAddr addr = m->start + i * PAGE_SIZE;
      if (!notified) {
        notified = true;
        range = MmuNotifierRange{
            &m->vma->vm_mm(),   addr,          m->end, MMU_NOTIFIER_RANGE_BLOCKABLE,
            MMU_NOTIFY_MIGRATE, m->pgmap_owner};
        mmu_notifier_invalidate_range_start(range);
      }
      migrate_vma_insert_page(m, addr, newpage, &src[i]);
      continue;
    }
    Folio* newfolio = page_folio(newpage);
    Folio* folio = page_folio(page);
    AddressSpace* mapping = folio_mapping(folio);
    if (is_device_private_page(newpage) || is_device_coherent_page(newpage)) {
      // Only anonymous memory moves to a device; pinmm has no swap cache
      // to drop, so anything with a mapping stays.
      if (mapping != nullptr) {
        src[i] &= ~MIGRATE_PFN_MIGRATE;
        continue;
      }
    } else if (is_zone_device_page(newpage)) {
      src[i] &= ~MIGRATE_PFN_MIGRATE;  // other ZONE_DEVICE types cannot take pages
      continue;
    }
    MM_BUG_ON(folio_test_writeback(folio), folio);
    const int extra = (m != nullptr && m->fault_page == page) ? 1 : 0;
    const int rc = folio_migrate_mapping(mapping, newfolio, folio, extra);
    if (rc != MIGRATEPAGE_SUCCESS) {
      src[i] &= ~MIGRATE_PFN_MIGRATE;
    } else {
      folio_migrate_flags(newfolio, folio);
    }
  }
  if (notified) mmu_notifier_invalidate_range_end(range);
}

}  // namespace

// ---- the driver-facing calls ----

int migrate_vma_setup(MigrateVma* args) {
  const int64_t nr_pages =
      static_cast<int64_t>(args->end.value() - args->start.value()) >> PAGE_SHIFT;
  args->start = VirtAddr(args->start.value() & PAGE_MASK);
  args->end = VirtAddr(args->end.value() & PAGE_MASK);
  Vma* vma = args->vma;
  if (vma == nullptr || is_vm_hugetlb_page(vma) || any(vma->vm_flags & VM_SPECIAL)) return -EINVAL;
  if (nr_pages <= 0) return -EINVAL;
  if (args->start < vma->vm_start || args->start >= vma->vm_end) return -EINVAL;
  if (args->end <= vma->vm_start || args->end > vma->vm_end) return -EINVAL;
  if (args->src == nullptr || args->dst == nullptr) return -EINVAL;
  if (args->fault_page != nullptr && !is_device_private_page(args->fault_page)) return -EINVAL;
  std::fill_n(args->src, nr_pages, 0);
  args->cpages = 0;
  args->npages = 0;
  migrate_vma_collect(args);
  if (args->cpages > 0)
    args->cpages =
        migrate_device_unmap(vma->vm_mm().ms(), args->src, args->npages, args->fault_page);
  return 0;
}

void migrate_vma_pages(MigrateVma* args) {
  __migrate_device_pages(args->vma->vm_mm().ms(), args->src, args->dst, args->npages, args);
}

void migrate_device_pages(MemorySystem& ms, uint64_t* src_pfns, uint64_t* dst_pfns,
                          uint64_t npages) {
  __migrate_device_pages(ms, src_pfns, dst_pfns, npages, nullptr);
}

void migrate_device_finalize(MemorySystem& ms, uint64_t* src_pfns, uint64_t* dst_pfns,
                             uint64_t npages) {
  for (uint64_t i = 0; i < npages; ++i) {
    Page* newpage = migrate_pfn_to_page(ms, dst_pfns[i]);
    Page* page = migrate_pfn_to_page(ms, src_pfns[i]);
    Folio* dst = newpage != nullptr ? page_folio(newpage) : nullptr;
    if (page == nullptr) {
      if (dst != nullptr) {
        folio_unlock(dst);
        folio_put(dst);
      }
      continue;
    }
    Folio* src = page_folio(page);
    if (!(src_pfns[i] & MIGRATE_PFN_MIGRATE) || dst == nullptr) {
      if (dst != nullptr) {
        folio_unlock(dst);
        folio_put(dst);
      }
      dst = src;
    }
    if (!is_zone_device_page(&dst->page)) folio_add_lru(dst);
    remove_migration_ptes(src, dst);
    release_anon_vma(src, &src_pfns[i]);
    folio_unlock(src);
    folio_put(src);
    if (dst != src) {
      folio_unlock(dst);
      folio_put(dst);
    }
  }
}

void migrate_vma_finalize(MigrateVma* args) {
  migrate_device_finalize(args->vma->vm_mm().ms(), args->src, args->dst, args->npages);
}

int migrate_device_range(MemorySystem& ms, uint64_t* src_pfns, Pfn start, uint64_t npages) {
  for (uint64_t i = 0; i < npages; ++i) {
    const Pfn pfn = start + PageCount(i);
    Page* page = ms.pfn_to_page(pfn);
    Folio* folio = page_folio(page);
    // folio_get_nontail_page: a reference only on a head page in use.
    if (page != &folio->page || !folio_try_get(folio)) {
      src_pfns[i] = 0;
      continue;
    }
    if (!folio_trylock(folio)) {
      src_pfns[i] = 0;
      folio_put(folio);
      continue;
    }
    src_pfns[i] = migrate_pfn(pfn) | MIGRATE_PFN_MIGRATE;
  }
  migrate_device_unmap(ms, src_pfns, npages, nullptr);
  return 0;
}

int migrate_device_coherent_folio(Folio* folio) {
  MemorySystem& ms = page_memory_system(&folio->page);
  MM_WARN_ON_ONCE(folio_test_large(folio), folio);
  folio_lock(folio);
  uint64_t src = migrate_pfn(folio_pfn(folio)) | MIGRATE_PFN_MIGRATE;
  migrate_device_unmap(ms, &src, 1, nullptr);
  if (!(src & MIGRATE_PFN_MIGRATE)) return -EBUSY;
  uint64_t dst = 0;
  Folio* dfolio = folio_alloc(ms, GFP_USER | __GFP_NOWARN, Order(0));
  if (dfolio != nullptr) {
    folio_lock(dfolio);
    dst = migrate_pfn(folio_pfn(dfolio));
  }
  migrate_device_pages(ms, &src, &dst, 1);
  if (src & MIGRATE_PFN_MIGRATE)
    ms.frames().copy(folio_pfn(dfolio), folio_pfn(folio), PageCount(1));
  migrate_device_finalize(ms, &src, &dst, 1);
  return (src & MIGRATE_PFN_MIGRATE) ? 0 : -EBUSY;
}

}  // namespace pinmm
