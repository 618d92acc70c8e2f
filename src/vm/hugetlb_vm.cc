// hugetlb mappings (the fault, COW, fork and unmap side of mm/hugetlb.c).
//
// A hugetlb VMA maps huge pages of its hugetlbfs file's size with one leaf
// entry each: a PMD for 2 MiB pages, a PUD for 1 GiB pages. Private
// mappings get anonymous hugetlb folios (COW copies a whole huge page);
// shared ones map the file's page cache. Reservations are made at mmap
// (hugetlb_reserve_pages) and consumed by faults, so that a fault on a
// reserved range never finds the pool empty.
#include <cstring>

#include "internal.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

unsigned huge_page_order_of(const Vma* vma) { return vma->vm_file->huge_order(); }

namespace {

uint64_t huge_page_size(const Vma* vma) {
  return uint64_t{1} << (huge_page_order_of(vma) + PAGE_SHIFT);
}

Hstate& hstate_of(const Vma* vma) {
  return *vma->vm_mm().ms().hugetlb().hstate_for_order(huge_page_order_of(vma));
}

// A huge leaf entry: a PMD or PUD slot seen through one interface.
struct HugeEntry {
  pmd_t* pmd = nullptr;
  pud_t* pud = nullptr;
  uint64_t get() const { return pmd != nullptr ? pmdp_get(pmd).val : pudp_get(pud).val; }
  void set(uint64_t v) const {
    if (pmd != nullptr)
      set_pmd(pmd, pmd_t{v});
    else
      set_pud(pud, pud_t{v});
  }
  uint64_t get_and_clear() const {
    return pmd != nullptr ? entry_get_and_clear(pmd).val : entry_get_and_clear(pud).val;
  }
  SpinLock* lock(const Mm& mm) const {
    return pmd != nullptr ? &pmd_lockptr(mm, pmd) : &pud_lockptr(mm, pud);
  }
  explicit operator bool() const { return pmd != nullptr || pud != nullptr; }
};

Result<HugeEntry> huge_entry_alloc(Vma* vma, VirtAddr haddr) {
  Mm& mm = vma->vm_mm();
  if (huge_page_order_of(vma) == HPAGE_PUD_ORDER)
    return HugeEntry{nullptr, TRY(pud_alloc(mm, haddr))};
  pmd_t* pmd = TRY(pmd_alloc(mm, haddr));
  if (pmd == nullptr) return Errno(EFAULT);
  return HugeEntry{pmd, nullptr};
}

HugeEntry huge_entry_offset(Vma* vma, VirtAddr haddr) {
  Mm& mm = vma->vm_mm();
  if (huge_page_order_of(vma) == HPAGE_PUD_ORDER) return HugeEntry{nullptr, pud_offset(mm, haddr)};
  return HugeEntry{pmd_offset(mm, haddr), nullptr};
}

uint64_t make_huge_entry(const Vma* vma, Pfn pfn, bool writable) {
  uint64_t v = (pfn.value() << PAGE_SHIFT) | vma->vm_page_prot.val | _PAGE_PSE | _PAGE_ACCESSED;
  if (writable)
    v |= _PAGE_RW | _PAGE_DIRTY;
  else
    v &= ~_PAGE_RW;
  return v;
}

bool huge_present(uint64_t v) { return v & _PAGE_PRESENT; }

// A pool folio of `h`, consuming a reservation if `use_reserve`; without
// one, only a free page nobody has reserved. nullptr when there is none.
Folio* alloc_hugetlb_folio_from(HugetlbPools& pools, Hstate& h, bool use_reserve) {
  {
    MutexGuard g(pools.hugetlb_lock);
    if (use_reserve) {
      MM_BUG_ON(h.resv_huge_pages == 0);
      --h.resv_huge_pages;
    } else if (h.free_huge_pages <= h.resv_huge_pages) {
      return nullptr;  // every free page is promised to someone
    }
  }
  Folio* folio = pools.dequeue_hugetlb_folio_nodemask(h, NUMA_NO_NODE);
  if (folio == nullptr && use_reserve) {
    MutexGuard g(pools.hugetlb_lock);
    ++h.resv_huge_pages;
  }
  return folio;
}

// alloc_hugetlb_folio: a pool folio for this VMA, consuming its
// reservation if it has one. nullptr when the pool is empty.
Folio* alloc_hugetlb_folio(Vma* vma, bool use_reserve) {
  return alloc_hugetlb_folio_from(vma->vm_mm().ms().hugetlb(), hstate_of(vma), use_reserve);
}

bool take_vma_reservation(Vma* vma, AddressSpace* mapping) {
  if (any(vma->vm_flags & VM_MAYSHARE)) {
    File& file = mapping->host();
    HugetlbPools& pools = vma->vm_mm().ms().hugetlb();
    MutexGuard g(pools.hugetlb_lock);
    if (file.reserved_huge_pages == 0) return false;
    --file.reserved_huge_pages;
    return true;
  }
  if (vma->hugetlb_resv == 0) return false;
  --vma->hugetlb_resv;
  return true;
}

void copy_huge_page(MemorySystem& ms, Folio* dst, Folio* src) {
  ms.frames().copy(folio_pfn(dst), folio_pfn(src), PageCount(folio_nr_pages(src)));
}

VmFault hugetlb_wp(Vma* vma, VirtAddr haddr, const HugeEntry& entry, FaultFlags flags);

VmFault hugetlb_no_page(Vma* vma, VirtAddr haddr, const HugeEntry& entry, FaultFlags flags) {
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  File& file = *vma->vm_file;
  const uint64_t index = linear_page_index(vma, haddr);
  const bool shared = any(vma->vm_flags & VM_MAYSHARE);
  const bool write = any(flags & FAULT_FLAG_WRITE);
  if ((index << PAGE_SHIFT) >= file.size()) return VM_FAULT_SIGBUS;

  // The page cache first (a private mapping may read a file's pages), else
  // a new folio: into the page cache if shared, anonymous if private.
  Folio* folio = filemap_get_folio(file.mapping(), index);
  bool anon = false;
  if (folio == nullptr) {
    if (!shared && !anon_vma_prepare(vma).ok()) return VM_FAULT_OOM;
    folio = alloc_hugetlb_folio(vma, take_vma_reservation(vma, &file.mapping()));
    if (folio == nullptr) return VM_FAULT_SIGBUS;  // the kernel's -ENOSPC
    ms.frames().zero(folio_pfn(folio), PageCount(folio_nr_pages(folio)));
    folio_set_uptodate(folio);
    if (shared) {
      folio_lock(folio);
      const bool added = filemap_add_folio(file.mapping(), folio, index).ok();
      folio_unlock(folio);
      if (!added) {
        folio_put(folio);
        return VM_FAULT_NONE;  // raced with another fault: refault
      }
      folio_set_hugetlb_migratable(folio);
    } else {
      anon = true;
    }
  }
  SpinLock* ptl = entry.lock(mm);
  ptl_lock(ptl);
  if (entry.get() != 0) {
    ptl_unlock(ptl);
    folio_put(folio);
    return VM_FAULT_NONE;
  }
  bool writable;
  if (anon) {
    hugetlb_add_new_anon_rmap(folio, vma, haddr);
    writable = write && any(vma->vm_flags & VM_WRITE);
  } else {
    hugetlb_add_file_rmap(folio);
    writable = shared && any(vma->vm_flags & VM_WRITE);
  }
  entry.set(make_huge_entry(vma, folio_pfn(folio), writable));
  ptl_unlock(ptl);
  if (!anon && !shared && write) return hugetlb_wp(vma, haddr, entry, flags);  // COW right away
  return VM_FAULT_NONE;
}

VmFault hugetlb_wp(Vma* vma, VirtAddr haddr, const HugeEntry& entry, FaultFlags flags) {
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  const bool unshare = any(flags & FAULT_FLAG_UNSHARE);
  SpinLock* ptl = entry.lock(mm);
  ptl_lock(ptl);
  const uint64_t old = entry.get();
  if (!huge_present(old) || (old & _PAGE_RW)) {
    ptl_unlock(ptl);
    return VM_FAULT_NONE;
  }
  Folio* old_folio = page_folio(ms.pfn_to_page(entry_pfn(pte_t{old})));
  if (any(vma->vm_flags & VM_MAYSHARE)) {
    // Shared: just make it writable.
    entry.set(old | _PAGE_RW | _PAGE_DIRTY);
    ptl_unlock(ptl);
    return VM_FAULT_NONE;
  }
  if (folio_test_anon(old_folio) &&
      (PageAnonExclusive(&old_folio->page) || folio_mapcount(old_folio) == 1)) {
    old_folio->page.set(PG_anon_exclusive);
    folio_move_anon_rmap(old_folio, vma);
    if (!unshare) entry.set(old | _PAGE_RW | _PAGE_DIRTY);
    ptl_unlock(ptl);
    return VM_FAULT_NONE;
  }
  folio_get(old_folio);
  ptl_unlock(ptl);

  if (!anon_vma_prepare(vma).ok()) {
    folio_put(old_folio);
    return VM_FAULT_OOM;
  }
  Folio* copy = alloc_hugetlb_folio(vma, take_vma_reservation(vma, nullptr));
  if (copy == nullptr) {
    folio_put(old_folio);
    return VM_FAULT_SIGBUS;
  }
  copy_huge_page(ms, copy, old_folio);
  folio_set_uptodate(copy);
  const MmuNotifierRange range{
      &mm,    haddr, haddr + huge_page_size(vma), MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_CLEAR,
      nullptr};
  mmu_notifier_invalidate_range_start(range);
  ptl_lock(ptl);
  Folio* to_put = copy;
  if (entry.get() == old) {
    entry.get_and_clear();
    mm.tlb().flush();
    hugetlb_add_new_anon_rmap(copy, vma, haddr);
    entry.set(make_huge_entry(vma, folio_pfn(copy), !unshare && any(vma->vm_flags & VM_WRITE)));
    hugetlb_remove_rmap(old_folio);
    to_put = old_folio;  // the old mapping's reference
  }
  ptl_unlock(ptl);
  mmu_notifier_invalidate_range_end(range);
  folio_put(to_put);
  folio_put(old_folio);
  return VM_FAULT_NONE;
}

}  // namespace

