// Transparent huge pages at PMD level (mm/huge_memory.c): faults, the huge
// zero folio, COW, PMD splitting, and zap/copy/protect of PMD leaves.
//
// Each PMD leaf has a PTE table deposited with it (in a chain hanging off
// its PMD table page's index field), so that splitting never needs to
// allocate — pgtable_trans_huge_deposit/withdraw.
#include <algorithm>

#include "internal.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/huge_memory.h"
#include "pinmm/vm/migrate_entries.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

constexpr uint64_t kSpecialPmd = _PAGE_SPECIAL;

bool is_huge_zero_pmd(const Mm& mm, pmd_t pmd) {
  return pmd_leaf(pmd) && mm.vm().is_huge_zero_folio(
                              reinterpret_cast<const Folio*>(mm.ms().pfn_to_page(pmd_pfn(pmd))));
}

// ---- deposited page tables (PMD lock held) ----

void pgtable_trans_huge_deposit(Mm& mm, pmd_t* pmd, Page* pgtable) {
  Page* pmd_table = table_page_of(mm.ms(), pmd);
  pgtable->set_index(pmd_table->index());
  pmd_table->set_index(reinterpret_cast<uintptr_t>(pgtable));
}

Page* pgtable_trans_huge_withdraw(Mm& mm, pmd_t* pmd) {
  Page* pmd_table = table_page_of(mm.ms(), pmd);
  auto* pgtable = reinterpret_cast<Page*>(pmd_table->index());
  MM_BUG_ON(pgtable == nullptr, pmd_table);
  pmd_table->set_index(pgtable->index());
  pgtable->set_index(0);
  return pgtable;
}

Page* pte_alloc_one(Mm& mm) { return pagetable_alloc(mm.ms(), NUMA_NO_NODE, LockRank::kPteLock); }

pmd_t maybe_pmd_mkwrite(pmd_t pmd, const Vma* vma) {
  return any(vma->vm_flags & VM_WRITE) ? pmd_mkwrite(pmd) : pmd;
}

// The THP allocation mask (vma_thp_gfp_mask with the default "madvise"
// defrag): direct reclaim only for VM_HUGEPAGE areas.
Gfp vma_thp_gfp_mask(const Vma* vma) {
  return any(vma->vm_flags & VM_HUGEPAGE) ? GFP_TRANSHUGE : GFP_TRANSHUGE_LIGHT;
}

VmFault map_huge_zero(VmFaultInfo& vmf, VirtAddr haddr) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  Folio* zero = mm.vm().mm_get_huge_zero_folio(mm);
  if (zero == nullptr) return VM_FAULT_FALLBACK;
  Page* pgtable = pte_alloc_one(mm);
  if (pgtable == nullptr) return VM_FAULT_OOM;
  SpinLock* ptl = &pmd_lockptr(mm, vmf.pmd);
  ptl_lock(ptl);
  if (pmd_none(pmdp_get(vmf.pmd))) {
    pmd_t entry = pfn_pmd(folio_pfn(zero), vma_wrprotect_prot(vma));
    entry.val |= kSpecialPmd;
    pgtable_trans_huge_deposit(mm, vmf.pmd, pgtable);
    set_pmd(vmf.pmd, entry);
    pgtable = nullptr;
  }
  ptl_unlock(ptl);
  if (pgtable != nullptr) pagetable_free_rcu(pgtable);
  (void)haddr;
  return VM_FAULT_NONE;
}

}  // namespace

