#include "pinmm/vm/walk.h"

#include "pinmm/base/rcu.h"

namespace pinmm {

pgd_t* pgd_offset(const Mm& mm, VirtAddr addr) { return mm.pgd() + pgd_index(addr); }

pud_t* pud_offset(const Mm& mm, VirtAddr addr) {
  const pgd_t pgd = pgdp_get(pgd_offset(mm, addr));
  if (!pgd_present(pgd)) return nullptr;
  return table_entries<pud_t>(mm.ms(), entry_pfn(pgd)) + pud_index(addr);
}

pmd_t* pmd_offset(const Mm& mm, VirtAddr addr) {
  pud_t* pud = pud_offset(mm, addr);
  if (pud == nullptr) return nullptr;
  const pud_t pudval = pudp_get(pud);
  if (!pud_present(pudval) || pud_leaf(pudval)) return nullptr;
  return table_entries<pmd_t>(mm.ms(), pud_pfn(pudval)) + pmd_index(addr);
}

pte_t* pte_offset_map(const Mm& mm, pmd_t pmdval, VirtAddr addr) {
  MM_DCHECK(pmd_is_table(pmdval));
  return table_entries<pte_t>(mm.ms(), pmd_pfn(pmdval)) + pte_index(addr);
}

Result<pud_t*> pud_alloc(Mm& mm, VirtAddr addr) {
  pgd_t* pgd = pgd_offset(mm, addr);
  if (pgd_none(pgdp_get(pgd))) {
    Page* table = pagetable_alloc(mm.ms(), NUMA_NO_NODE, LockRank::kPudLock);
    if (table == nullptr) return Errno(ENOMEM);
    bool used = false;
    {
      SpinGuard g(mm.page_table_lock);
      if (pgd_none(pgdp_get(pgd))) {
        set_pgd(pgd, pgd_table(page_to_pfn(table)));
        used = true;
      }
    }
    if (!used) pagetable_free_rcu(table);
  }
  return table_entries<pud_t>(mm.ms(), entry_pfn(pgdp_get(pgd))) + pud_index(addr);
}

Result<pmd_t*> pmd_alloc(Mm& mm, VirtAddr addr) {
  pud_t* pud = TRY(pud_alloc(mm, addr));
  if (pud_none(pudp_get(pud))) {
    Page* table = pagetable_alloc(mm.ms(), NUMA_NO_NODE, LockRank::kPmdLock);
    if (table == nullptr) return Errno(ENOMEM);
    bool used = false;
    {
      SpinGuard g(mm.page_table_lock);
      if (pud_none(pudp_get(pud))) {
        set_pud(pud, pud_table(page_to_pfn(table)));
        used = true;
      }
    }
    if (!used) pagetable_free_rcu(table);
  }
  const pud_t pudval = pudp_get(pud);
  if (pud_leaf(pudval)) return static_cast<pmd_t*>(nullptr);  // a 1 GiB leaf: no PMD level here
  return table_entries<pmd_t>(mm.ms(), pud_pfn(pudval)) + pmd_index(addr);
}

Result<void> pte_alloc(Mm& mm, pmd_t* pmd) {
  if (!pmd_none(pmdp_get(pmd))) return {};
  Page* table = pagetable_alloc(mm.ms(), NUMA_NO_NODE, LockRank::kPteLock);
  if (table == nullptr) return Errno(ENOMEM);
  bool used = false;
  {
    SpinLock* ptl = &pmd_lockptr(mm, pmd);
    ptl_lock(ptl);
    if (pmd_none(pmdp_get(pmd))) {
      set_pmd(pmd, pmd_table(page_to_pfn(table)));
      used = true;
    }
    ptl_unlock(ptl);
  }
  if (!used) pagetable_free_rcu(table);
  return {};
}

SpinLock& pmd_lockptr(const Mm& mm, const pmd_t* pmd) {
  return ptlock_of(table_page_of(mm.ms(), pmd));
}

SpinLock& pte_lockptr(const Mm& mm, pmd_t pmdval) {
  return ptlock_of(mm.ms().pfn_to_page(pmd_pfn(pmdval)));
}

LockedPte pte_offset_map_lock(const Mm& mm, pmd_t* pmd, VirtAddr addr) {
  for (;;) {
    // As __pte_offset_map_lock: the table (and its split lock) is freed
    // through RCU, so between reading the PMD and holding the lock it must
    // be looked at inside a read section; once the lock is held and the PMD
    // still points at the table, whoever frees it must get past us first.
    rcu::ReadSection rs;
    const pmd_t pmdval = pmdp_get(pmd);
    if (!pmd_is_table(pmdval)) return {};
    SpinLock* ptl = &pte_lockptr(mm, pmdval);
    ptl_lock(ptl);
    if (pmdp_get(pmd) == pmdval) return {pte_offset_map(mm, pmdval, addr), ptl};
    ptl_unlock(ptl);  // the PMD changed under us: look again
  }
}

void pte_unmap_unlock(LockedPte& locked) {
  if (locked.ptl != nullptr) ptl_unlock(locked.ptl);
  locked = {};
}

}  // namespace pinmm