Folio* alloc_hugetlb_folio_for_file(File& file) {
  HugetlbPools& pools = file.vm().ms().hugetlb();
  Hstate& h = *pools.hstate_for_order(file.huge_order());
  bool use_reserve = false;
  {
    MutexGuard g(pools.hugetlb_lock);
    if (file.reserved_huge_pages > 0) {
      --file.reserved_huge_pages;
      use_reserve = true;
    }
  }
  Folio* folio = alloc_hugetlb_folio_from(pools, h, use_reserve);
  if (folio == nullptr && use_reserve) {
    MutexGuard g(pools.hugetlb_lock);
    ++file.reserved_huge_pages;
  }
  return folio;
}

VmFault hugetlb_fault(Vma* vma, VirtAddr address, FaultFlags flags) {
  Mm& mm = vma->vm_mm();
  const VirtAddr haddr(address.value() & ~(huge_page_size(vma) - 1));
  auto entry = huge_entry_alloc(vma, haddr);
  if (!entry.ok()) return VM_FAULT_OOM;
  const uint64_t v = entry->get();
  if (v == 0) return hugetlb_no_page(vma, haddr, *entry, flags);
  if (!huge_present(v)) {
    const swp_entry_t e{v};
    if (is_migration_entry(e) && entry->pmd != nullptr) pmd_migration_entry_wait(mm, entry->pmd);
    if (is_hwpoison_entry(e)) return VM_FAULT_HWPOISON_LARGE;
    return VM_FAULT_NONE;
  }
  if (any(flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE)) && !(v & _PAGE_RW)) {
    return hugetlb_wp(vma, haddr, *entry, flags);
  }
  SpinLock* ptl = entry->lock(mm);
  ptl_lock(ptl);
  if (entry->get() == v)
    entry->set(v | _PAGE_ACCESSED | (any(flags & FAULT_FLAG_WRITE) ? _PAGE_DIRTY : 0));
  ptl_unlock(ptl);
  return VM_FAULT_NONE;
}