VmFault do_huge_pmd_anonymous_page(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  const VirtAddr haddr(vmf.address.value() & HPAGE_PMD_MASK);
  if (!anon_vma_prepare(vma).ok()) return VM_FAULT_OOM;
  if (!any(vmf.flags & FAULT_FLAG_WRITE) && mm.vm().thp_use_zero_page())
    return map_huge_zero(vmf, haddr);

  Folio* folio = folio_alloc(ms, vma_thp_gfp_mask(vma) | __GFP_ZERO, Order(HPAGE_PMD_ORDER));
  if (folio == nullptr) {
    ms.events().inc(THP_FAULT_FALLBACK);
    return VM_FAULT_FALLBACK;
  }
  ms.events().inc(THP_FAULT_ALLOC);
  folio_set_uptodate(folio);
  Page* pgtable = pte_alloc_one(mm);
  if (pgtable == nullptr) {
    folio_put(folio);
    return VM_FAULT_OOM;
  }
  SpinLock* ptl = &pmd_lockptr(mm, vmf.pmd);
  ptl_lock(ptl);
  if (!pmd_none(pmdp_get(vmf.pmd))) {
    ptl_unlock(ptl);
    pagetable_free_rcu(pgtable);
    folio_put(folio);
    return VM_FAULT_NONE;
  }
  pmd_t entry = pmd_mkyoung(pfn_pmd(folio_pfn(folio), vma->vm_page_prot));
  entry = maybe_pmd_mkwrite(pmd_mkdirty(entry), vma);
  folio_add_new_anon_rmap(folio, vma, haddr, RMAP_EXCLUSIVE);
  folio_add_lru(folio);  // large folios reach the LRU at once
  pgtable_trans_huge_deposit(mm, vmf.pmd, pgtable);
  set_pmd(vmf.pmd, entry);
  mm.add_mm_counter(MM_ANONPAGES, HPAGE_PMD_NR);
  ptl_unlock(ptl);
  return VM_FAULT_NONE;
}

void huge_pmd_set_accessed(VmFaultInfo& vmf) {
  Mm& mm = vmf.vma->vm_mm();
  SpinLock* ptl = &pmd_lockptr(mm, vmf.pmd);
  ptl_lock(ptl);
  if (pmdp_get(vmf.pmd) == vmf.orig_pmd) {
    pmd_t entry = pmd_mkyoung(vmf.orig_pmd);
    if (any(vmf.flags & FAULT_FLAG_WRITE)) entry = pmd_mkdirty(entry);
    set_pmd(vmf.pmd, entry);
  }
  ptl_unlock(ptl);
}

VmFault do_huge_pmd_wp_page(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  const bool unshare = any(vmf.flags & FAULT_FLAG_UNSHARE);
  const pmd_t orig = vmf.orig_pmd;
  if (is_huge_zero_pmd(mm, orig)) {
    split_huge_pmd(vma, vmf.pmd, vmf.address);
    return VM_FAULT_FALLBACK;
  }
  SpinLock* ptl = &pmd_lockptr(mm, vmf.pmd);
  ptl_lock(ptl);
  if (!(pmdp_get(vmf.pmd) == orig)) {
    ptl_unlock(ptl);
    return VM_FAULT_NONE;
  }
  Page* page = mm.ms().pfn_to_page(pmd_pfn(orig));
  Folio* folio = page_folio(page);
  bool reuse = PageAnonExclusive(page);
  if (!reuse) {
    if (!folio_trylock(folio)) {
      folio_get(folio);
      ptl_unlock(ptl);
      folio_lock(folio);
      ptl_lock(ptl);
      if (!(pmdp_get(vmf.pmd) == orig)) {
        ptl_unlock(ptl);
        folio_unlock(folio);
        folio_put(folio);
        return VM_FAULT_NONE;
      }
      folio_put(folio);
    }
    if (PageAnonExclusive(page)) {
      reuse = true;
    } else if (folio_ref_count(folio) == 1) {
      // Only our mapping holds it: take it over.
      folio_move_anon_rmap(folio, vma);
      page->set(PG_anon_exclusive);
      reuse = true;
    }
    folio_unlock(folio);
  }
  if (reuse) {
    if (!unshare) {
      pmd_t entry = pmd_mkyoung(orig);
      entry = maybe_pmd_mkwrite(pmd_mkdirty(entry), vma);
      set_pmd(vmf.pmd, entry);
    }
    ptl_unlock(ptl);
    return VM_FAULT_NONE;
  }
  ptl_unlock(ptl);
  // Shared with another mapping: COW at PTE level.
  split_huge_pmd(vma, vmf.pmd, vmf.address);
  return VM_FAULT_FALLBACK;
}

namespace {

// pmd lock held; `pmd` is a leaf or a migration entry.
void __split_huge_pmd_locked(Vma* vma, pmd_t* pmd, VirtAddr haddr) {
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  // Invalidate and flush first, so no CPU still writes through the huge
  // translation while the PTEs are built.
  const pmd_t old = entry_get_and_clear(pmd);
  mm.tlb().flush();
  Page* pgtable = pgtable_trans_huge_withdraw(mm, pmd);
  pte_t* ptes = table_entries<pte_t>(ms, page_to_pfn(pgtable));

  if (is_swap_pmd(old)) {
    // A PMD migration entry becomes 512 PTE migration entries.
    const swp_entry_t e = pmd_to_swp_entry(old);
    for (unsigned i = 0; i < HPAGE_PMD_NR; ++i) {
      swp_entry_t pe = swp_entry(swp_type(e), (swp_offset_pfn(e) + PageCount(i)).value());
      if (is_migration_entry_young(e)) pe = make_migration_entry_young(pe);
      if (is_migration_entry_dirty(e)) pe = make_migration_entry_dirty(pe);
      set_pte(ptes + i, swp_entry_to_pte(pe));
    }
    set_pmd(pmd, pmd_table(page_to_pfn(pgtable)));
    return;
  }
  if (is_huge_zero_pmd(mm, old)) {
    const pte_t zero = pte_mkspecial(pfn_pte(ms.zero_pfn(), vma_wrprotect_prot(vma)));
    for (unsigned i = 0; i < HPAGE_PMD_NR; ++i)
      set_pte(ptes + i, zero);
    set_pmd(pmd, pmd_table(page_to_pfn(pgtable)));
    return;
  }
  Page* page = ms.pfn_to_page(pmd_pfn(old));
  Folio* folio = page_folio(page);
  const bool anon = folio_test_anon(folio);
  const bool anon_exclusive = anon && PageAnonExclusive(page);
  // One reference per PTE instead of one for the PMD.
  folio_ref_add(folio, static_cast<int>(HPAGE_PMD_NR) - 1);
  if (anon) {
    folio_add_anon_rmap_ptes(folio, page, HPAGE_PMD_NR, vma, haddr,
                             anon_exclusive ? RMAP_EXCLUSIVE : RMAP_NONE);
  } else {
    folio_add_file_rmap_ptes(folio, page, HPAGE_PMD_NR, vma);
  }
  for (unsigned i = 0; i < HPAGE_PMD_NR; ++i) {
    pte_t pte = pfn_pte(page_to_pfn(page + i), vma->vm_page_prot);
    pte = pmd_write(old) ? pte_mkwrite(pte) : pte_wrprotect(pte);
    if (!pmd_young(old)) pte = pte_mkold(pte);
    if (pmd_dirty(old)) pte = pte_mkdirty(pte);
    set_pte(ptes + i, pte);
  }
  set_pmd(pmd, pmd_table(page_to_pfn(pgtable)));
  folio_remove_rmap_pmd(folio, page, vma);
  ms.events().inc(THP_SPLIT_PMD);
}

}  // namespace

void split_huge_pmd(Vma* vma, pmd_t* pmd, VirtAddr address) {
  Mm& mm = vma->vm_mm();
  const VirtAddr haddr(address.value() & HPAGE_PMD_MASK);
  const MmuNotifierRange range{
      &mm, haddr, haddr + HPAGE_PMD_SIZE, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_CLEAR, nullptr};
  mmu_notifier_invalidate_range_start(range);
  SpinLock* ptl = &pmd_lockptr(mm, pmd);
  ptl_lock(ptl);
  const pmd_t v = pmdp_get(pmd);
  if (pmd_leaf(v) || is_swap_pmd(v)) __split_huge_pmd_locked(vma, pmd, haddr);
  ptl_unlock(ptl);
  mmu_notifier_invalidate_range_end(range);
}

void vma_adjust_trans_huge(Vma* vma, VirtAddr at) {
  if (at.value() % HPAGE_PMD_SIZE == 0) return;
  pmd_t* pmd = pmd_offset(vma->vm_mm(), at);
  if (pmd == nullptr) return;
  const pmd_t v = pmdp_get(pmd);
  if (pmd_leaf(v) || is_swap_pmd(v)) split_huge_pmd(vma, pmd, at);
}