Result<void> copy_hugetlb_page_range(Vma* dst_vma, Vma* src_vma) {
  Mm& src_mm = src_vma->vm_mm();
  MemorySystem& ms = src_mm.ms();
  const uint64_t sz = huge_page_size(src_vma);
  const bool cow = is_cow_mapping(src_vma->vm_flags);
  if (cow) src_mm.write_protect_seq.write_begin();
  Result<void> result;
  for (VirtAddr addr = src_vma->vm_start; addr < src_vma->vm_end; addr = addr + sz) {
    const HugeEntry src = huge_entry_offset(src_vma, addr);
    if (!src || src.get() == 0) continue;
    auto dst = huge_entry_alloc(dst_vma, addr);
    if (!dst.ok()) {
      result = dst.error();
      break;
    }
    SpinLock* src_ptl = src.lock(src_mm);
    ptl_lock(src_ptl);
    uint64_t v = src.get();
    if (!huge_present(v)) {
      swp_entry_t e{v};
      if (is_migration_entry(e) && !is_readable_migration_entry(e) && cow) {
        e = make_readable_migration_entry(swp_offset_pfn(e));
        src.set(e.val);
      }
      dst->set(e.val);
      ptl_unlock(src_ptl);
      continue;
    }
    Folio* folio = page_folio(ms.pfn_to_page(entry_pfn(pte_t{v})));
    folio_get(folio);
    if (folio_test_anon(folio)) {
      if (PageAnonExclusive(&folio->page) && folio_needs_cow_for_dma(src_vma, folio)) {
        // Maybe pinned: the child gets its own copy now.
        ptl_unlock(src_ptl);
        folio_put(folio);
        if (!anon_vma_prepare(dst_vma).ok()) {
          result = Errno(ENOMEM);
          break;
        }
        Folio* copy = alloc_hugetlb_folio(dst_vma, false);
        if (copy == nullptr) {
          result = Errno(ENOMEM);
          break;
        }
        copy_huge_page(ms, copy, folio);
        folio_set_uptodate(copy);
        hugetlb_add_new_anon_rmap(copy, dst_vma, addr);
        dst->set(make_huge_entry(dst_vma, folio_pfn(copy), any(dst_vma->vm_flags & VM_WRITE)));
        continue;
      }
      folio->page.clear(PG_anon_exclusive);
      hugetlb_add_anon_rmap(folio, dst_vma, addr, RMAP_NONE);
    } else {
      hugetlb_add_file_rmap(folio);
    }
    if (cow && (v & _PAGE_RW)) {
      v &= ~_PAGE_RW;
      src.set(v);
    }
    dst->set(v);
    ptl_unlock(src_ptl);
  }
  if (cow) {
    src_mm.write_protect_seq.write_end();
    src_mm.tlb().flush();
  }
  return result;
}