void zap_huge_pmd(Vma* vma, pmd_t* pmd, VirtAddr addr, MmuGather& tlb, const ZapDetails& details) {
  (void)addr;
  Mm& mm = vma->vm_mm();
  SpinLock* ptl = &pmd_lockptr(mm, pmd);
  ptl_lock(ptl);
  const pmd_t v = pmdp_get(pmd);
  if (!pmd_leaf(v) && !is_swap_pmd(v)) {
    ptl_unlock(ptl);
    return;
  }
  Folio* folio = nullptr;
  if (is_swap_pmd(v)) {
    folio = page_folio(mm.ms().pfn_to_page(swp_offset_pfn(pmd_to_swp_entry(v))));
  } else if (!is_huge_zero_pmd(mm, v)) {
    folio = page_folio(mm.ms().pfn_to_page(pmd_pfn(v)));
  }
  if (folio != nullptr && details.only_mapping != nullptr &&
      (folio_test_anon(folio) ? !details.even_cows
                              : folio_mapping(folio) != details.only_mapping)) {
    ptl_unlock(ptl);
    return;
  }
  entry_get_and_clear(pmd);
  tlb.need_flush();
  tlb.remove_table(pgtable_trans_huge_withdraw(mm, pmd));
  if (folio != nullptr) {
    mm.add_mm_counter(folio_test_anon(folio) ? MM_ANONPAGES : MM_FILEPAGES,
                      -static_cast<int64_t>(HPAGE_PMD_NR));
    if (pmd_leaf(v)) {
      folio_remove_rmap_pmd(folio, &folio->page, vma);
      tlb.remove_folio(folio);
    }
  }
  ptl_unlock(ptl);
}

int copy_huge_pmd(Vma* dst_vma, Vma* src_vma, pmd_t* dst_pmd, pmd_t* src_pmd, VirtAddr addr) {
  Mm& src_mm = src_vma->vm_mm();
  Mm& dst_mm = dst_vma->vm_mm();
  Page* pgtable = pte_alloc_one(dst_mm);
  if (pgtable == nullptr) return -ENOMEM;
  SpinLock* dst_ptl = &pmd_lockptr(dst_mm, dst_pmd);
  SpinLock* src_ptl = &pmd_lockptr(src_mm, src_pmd);
  ptl_lock(dst_ptl);
  ptl_lock_nested(src_ptl);
  pmd_t pmd = pmdp_get(src_pmd);
  int ret = 0;
  if (is_swap_pmd(pmd)) {
    swp_entry_t e = pmd_to_swp_entry(pmd);
    if (!is_readable_migration_entry(e) && is_cow_mapping(src_vma->vm_flags)) {
      e = make_readable_migration_entry(swp_offset_pfn(e));
      set_pmd(src_pmd, swp_entry_to_pmd(e));
    }
    dst_mm.add_mm_counter(MM_ANONPAGES, HPAGE_PMD_NR);
    pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
    set_pmd(dst_pmd, swp_entry_to_pmd(e));
    pgtable = nullptr;
  } else if (!pmd_leaf(pmd)) {
    ret = -EAGAIN;  // no longer huge: copy PTEs
  } else if (is_huge_zero_pmd(src_mm, pmd)) {
    // The source maps it, so it exists: this only takes the child's
    // reference (mm_get_huge_zero_folio cannot fail here).
    (void)dst_mm.vm().mm_get_huge_zero_folio(dst_mm);
    pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
    set_pmd(dst_pmd, pmd);
    pgtable = nullptr;
  } else {
    Page* page = src_mm.ms().pfn_to_page(pmd_pfn(pmd));
    Folio* folio = page_folio(page);
    folio_get(folio);
    if (folio_try_dup_anon_rmap_pmd(folio, page, src_vma) != 0) {
      // Maybe pinned: split, and let the PTE copy make the child's copies.
      folio_put(folio);
      ret = -EAGAIN;
    } else {
      dst_mm.add_mm_counter(MM_ANONPAGES, HPAGE_PMD_NR);
      pgtable_trans_huge_deposit(dst_mm, dst_pmd, pgtable);
      pgtable = nullptr;
      set_pmd(src_pmd, pmd_wrprotect(pmd));
      set_pmd(dst_pmd, pmd_mkold(pmd_wrprotect(pmd)));
    }
  }
  ptl_unlock(src_ptl);
  ptl_unlock(dst_ptl);
  if (pgtable != nullptr) pagetable_free_rcu(pgtable);
  if (ret == -EAGAIN && pmd_leaf(pmd)) split_huge_pmd(src_vma, src_pmd, addr);
  return ret;
}

void change_huge_pmd(Vma* vma, pmd_t* pmd, VirtAddr addr) {
  (void)addr;
  Mm& mm = vma->vm_mm();
  SpinLock* ptl = &pmd_lockptr(mm, pmd);
  ptl_lock(ptl);
  const pmd_t old = pmdp_get(pmd);
  if (pmd_leaf(old)) {
    if (is_huge_zero_pmd(mm, old)) {
      set_pmd(pmd, pmd_t{pmd_modify(old, vma_wrprotect_prot(vma)).val | kSpecialPmd});
    } else {
      pmd_t entry = pmd_modify(old, vma->vm_page_prot);
      // An exclusive anon THP may become writable right away.
      Page* head = mm.ms().pfn_to_page(pmd_pfn(old));
      if (any(vma->vm_flags & VM_WRITE) && !any(vma->vm_flags & VM_SHARED) &&
          PageAnonExclusive(head)) {
        entry = pmd_mkwrite(entry);
      }
      set_pmd(pmd, entry);
    }
  }
  ptl_unlock(ptl);
}

}  // namespace pinmm

namespace pinmm {

namespace {

// __split_huge_page_tail: the state a new small folio inherits from the
// head (PG_anon_exclusive stays per page).
constexpr uint64_t kSplitCopyFlags =
    (uint64_t{1} << PG_referenced) | (uint64_t{1} << PG_swapbacked) | (uint64_t{1} << PG_mlocked) |
    (uint64_t{1} << PG_uptodate) | (uint64_t{1} << PG_active) | (uint64_t{1} << PG_workingset) |
    (uint64_t{1} << PG_locked) | (uint64_t{1} << PG_unevictable) | (uint64_t{1} << PG_dirty) |
    (uint64_t{1} << PG_young) | (uint64_t{1} << PG_idle);

// can_split_folio: every reference but the caller's is a mapping's.
bool can_split_folio(const Folio* folio) {
  return folio_mapcount(folio) == folio_ref_count(folio) - 1;
}

}  // namespace

int split_folio_to_list(Folio* folio, ListHead* list) {
  MM_BUG_ON(!folio_test_locked(folio), folio);
  MemorySystem& ms = page_memory_system(&folio->page);
  if (!folio_test_anon(folio) || folio_test_hugetlb(folio) ||
      folio_order(folio) != HPAGE_PMD_ORDER || list == nullptr)
    return -EINVAL;
  if (folio_test_lru(folio)) return -EBUSY;
  int rc = 0;
  AnonVma* anon_vma = folio_get_anon_vma(folio);
  if (anon_vma == nullptr) {
    rc = -EBUSY;
  } else if (ms.injector().should_fail(inject_point_vm::kSplitFolio) || !can_split_folio(folio)) {
    rc = -EAGAIN;
  }
  if (rc != 0) {
    if (anon_vma != nullptr) anon_vma->put();
    ms.events().inc(THP_SPLIT_PAGE_FAILED);
    return rc;
  }

  // unmap_folio: every mapping becomes a migration entry (PMDs split first).
  {
    TlbFlushBatch batch;
    try_to_migrate(folio, TTU_SPLIT_HUGE_PMD | TTU_BATCH_FLUSH, &batch);
  }
  if (folio_mapped(folio) || !folio_ref_freeze(folio, 1)) {
    remove_migration_ptes(folio, folio);
    anon_vma->put();
    ms.events().inc(THP_SPLIT_PAGE_FAILED);
    return -EAGAIN;
  }

  const unsigned order = folio_order(folio);
  const uint64_t nr = folio_nr_pages(folio);
  const uint64_t head_flags = folio->page.flags();
  const uintptr_t mapping = folio->page.mapping();
  const uint64_t index = folio->page.index();
  split_compound_page(&folio->page, order);
  for (uint64_t i = 1; i < nr; ++i) {
    Page* p = &folio->page + i;
    p->store_flags(p->flags() | (head_flags & kSplitCopyFlags));
    p->set_index(index + i);
    p->set_mapping(mapping);
    Folio* tail = page_folio(p);
    folio_ref_unfreeze(tail, 1);
    folio_get(tail);  // the isolation reference of the new folio
    list_add_tail(&p->lru, list);
  }
  folio_ref_unfreeze(folio, 1);

  // remap_page: each new folio is mapped where its migration entries are.
  for (uint64_t i = 0; i < nr; ++i) {
    Folio* f = page_folio(&folio->page + i);
    remove_migration_ptes(f, f);
  }
  anon_vma->put();
  ms.events().inc(THP_SPLIT_PAGE);
  for (uint64_t i = 1; i < nr; ++i) {
    Folio* f = page_folio(&folio->page + i);
    folio_unlock(f);
    folio_put(f);  // the split's own reference; the list's stays
  }
  return 0;
}

}  // namespace pinmm