void unmap_hugepage_range(Vma* vma, VirtAddr start, VirtAddr end, MmuGather& tlb,
                          const ZapDetails& details) {
  Mm& mm = vma->vm_mm();
  const uint64_t sz = huge_page_size(vma);
  for (VirtAddr addr(start.value() & ~(sz - 1)); addr < end; addr = addr + sz) {
    const HugeEntry e = huge_entry_offset(vma, addr);
    if (!e) continue;
    SpinLock* ptl = e.lock(mm);
    ptl_lock(ptl);
    const uint64_t v = e.get();
    if (v == 0) {
      ptl_unlock(ptl);
      continue;
    }
    if (!huge_present(v)) {
      e.get_and_clear();
      ptl_unlock(ptl);
      continue;
    }
    Folio* folio = page_folio(mm.ms().pfn_to_page(entry_pfn(pte_t{v})));
    if (details.only_mapping != nullptr &&
        (folio_test_anon(folio) ? !details.even_cows
                                : folio_mapping(folio) != details.only_mapping)) {
      ptl_unlock(ptl);
      continue;
    }
    e.get_and_clear();
    tlb.need_flush();
    if ((v & _PAGE_DIRTY) && !folio_test_anon(folio)) folio_mark_dirty(folio);
    hugetlb_remove_rmap(folio);
    tlb.remove_folio(folio);
    ptl_unlock(ptl);
  }
}

void hugetlb_change_protection(Vma* vma, VirtAddr start, VirtAddr end, MmuGather& tlb) {
  Mm& mm = vma->vm_mm();
  const uint64_t sz = huge_page_size(vma);
  for (VirtAddr addr = start; addr < end; addr = addr + sz) {
    const HugeEntry e = huge_entry_offset(vma, addr);
    if (!e) continue;
    SpinLock* ptl = e.lock(mm);
    ptl_lock(ptl);
    const uint64_t v = e.get();
    if (huge_present(v)) {
      const uint64_t keep = PTE_PFN_MASK | _PAGE_DIRTY | _PAGE_ACCESSED | _PAGE_PSE;
      e.set((v & keep) | vma->vm_page_prot.val);
    } else if (v != 0 && !any(vma->vm_flags & VM_WRITE) &&
               is_writable_migration_entry(swp_entry_t{v})) {
      e.set(make_readable_migration_entry(swp_offset_pfn(swp_entry_t{v})).val);
    }
    ptl_unlock(ptl);
  }
  tlb.need_flush();
}

Result<void> hugetlb_reserve_pages(Vma* vma) {
  if (any(vma->vm_flags & VM_NORESERVE)) return {};
  HugetlbPools& pools = vma->vm_mm().ms().hugetlb();
  Hstate& h = hstate_of(vma);
  const uint64_t need = vma->size() / huge_page_size(vma);
  MutexGuard g(pools.hugetlb_lock);
  if (h.free_huge_pages - h.resv_huge_pages < need) return Errno(ENOMEM);
  h.resv_huge_pages += need;
  if (any(vma->vm_flags & VM_MAYSHARE)) {
    vma->vm_file->reserved_huge_pages += need;
  } else {
    vma->hugetlb_resv = need;
  }
  return {};
}

void hugetlb_vma_release(Vma* vma) {
  if (vma->hugetlb_resv == 0) return;
  HugetlbPools& pools = vma->vm_mm().ms().hugetlb();
  MutexGuard g(pools.hugetlb_lock);
  hstate_of(vma).resv_huge_pages -= vma->hugetlb_resv;
  vma->hugetlb_resv = 0;
}

}  // namespace pinmm
