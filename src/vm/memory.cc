// Faults, zapping, page-table freeing, fork's page-table copy and
// mprotect's entry changes (mm/memory.c, mm/mprotect.c, parts of mm/gup.c).
#include <algorithm>

#include "internal.h"
#include "pinmm/base/task.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

MmCounter mm_counter_of(const Folio* folio) {
  if (folio_test_anon(folio)) return MM_ANONPAGES;
  return folio_test_swapbacked(folio) ? MM_SHMEMPAGES : MM_FILEPAGES;
}

bool fault_write(const VmFaultInfo& vmf) { return any(vmf.flags & FAULT_FLAG_WRITE); }
bool fault_unshare(const VmFaultInfo& vmf) { return any(vmf.flags & FAULT_FLAG_UNSHARE); }

pte_t maybe_mkwrite(pte_t pte, const Vma* vma) {
  return any(vma->vm_flags & VM_WRITE) ? pte_mkwrite(pte) : pte;
}

enum class NeedZero : bool { kNo, kYes };

// folio_prealloc: a new anonymous folio for the VMA (GFP_HIGHUSER_MOVABLE,
// zeroed if asked; a COW copy is about to be overwritten).
Folio* folio_prealloc(Vma* vma, NeedZero need_zero) {
  const Gfp gfp = GFP_HIGHUSER_MOVABLE | (need_zero == NeedZero::kYes ? __GFP_ZERO : GFP_NONE);
  return folio_alloc(vma->vm_mm().ms(), gfp, Order(0));
}

}  // namespace

Page* vm_normal_page(const Vma* vma, VirtAddr addr, pte_t pte) {
  (void)addr;
  if (pte_special(pte)) return nullptr;
  const MemorySystem& ms = vma->vm_mm().ms();
  const Pfn pfn = pte_pfn(pte);
  if (ms.is_zero_pfn(pfn) || !ms.pfn_valid(pfn)) return nullptr;
  return ms.pfn_to_page(pfn);
}

bool thp_vma_allowable(const Vma* vma, VirtAddr addr) {
  if (!vma_is_anonymous(vma) ||
      any(vma->vm_flags & (VM_SHARED | VM_SPECIAL | VM_HUGETLB | VM_NOHUGEPAGE))) {
    return false;
  }
  switch (vma->vm_mm().vm().thp_enabled()) {
    case ThpMode::kNever:
      return false;
    case ThpMode::kMadvise:
      if (!any(vma->vm_flags & VM_HUGEPAGE)) return false;
      break;
    case ThpMode::kAlways:
      break;
  }
  const VirtAddr haddr(addr.value() & HPAGE_PMD_MASK);
  return haddr >= vma->vm_start && haddr + HPAGE_PMD_SIZE <= vma->vm_end;
}

namespace {
bool vma_wants_writenotify(const Vma* vma) {
  return any(vma->vm_flags & VM_SHARED) && any(vma->vm_flags & VM_WRITE) &&
         vma->vm_ops != nullptr && vma->vm_ops->page_mkwrite != nullptr;
}
}  // namespace

pgprot_t vma_wrprotect_prot(const Vma* vma) { return {vma->vm_page_prot.val & ~_PAGE_RW}; }

void vma_set_page_prot(Vma* vma) {
  VmFlags flags = vma->vm_flags;
  if (vma_wants_writenotify(vma)) flags &= ~VM_SHARED;  // write-protected until page_mkwrite
  vma->vm_page_prot = vm_get_page_prot(flags);
}

// ---- anonymous faults ----

VmFault do_anonymous_page(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  if (any(vma->vm_flags & VM_SHARED)) return VM_FAULT_SIGBUS;  // shared anon is shmem
  if (!pte_alloc(mm, vmf.pmd).ok()) return VM_FAULT_OOM;

  if (!fault_write(vmf)) {
    // Read fault: map the shared zero page, read-only and special.
    const pte_t entry = pte_mkspecial(pfn_pte(mm.ms().zero_pfn(), vma_wrprotect_prot(vma)));
    LockedPte lp = pte_offset_map_lock(mm, vmf.pmd, vmf.address);
    if (!lp) return VM_FAULT_NONE;  // the PMD became huge: refault
    if (pte_none(ptep_get(lp.pte))) set_pte(lp.pte, entry);
    pte_unmap_unlock(lp);
    return VM_FAULT_NONE;
  }

  if (!anon_vma_prepare(vma).ok()) return VM_FAULT_OOM;
  Folio* folio = folio_prealloc(vma, NeedZero::kYes);
  if (folio == nullptr) return VM_FAULT_OOM;
  folio_set_uptodate(folio);
  pte_t entry = pte_mkyoung(pfn_pte(folio_pfn(folio), vma->vm_page_prot));
  if (any(vma->vm_flags & VM_WRITE)) entry = pte_mkwrite(pte_mkdirty(entry));

  LockedPte lp = pte_offset_map_lock(mm, vmf.pmd, vmf.address);
  if (!lp || !pte_none(ptep_get(lp.pte))) {
    pte_unmap_unlock(lp);
    folio_put(folio);  // someone else mapped it first
    return VM_FAULT_NONE;
  }
  mm.add_mm_counter(MM_ANONPAGES, 1);
  folio_add_new_anon_rmap(folio, vma, vmf.address, RMAP_EXCLUSIVE);
  folio_add_lru(folio);
  set_pte(lp.pte, entry);
  pte_unmap_unlock(lp);
  return VM_FAULT_NONE;
}

// ---- write-protect faults ----

namespace {

// wp_can_reuse_anon_folio (6.12): only small folios, only when our mapping
// holds the last reference (after draining this CPU's LRU batch, whose
// reference we cannot tell from others), checked under the folio lock.
bool wp_can_reuse_anon_folio(Folio* folio, Vma* vma) {
  if (folio_test_large(folio)) return false;
  if (folio_test_ksm(folio) || folio_ref_count(folio) > 3) return false;
  if (!folio_test_lru(folio)) lru_add_drain(vma->vm_mm().ms());
  if (folio_ref_count(folio) > 1) return false;
  if (!folio_trylock(folio)) return false;
  if (folio_ref_count(folio) != 1) {
    folio_unlock(folio);
    return false;
  }
  folio_move_anon_rmap(folio, vma);
  folio_unlock(folio);
  return true;
}

// Makes the entry writable in place (ptl held; released here).
void wp_page_reuse(VmFaultInfo& vmf) {
  pte_t entry = pte_mkyoung(vmf.orig_pte);
  entry = maybe_mkwrite(pte_mkdirty(entry), vmf.vma);
  set_pte(vmf.pte, entry);
  ptl_unlock(vmf.ptl);
  vmf.vma->vm_mm().ms().events().inc(PGREUSE);
}

// A COW copy (or unshare copy) of the page vmf.orig_pte maps: ptl not held.
VmFault wp_page_copy(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  const bool unshare = fault_unshare(vmf);
  Folio* old_folio = vmf.page != nullptr ? page_folio(vmf.page) : nullptr;
  auto put_old = [&] {
    if (old_folio != nullptr) folio_put(old_folio);
  };
  if (!anon_vma_prepare(vma).ok()) {
    put_old();
    return VM_FAULT_OOM;
  }
  const bool pfn_is_zero = ms.is_zero_pfn(pte_pfn(vmf.orig_pte));
  Folio* new_folio = folio_prealloc(vma, pfn_is_zero ? NeedZero::kYes : NeedZero::kNo);
  if (new_folio == nullptr) {
    put_old();
    return VM_FAULT_OOM;
  }
  // From the PFN, not the page: a private PFN map has no struct page to copy.
  if (!pfn_is_zero) ms.frames().copy(folio_pfn(new_folio), pte_pfn(vmf.orig_pte), PageCount(1));
  folio_set_uptodate(new_folio);

  const MmuNotifierRange range{
      &mm,    vmf.address, vmf.address + PAGE_SIZE, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_CLEAR,
      nullptr};
  mmu_notifier_invalidate_range_start(range);
  LockedPte lp = pte_offset_map_lock(mm, vmf.pmd, vmf.address);
  Folio* to_put = new_folio;
  if (lp && ptep_get(lp.pte) == vmf.orig_pte) {
    if (old_folio != nullptr) {
      if (!folio_test_anon(old_folio)) {
        mm.add_mm_counter(mm_counter_of(old_folio), -1);
        mm.add_mm_counter(MM_ANONPAGES, 1);
      }
    } else {
      mm.add_mm_counter(MM_ANONPAGES, 1);
    }
    pte_t entry = pte_mkyoung(pfn_pte(folio_pfn(new_folio), vma->vm_page_prot));
    if (!unshare) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
    // Clear and flush before installing the copy, so no CPU can still be
    // writing the old page through a stale translation afterwards.
    ptep_get_and_clear(lp.pte);
    mm.tlb().flush();
    folio_add_new_anon_rmap(new_folio, vma, vmf.address, RMAP_EXCLUSIVE);
    folio_add_lru(new_folio);
    MM_BUG_ON(unshare && pte_write(entry));
    set_pte(lp.pte, entry);
    if (old_folio != nullptr) folio_remove_rmap_pte(old_folio, vmf.page, vma);
    to_put = old_folio;  // the old mapping's reference
  }
  pte_unmap_unlock(lp);
  mmu_notifier_invalidate_range_end(range);
  if (to_put != nullptr) folio_put(to_put);
  put_old();  // the reference do_wp_page took
  return VM_FAULT_NONE;
}

// The folio is locked and dirtied through the file system's page_mkwrite.
VmFault do_page_mkwrite(VmFaultInfo& vmf, Folio* folio) {
  vmf.flags &= ~FAULT_FLAG_ALLOW_RETRY;
  vmf.flags |= FAULT_FLAG_MKWRITE;
  vmf.page = &folio->page;
  const VmFault ret = VmFault{vmf.vma->vm_ops->page_mkwrite(vmf)};
  if (any(ret & VM_FAULT_ERROR)) return ret;
  if (!any(ret & VM_FAULT_LOCKED)) folio_lock(folio);
  if (folio_mapping(folio) == nullptr) {  // truncated meanwhile
    folio_unlock(folio);
    return VM_FAULT_NOPAGE;
  }
  return ret | VM_FAULT_LOCKED;
}

// A write fault on a shared mapping: make the entry writable, telling the
// file system first if it tracks dirty pages.
VmFault wp_page_shared(VmFaultInfo& vmf, Folio* folio) {
  Vma* vma = vmf.vma;
  folio_get(folio);
  if (vma->vm_ops != nullptr && vma->vm_ops->page_mkwrite != nullptr) {
    ptl_unlock(vmf.ptl);
    const VmFault tmp = do_page_mkwrite(vmf, folio);
    if (any(tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE))) {
      folio_put(folio);
      return tmp;
    }
    LockedPte lp = pte_offset_map_lock(vma->vm_mm(), vmf.pmd, vmf.address);
    if (!lp || !(ptep_get(lp.pte) == vmf.orig_pte)) {
      pte_unmap_unlock(lp);
      folio_unlock(folio);
      folio_put(folio);
      return VM_FAULT_NONE;
    }
    vmf.pte = lp.pte;
    vmf.ptl = lp.ptl;
    wp_page_reuse(vmf);
  } else {
    wp_page_reuse(vmf);
    folio_lock(folio);
  }
  folio_mark_dirty(folio);
  folio_unlock(folio);
  folio_put(folio);
  return VM_FAULT_NONE;
}

}  // namespace

VmFault do_wp_page(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  const bool unshare = fault_unshare(vmf);
  vmf.page = vm_normal_page(vma, vmf.address, vmf.orig_pte);
  Folio* folio = vmf.page != nullptr ? page_folio(vmf.page) : nullptr;

  if (any(vma->vm_flags & (VM_SHARED | VM_MAYSHARE))) {
    if (folio == nullptr) {  // a PFN map: just make it writable
      wp_page_reuse(vmf);
      return VM_FAULT_NONE;
    }
    return wp_page_shared(vmf, folio);
  }
  // Private mapping: an exclusive anonymous page is reused without further
  // checks; otherwise reuse only when nobody else can see the page.
  if (folio != nullptr && folio_test_anon(folio) &&
      (PageAnonExclusive(vmf.page) || wp_can_reuse_anon_folio(folio, vma))) {
    if (!PageAnonExclusive(vmf.page)) vmf.page->set(PG_anon_exclusive);
    if (unshare) {
      ptl_unlock(vmf.ptl);
      return VM_FAULT_NONE;
    }
    wp_page_reuse(vmf);
    return VM_FAULT_NONE;
  }
  if (folio != nullptr) folio_get(folio);
  ptl_unlock(vmf.ptl);
  return wp_page_copy(vmf);
}

// ---- file faults ----

namespace {

VmFault __do_fault(VmFaultInfo& vmf) {
  if (vmf.vma->vm_ops == nullptr || vmf.vma->vm_ops->fault == nullptr) return VM_FAULT_SIGBUS;
  const VmFault ret = VmFault{vmf.vma->vm_ops->fault(vmf)};
  if (any(ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY))) return ret;
  MM_BUG_ON(vmf.page == nullptr || !folio_test_locked(page_folio(vmf.page)));
  return ret | VM_FAULT_LOCKED;
}

// What finish_fault maps (the kernel tells them apart by vmf->cow_page).
enum class FaultPage : bool { kFilePage, kAnonCopy };

// Maps `page` (a locked file page, or the new anon COW copy) at vmf.address.
// The page's reference becomes the mapping's.
VmFault finish_fault(VmFaultInfo& vmf, Page* page, FaultPage kind) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  if (!pte_alloc(mm, vmf.pmd).ok()) return VM_FAULT_OOM;
  LockedPte lp = pte_offset_map_lock(mm, vmf.pmd, vmf.address);
  if (!lp) return VM_FAULT_NOPAGE;
  if (!pte_none(ptep_get(lp.pte))) {
    pte_unmap_unlock(lp);
    return VM_FAULT_NOPAGE;  // raced with another fault
  }
  Folio* folio = page_folio(page);
  pte_t entry = pte_mkyoung(pfn_pte(page_to_pfn(page), vma->vm_page_prot));
  if (fault_write(vmf)) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
  if (kind == FaultPage::kAnonCopy) {
    mm.add_mm_counter(MM_ANONPAGES, 1);
    folio_add_new_anon_rmap(folio, vma, vmf.address, RMAP_EXCLUSIVE);
    folio_add_lru(folio);
  } else {
    mm.add_mm_counter(mm_counter_of(folio), 1);
    folio_add_file_rmap_ptes(folio, page, 1, vma);
  }
  set_pte(lp.pte, entry);
  pte_unmap_unlock(lp);
  return VM_FAULT_NONE;
}

void unlock_and_put(Page* page) {
  Folio* folio = page_folio(page);
  folio_unlock(folio);
  folio_put(folio);
}

VmFault do_read_fault(VmFaultInfo& vmf) {
  VmFault ret = __do_fault(vmf);
  if (any(ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY))) return ret;
  Page* page = vmf.page;
  const VmFault fin = finish_fault(vmf, page, FaultPage::kFilePage);
  folio_unlock(page_folio(page));
  if (any(fin & (VM_FAULT_ERROR | VM_FAULT_NOPAGE))) folio_put(page_folio(page));
  return (ret & ~VM_FAULT_LOCKED) | (fin & VM_FAULT_ERROR);
}

VmFault do_cow_fault(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  if (!anon_vma_prepare(vma).ok()) return VM_FAULT_OOM;
  Folio* copy = folio_prealloc(vma, NeedZero::kNo);
  if (copy == nullptr) return VM_FAULT_OOM;
  VmFault ret = __do_fault(vmf);
  if (any(ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY))) {
    folio_put(copy);
    return ret;
  }
  vma->vm_mm().ms().frames().copy(folio_pfn(copy), page_to_pfn(vmf.page), PageCount(1));
  folio_set_uptodate(copy);
  const VmFault fin = finish_fault(vmf, &copy->page, FaultPage::kAnonCopy);
  unlock_and_put(vmf.page);
  if (any(fin & (VM_FAULT_ERROR | VM_FAULT_NOPAGE))) folio_put(copy);
  return (ret & ~VM_FAULT_LOCKED) | (fin & VM_FAULT_ERROR);
}

VmFault do_shared_fault(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  VmFault ret = __do_fault(vmf);
  if (any(ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY))) return ret;
  Folio* folio = page_folio(vmf.page);
  if (vma->vm_ops->page_mkwrite != nullptr) {
    folio_unlock(folio);
    const VmFault tmp = do_page_mkwrite(vmf, folio);
    if (any(tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE))) {
      folio_put(folio);
      return tmp;
    }
  }
  const VmFault fin = finish_fault(vmf, &folio->page, FaultPage::kFilePage);
  if (any(fin & (VM_FAULT_ERROR | VM_FAULT_NOPAGE))) {
    folio_unlock(folio);
    folio_put(folio);
    return (ret & ~VM_FAULT_LOCKED) | (fin & VM_FAULT_ERROR);
  }
  folio_mark_dirty(folio);
  folio_unlock(folio);
  return ret & ~VM_FAULT_LOCKED;
}

}  // namespace

VmFault do_fault(VmFaultInfo& vmf) {
  if (!fault_write(vmf)) return do_read_fault(vmf);
  if (!any(vmf.vma->vm_flags & VM_SHARED)) return do_cow_fault(vmf);
  return do_shared_fault(vmf);
}

// ---- non-present entries ----

void migration_entry_wait(Mm& mm, pmd_t* pmd, VirtAddr address) {
  LockedPte lp = pte_offset_map_lock(mm, pmd, address);
  if (!lp) return;
  const pte_t pte = ptep_get(lp.pte);
  if (!is_swap_pte(pte) || !is_migration_entry(pte_to_swp_entry(pte))) {
    pte_unmap_unlock(lp);
    return;
  }
  // The migrating thread holds a reference and the folio lock, and must
  // take this PTE lock to remove the entry: the folio cannot be freed
  // before we drop the lock. So queue on its lock bit without a reference,
  // then drop the PTE lock and sleep (migration_entry_wait_on_locked).
  Folio* folio = page_folio(mm.ms().pfn_to_page(swp_offset_pfn(pte_to_swp_entry(pte))));
  mm.ms().injector().maybe_delay(inject_point_vm::kMigrationEntryWait);
  mm.vm().count_migration_wait();
  mm.ms().wait_table().wait_bit(folio, PG_locked, [&] { pte_unmap_unlock(lp); });
}

void pmd_migration_entry_wait(Mm& mm, pmd_t* pmd) {
  SpinLock* ptl = &pmd_lockptr(mm, pmd);
  ptl_lock(ptl);
  const pmd_t v = pmdp_get(pmd);
  if (!is_swap_pmd(v) || !is_migration_entry(pmd_to_swp_entry(v))) {
    ptl_unlock(ptl);
    return;
  }
  Folio* folio = page_folio(mm.ms().pfn_to_page(swp_offset_pfn(pmd_to_swp_entry(v))));
  mm.vm().count_migration_wait();
  mm.ms().wait_table().wait_bit(folio, PG_locked, [&] { ptl_unlock(ptl); });
}

void restore_exclusive_pte(Vma* vma, Page* page, VirtAddr addr, pte_t* ptep) {
  Folio* folio = page_folio(page);
  MM_BUG_ON(!folio_test_locked(folio), folio);
  const swp_entry_t entry = pte_to_swp_entry(ptep_get(ptep));
  pte_t pte = pte_mkold(pfn_pte(page_to_pfn(page), vma->vm_page_prot));
  if (is_writable_device_exclusive_entry(entry)) pte = maybe_mkwrite(pte_mkdirty(pte), vma);
  // The entry kept the reference; the mapcount comes back now.
  if (folio_test_anon(folio)) {
    folio_add_anon_rmap_ptes(folio, page, 1, vma, addr, RMAP_NONE);
  } else {
    folio_add_file_rmap_ptes(folio, page, 1, vma);
  }
  set_pte(ptep, pte);
}

namespace {

// The CPU touched a page a device holds exclusively: restore the mapping.
VmFault remove_device_exclusive_entry(VmFaultInfo& vmf) {
  Vma* vma = vmf.vma;
  Mm& mm = vma->vm_mm();
  const swp_entry_t entry = pte_to_swp_entry(vmf.orig_pte);
  Page* page = mm.ms().pfn_to_page(swp_offset_pfn(entry));
  Folio* folio = page_folio(page);
  if (!folio_try_get(folio)) return VM_FAULT_NONE;
  const MmuNotifierRange range{&mm,
                               vmf.address,
                               vmf.address + PAGE_SIZE,
                               MMU_NOTIFIER_RANGE_BLOCKABLE,
                               MMU_NOTIFY_EXCLUSIVE,
                               nullptr};
  mmu_notifier_invalidate_range_start(range);
  folio_lock(folio);
  LockedPte lp = pte_offset_map_lock(mm, vmf.pmd, vmf.address);
  if (lp && ptep_get(lp.pte) == vmf.orig_pte) restore_exclusive_pte(vma, page, vmf.address, lp.pte);
  pte_unmap_unlock(lp);
  folio_unlock(folio);
  folio_put(folio);
  mmu_notifier_invalidate_range_end(range);
  return VM_FAULT_NONE;
}

VmFault do_device_private_fault(VmFaultInfo& vmf) {
  Mm& mm = vmf.vma->vm_mm();
  const swp_entry_t entry = pte_to_swp_entry(vmf.orig_pte);
  Page* page = mm.ms().pfn_to_page(swp_offset_pfn(entry));
  LockedPte lp = pte_offset_map_lock(mm, vmf.pmd, vmf.address);
  if (!lp || !(ptep_get(lp.pte) == vmf.orig_pte)) {
    pte_unmap_unlock(lp);
    return VM_FAULT_NONE;
  }
  // A reference keeps the device page alive across the driver's callback.
  const bool got = folio_try_get(page_folio(page));
  pte_unmap_unlock(lp);
  if (!got) return VM_FAULT_NONE;
  vmf.page = page;
  DevPagemap* pgmap = page_pgmap(page);
  MM_BUG_ON(pgmap == nullptr || pgmap->ops == nullptr || pgmap->ops->migrate_to_ram == nullptr,
            page);
  const VmFault ret = VmFault{pgmap->ops->migrate_to_ram(vmf)};
  put_page(page);
  return ret;
}

}  // namespace

VmFault do_swap_page(VmFaultInfo& vmf) {
  const swp_entry_t entry = pte_to_swp_entry(vmf.orig_pte);
  Mm& mm = vmf.vma->vm_mm();
  if (is_migration_entry(entry)) {
    migration_entry_wait(mm, vmf.pmd, vmf.address);
    return VM_FAULT_NONE;
  }
  if (is_device_exclusive_entry(entry)) return remove_device_exclusive_entry(vmf);
  if (is_device_private_entry(entry)) return do_device_private_fault(vmf);
  if (is_hwpoison_entry(entry)) return VM_FAULT_HWPOISON;
  // pinmm has no swap devices: no other swap entry can exist.
  MM_BUG_ON(swp_type(entry) < MAX_SWAPFILES);
  return VM_FAULT_SIGBUS;
}

// ---- the fault entry ----

namespace {

VmFault handle_pte_fault(VmFaultInfo& vmf) {
  Mm& mm = vmf.vma->vm_mm();
  const pmd_t pmdval = pmdp_get(vmf.pmd);
  vmf.pte = nullptr;
  if (!pmd_none(pmdval)) {
    if (!pmd_is_table(pmdval)) return VM_FAULT_NONE;  // became huge meanwhile: refault
    pte_t* ptep = pte_offset_map(mm, pmdval, vmf.address);
    vmf.orig_pte = ptep_get(ptep);
    if (!pte_none(vmf.orig_pte)) vmf.pte = ptep;
  }
  if (vmf.pte == nullptr) return vma_is_anonymous(vmf.vma) ? do_anonymous_page(vmf) : do_fault(vmf);
  if (!pte_present(vmf.orig_pte)) return do_swap_page(vmf);
  if (pte_protnone(vmf.orig_pte)) return VM_FAULT_SIGSEGV;  // pinmm has no NUMA hinting faults

  vmf.ptl = &pte_lockptr(mm, pmdval);
  ptl_lock(vmf.ptl);
  pte_t entry = ptep_get(vmf.pte);
  if (!(entry == vmf.orig_pte)) {
    ptl_unlock(vmf.ptl);
    return VM_FAULT_NONE;
  }
  if (fault_write(vmf) || fault_unshare(vmf)) {
    if (!pte_write(entry)) return do_wp_page(vmf);  // releases the lock
    if (fault_write(vmf)) entry = pte_mkdirty(entry);
  }
  entry = pte_mkyoung(entry);
  if (!(entry == vmf.orig_pte)) set_pte(vmf.pte, entry);
  ptl_unlock(vmf.ptl);
  return VM_FAULT_NONE;
}

VmFault __handle_mm_fault(Vma* vma, VirtAddr address, FaultFlags flags) {
  Mm& mm = vma->vm_mm();
  VmFaultInfo vmf;
  vmf.vma = vma;
  vmf.real_address = address;
  vmf.address = address.page_align_down();
  vmf.flags = flags;
  vmf.pgoff = linear_page_index(vma, vmf.address);

  auto pmd = pmd_alloc(mm, vmf.address);
  if (!pmd.ok()) return VM_FAULT_OOM;
  if (*pmd == nullptr) return VM_FAULT_SIGBUS;  // a PUD leaf outside hugetlb cannot exist
  vmf.pmd = *pmd;

  const pmd_t orig = pmdp_get(vmf.pmd);
  if (pmd_none(orig) && thp_vma_allowable(vma, vmf.address)) {
    const VmFault ret = do_huge_pmd_anonymous_page(vmf);
    if (!any(ret & VM_FAULT_FALLBACK)) return ret;
  } else if (!pmd_none(orig)) {
    vmf.orig_pmd = orig;
    if (is_swap_pmd(orig)) {
      if (is_migration_entry(pmd_to_swp_entry(orig))) pmd_migration_entry_wait(mm, vmf.pmd);
      return VM_FAULT_NONE;
    }
    if (pmd_leaf(orig)) {
      if ((fault_write(vmf) || fault_unshare(vmf)) && !pmd_write(orig)) {
        const VmFault ret = do_huge_pmd_wp_page(vmf);
        if (!any(ret & VM_FAULT_FALLBACK)) return ret;
      } else {
        huge_pmd_set_accessed(vmf);
        return VM_FAULT_NONE;
      }
    }
  }
  return handle_pte_fault(vmf);
}

}  // namespace

VmFault handle_mm_fault(Vma* vma, VirtAddr address, FaultFlags flags) {
  MemorySystem& ms = vma->vm_mm().ms();
  ms.events().inc(PGFAULT);
  if (any(flags & FAULT_FLAG_UNSHARE)) {
    // Unsharing is a read fault that must produce an exclusive page; it only
    // exists for COW mappings.
    if (MM_WARN_ON_ONCE(any(flags & FAULT_FLAG_WRITE))) return VM_FAULT_SIGSEGV;
    if (!is_cow_mapping(vma->vm_flags)) return VM_FAULT_SIGSEGV;
  }
  const VmFault ret = is_vm_hugetlb_page(vma) ? hugetlb_fault(vma, address, flags)
                                              : __handle_mm_fault(vma, address, flags);
  if (any(ret & VM_FAULT_MAJOR)) ms.events().inc(PGMAJFAULT);
  return ret;
}

// ---- zapping ----

namespace {

bool zap_skip(const ZapDetails& d, const Folio* folio) {
  if (d.only_mapping == nullptr || folio == nullptr) return false;
  if (folio_test_anon(folio)) return !d.even_cows;  // a private COW copy
  return folio_mapping(folio) != d.only_mapping;
}

void zap_pte(Vma* vma, pte_t* ptep, VirtAddr addr, MmuGather& tlb, const ZapDetails& d) {
  Mm& mm = vma->vm_mm();
  const pte_t pte = ptep_get(ptep);
  if (pte_none(pte)) return;
  if (pte_present(pte)) {
    Page* page = vm_normal_page(vma, addr, pte);
    Folio* folio = page != nullptr ? page_folio(page) : nullptr;
    if (zap_skip(d, folio)) return;
    ptep_get_and_clear(ptep);
    tlb.need_flush();
    if (folio == nullptr) return;
    if (!folio_test_anon(folio) && pte_dirty(pte)) folio_mark_dirty(folio);
    mm.add_mm_counter(mm_counter_of(folio), -1);
    folio_remove_rmap_pte(folio, page, vma);
    tlb.remove_folio(folio);
    return;
  }
  const swp_entry_t e = pte_to_swp_entry(pte);
  if (is_pfn_swap_entry(e) && !is_hwpoison_entry(e)) {
    Page* page = mm.ms().pfn_to_page(swp_offset_pfn(e));
    Folio* folio = page_folio(page);
    if (zap_skip(d, folio)) return;
    ptep_get_and_clear(ptep);
    mm.add_mm_counter(mm_counter_of(folio), -1);
    if (is_device_private_entry(e)) {
      // The entry is a mapping of the device page and holds a reference.
      folio_remove_rmap_pte(folio, page, vma);
      folio_put(folio);
    } else if (is_device_exclusive_entry(e)) {
      // The entry kept the mapping's reference, not its mapcount (6.12).
      tlb.remove_folio(folio);
    }
    // A migration entry: the migrating thread holds the folio; nothing to drop.
    return;
  }
  ptep_get_and_clear(ptep);  // hwpoison or a marker
}

}  // namespace

void unmap_single_vma(MmuGather& tlb, Vma* vma, VirtAddr start, VirtAddr end,
                      const ZapDetails& details) {
  if (is_vm_hugetlb_page(vma)) {
    unmap_hugepage_range(vma, start, end, tlb, details);
    return;
  }
  Mm& mm = vma->vm_mm();
  VirtAddr addr = start;
  while (addr < end) {
    const VirtAddr next(std::min(end.value(), (addr.value() & PMD_MASK) + PMD_SIZE));
    pmd_t* pmd = pmd_offset(mm, addr);
    if (pmd == nullptr) {
      addr = next;
      continue;
    }
    const pmd_t pmdval = pmdp_get(pmd);
    if (pmd_none(pmdval)) {
      addr = next;
      continue;
    }
    if (pmd_leaf(pmdval) || is_swap_pmd(pmdval)) {
      if (addr.value() % PMD_SIZE == 0 && next - addr == PMD_SIZE) {
        zap_huge_pmd(vma, pmd, addr, tlb, details);
        addr = next;
        continue;
      }
      split_huge_pmd(vma, pmd, addr);
    }
    LockedPte lp = pte_offset_map_lock(mm, pmd, addr);
    if (lp) {
      for (VirtAddr a = addr; a < next; a = a + PAGE_SIZE) {
        zap_pte(vma, lp.pte + ((a - addr) >> PAGE_SHIFT), a, tlb, details);
      }
      pte_unmap_unlock(lp);
    }
    addr = next;
  }
}

namespace {

template <typename E>
bool table_empty(const MemorySystem& ms, Pfn table) {
  const E* e = table_entries<E>(ms, table);
  for (unsigned i = 0; i < PTRS_PER_TABLE; ++i) {
    if (!entry_none(entry_get(e + i))) return false;
  }
  return true;
}

bool range_within(uint64_t lo, uint64_t hi, VirtAddr floor, VirtAddr ceiling) {
  return lo >= floor.value() && hi <= ceiling.value();
}

}  // namespace

void free_pgtables(Mm& mm, VirtAddr start, VirtAddr end, VirtAddr floor, VirtAddr ceiling,
                   MmuGather& tlb) {
  const MemorySystem& ms = mm.ms();
  for (uint64_t g = start.value() & ~(PGDIR_SIZE - 1); g < end.value(); g += PGDIR_SIZE) {
    pgd_t* pgd = pgd_offset(mm, VirtAddr(g));
    const pgd_t pgdval = pgdp_get(pgd);
    if (!pgd_present(pgdval)) continue;
    pud_t* puds = table_entries<pud_t>(ms, entry_pfn(pgdval));
    for (uint64_t u = std::max(g, start.value() & PUD_MASK);
         u < std::min(end.value(), g + PGDIR_SIZE); u += PUD_SIZE) {
      pud_t* pud = puds + pud_index(VirtAddr(u));
      const pud_t pudval = pudp_get(pud);
      if (!pud_present(pudval) || pud_leaf(pudval)) continue;
      pmd_t* pmds = table_entries<pmd_t>(ms, pud_pfn(pudval));
      for (uint64_t m = std::max(u, start.value() & PMD_MASK);
           m < std::min(end.value(), u + PUD_SIZE); m += PMD_SIZE) {
        pmd_t* pmd = pmds + pmd_index(VirtAddr(m));
        const pmd_t pmdval = pmdp_get(pmd);
        if (!pmd_is_table(pmdval) || !range_within(m, m + PMD_SIZE, floor, ceiling)) continue;
        MM_BUG_ON(!table_empty<pte_t>(ms, pmd_pfn(pmdval)));
        set_pmd(pmd, pmd_t{0});
        tlb.remove_table(ms.pfn_to_page(pmd_pfn(pmdval)));
      }
      if (range_within(u, u + PUD_SIZE, floor, ceiling) &&
          table_empty<pmd_t>(ms, pud_pfn(pudval))) {
        set_pud(pud, pud_t{0});
        tlb.remove_table(ms.pfn_to_page(pud_pfn(pudval)));
      }
    }
    if (range_within(g, g + PGDIR_SIZE, floor, ceiling) &&
        table_empty<pud_t>(ms, entry_pfn(pgdval))) {
      set_pgd(pgd, pgd_t{0});
      tlb.remove_table(ms.pfn_to_page(entry_pfn(pgdval)));
    }
  }
  tlb.need_flush();
}

// ---- fork ----

namespace {

// Copies one present PTE. 0 on success; -EAGAIN when an early-COW copy is
// needed and `prealloc` is empty (the caller allocates and retries).
int copy_present_pte(Vma* dst_vma, Vma* src_vma, pte_t* dst_pte, pte_t* src_pte, VirtAddr addr,
                     Folio** prealloc) {
  Mm& dst_mm = dst_vma->vm_mm();
  pte_t pte = ptep_get(src_pte);
  Page* page = vm_normal_page(src_vma, addr, pte);
  if (page != nullptr) {
    Folio* folio = page_folio(page);
    folio_get(folio);
    if (folio_test_anon(folio)) {
      if (folio_try_dup_anon_rmap_ptes(folio, page, 1, src_vma) != 0) {
        // The parent may have pinned this page: the child gets a copy now,
        // so the pinned page can never be replaced under the pin by a COW.
        folio_put(folio);
        if (*prealloc == nullptr) return -EAGAIN;
        Folio* copy = std::exchange(*prealloc, nullptr);
        dst_mm.ms().frames().copy(folio_pfn(copy), page_to_pfn(page), PageCount(1));
        folio_set_uptodate(copy);
        folio_add_new_anon_rmap(copy, dst_vma, addr, RMAP_EXCLUSIVE);
        folio_add_lru(copy);
        dst_mm.add_mm_counter(MM_ANONPAGES, 1);
        pte_t cpte = pte_mkyoung(pfn_pte(folio_pfn(copy), dst_vma->vm_page_prot));
        cpte = maybe_mkwrite(pte_mkdirty(cpte), dst_vma);
        set_pte(dst_pte, cpte);
        return 0;
      }
      dst_mm.add_mm_counter(MM_ANONPAGES, 1);
    } else {
      folio_dup_file_rmap_ptes(folio, page, 1);
      dst_mm.add_mm_counter(mm_counter_of(folio), 1);
    }
  }
  // A COW mapping: write-protect in both processes.
  if (is_cow_mapping(src_vma->vm_flags) && pte_write(pte)) {
    ptep_set_wrprotect(src_pte);
    pte = pte_wrprotect(pte);
  }
  if (any(src_vma->vm_flags & VM_SHARED)) pte = pte_mkclean(pte);
  set_pte(dst_pte, pte_mkold(pte));
  return 0;
}

// Copies one non-present PTE. 0 when done; -ENOENT when a device-exclusive
// entry was restored in the parent (the caller copies the now present PTE);
// -EBUSY when that needs a folio lock someone else holds (fork fails).
int copy_nonpresent_pte(Vma* dst_vma, Vma* src_vma, pte_t* dst_pte, pte_t* src_pte, VirtAddr addr) {
  Mm& dst_mm = dst_vma->vm_mm();
  const pte_t pte = ptep_get(src_pte);
  swp_entry_t e = pte_to_swp_entry(pte);
  if (is_migration_entry(e)) {
    Folio* folio = page_folio(dst_mm.ms().pfn_to_page(swp_offset_pfn(e)));
    dst_mm.add_mm_counter(mm_counter_of(folio), 1);
    if (!is_readable_migration_entry(e) && is_cow_mapping(src_vma->vm_flags)) {
      // COW: both sides become read-only (and no longer exclusive).
      swp_entry_t r = make_readable_migration_entry(swp_offset_pfn(e));
      if (is_migration_entry_young(e)) r = make_migration_entry_young(r);
      if (is_migration_entry_dirty(e)) r = make_migration_entry_dirty(r);
      set_pte(src_pte, swp_entry_to_pte(r));
      e = r;
    }
    set_pte(dst_pte, swp_entry_to_pte(e));
    return 0;
  }
  if (is_device_private_entry(e)) {
    Page* page = dst_mm.ms().pfn_to_page(swp_offset_pfn(e));
    Folio* folio = page_folio(page);
    folio_get(folio);
    dst_mm.add_mm_counter(mm_counter_of(folio), 1);
    // Device-private pages cannot be pinned: sharing always succeeds.
    MM_BUG_ON(folio_try_dup_anon_rmap_ptes(folio, page, 1, src_vma) != 0, folio);
    if (is_writable_device_private_entry(e) && is_cow_mapping(src_vma->vm_flags)) {
      e = make_readable_device_private_entry(swp_offset_pfn(e));
      set_pte(src_pte, swp_entry_to_pte(e));
    }
    set_pte(dst_pte, swp_entry_to_pte(e));
    return 0;
  }
  if (is_device_exclusive_entry(e)) {
    Page* page = dst_mm.ms().pfn_to_page(swp_offset_pfn(e));
    if (!folio_trylock(page_folio(page))) return -EBUSY;
    restore_exclusive_pte(src_vma, page, addr, src_pte);
    folio_unlock(page_folio(page));
    return -ENOENT;
  }
  set_pte(dst_pte, pte);  // hwpoison
  return 0;
}

}  // namespace

Result<void> copy_page_range(Vma* dst_vma, Vma* src_vma) {
  // Only VMAs with anonymous pages (or PFN maps) need their entries copied;
  // the child faults file pages in on demand.
  if (src_vma->anon_vma == nullptr && !any(src_vma->vm_flags & (VM_PFNMAP | VM_MIXEDMAP)))
    return {};
  if (is_vm_hugetlb_page(src_vma)) return copy_hugetlb_page_range(dst_vma, src_vma);
  Mm& src_mm = src_vma->vm_mm();
  Mm& dst_mm = dst_vma->vm_mm();
  const bool cow = is_cow_mapping(src_vma->vm_flags);
  const MmuNotifierRange range{&src_mm,
                               src_vma->vm_start,
                               src_vma->vm_end,
                               MMU_NOTIFIER_RANGE_BLOCKABLE,
                               MMU_NOTIFY_PROTECTION_PAGE,
                               nullptr};
  if (cow) {
    mmu_notifier_invalidate_range_start(range);
    // GUP-fast pinning concurrently must see an odd count and back off.
    src_mm.write_protect_seq.write_begin();
  }
  Result<void> result;
  Folio* prealloc = nullptr;
  VirtAddr addr = src_vma->vm_start;
  while (addr < src_vma->vm_end) {
    const VirtAddr next(std::min(src_vma->vm_end.value(), (addr.value() & PMD_MASK) + PMD_SIZE));
    pmd_t* src_pmd = pmd_offset(src_mm, addr);
    if (src_pmd == nullptr || pmd_none(pmdp_get(src_pmd))) {
      addr = next;
      continue;
    }
    auto dst_pmd = pmd_alloc(dst_mm, addr);
    if (!dst_pmd.ok() || *dst_pmd == nullptr) {
      result = Errno(ENOMEM);
      break;
    }
    const pmd_t src_pmdval = pmdp_get(src_pmd);
    if (pmd_leaf(src_pmdval) || is_swap_pmd(src_pmdval)) {
      const int err = copy_huge_pmd(dst_vma, src_vma, *dst_pmd, src_pmd, addr);
      if (err == -ENOMEM) {
        result = Errno(ENOMEM);
        break;
      }
      if (err == 0) {
        addr = next;
        continue;
      }
      // -EAGAIN: the source PMD was split; copy the PTEs below.
    }
    if (!pte_alloc(dst_mm, *dst_pmd).ok()) {
      result = Errno(ENOMEM);
      break;
    }
    VirtAddr a = addr;
    while (a < next) {
      LockedPte dst = pte_offset_map_lock(dst_mm, *dst_pmd, a);
      SpinLock* src_ptl = &pte_lockptr(src_mm, pmdp_get(src_pmd));
      ptl_lock_nested(src_ptl);
      pte_t* src_pte = pte_offset_map(src_mm, pmdp_get(src_pmd), a);
      bool need_prealloc = false;
      bool busy = false;
      for (; a < next; a = a + PAGE_SIZE, ++src_pte, ++dst.pte) {
        const pte_t pte = ptep_get(src_pte);
        if (pte_none(pte)) continue;
        if (!pte_present(pte)) {
          const int ret = copy_nonpresent_pte(dst_vma, src_vma, dst.pte, src_pte, a);
          if (ret == 0) continue;
          if (ret == -EBUSY) {
            busy = true;
            break;
          }
          // -ENOENT: a device-exclusive entry is a present PTE again.
        }
        if (copy_present_pte(dst_vma, src_vma, dst.pte, src_pte, a, &prealloc) == -EAGAIN) {
          need_prealloc = true;
          break;
        }
      }
      ptl_unlock(src_ptl);
      pte_unmap_unlock(dst);
      if (busy) {
        result = Errno(ENOMEM);  // copy_pmd_range turns every failure into ENOMEM
        break;
      }
      if (need_prealloc) {
        prealloc = folio_prealloc(dst_vma, NeedZero::kNo);
        if (prealloc == nullptr) {
          result = Errno(ENOMEM);
          break;
        }
      }
    }
    if (!result.ok()) break;
    addr = next;
  }
  if (prealloc != nullptr) folio_put(prealloc);
  if (cow) {
    src_mm.write_protect_seq.write_end();
    mmu_notifier_invalidate_range_end(range);
  }
  return result;
}

// ---- mprotect ----

namespace {

// can_change_pte_writable: a private anon page we map exclusively, or a
// shared page already dirty, may become writable without a write fault
// (the mprotect() optimization of cow.c).
bool can_change_pte_writable(const Vma* vma, VirtAddr addr, pte_t pte) {
  if (!any(vma->vm_flags & VM_WRITE) || pte_protnone(pte)) return false;
  if (!any(vma->vm_flags & VM_SHARED)) {
    Page* page = vm_normal_page(vma, addr, pte);
    return page != nullptr && folio_test_anon(page_folio(page)) && PageAnonExclusive(page);
  }
  return pte_dirty(pte);
}

bool wants_manual_write_upgrade(const Vma* vma) {
  if (any(vma->vm_flags & VM_SHARED)) return vma_wants_writenotify(vma);
  return any(vma->vm_flags & VM_WRITE);
}

}  // namespace

void change_protection(Vma* vma, VirtAddr start, VirtAddr end, MmuGather& tlb) {
  if (is_vm_hugetlb_page(vma)) {
    hugetlb_change_protection(vma, start, end, tlb);
    return;
  }
  Mm& mm = vma->vm_mm();
  const bool try_writable = wants_manual_write_upgrade(vma);
  VirtAddr addr = start;
  while (addr < end) {
    const VirtAddr next(std::min(end.value(), (addr.value() & PMD_MASK) + PMD_SIZE));
    pmd_t* pmd = pmd_offset(mm, addr);
    if (pmd == nullptr || pmd_none(pmdp_get(pmd))) {
      addr = next;
      continue;
    }
    const pmd_t pmdval = pmdp_get(pmd);
    if (pmd_leaf(pmdval)) {
      if (addr.value() % PMD_SIZE == 0 && next - addr == PMD_SIZE) {
        change_huge_pmd(vma, pmd, addr);
        tlb.need_flush();
        addr = next;
        continue;
      }
      split_huge_pmd(vma, pmd, addr);
    }
    LockedPte lp = pte_offset_map_lock(mm, pmd, addr);
    if (lp) {
      for (VirtAddr a = addr; a < next; a = a + PAGE_SIZE) {
        pte_t* ptep = lp.pte + ((a - addr) >> PAGE_SHIFT);
        const pte_t old = ptep_get(ptep);
        if (pte_present(old)) {
          pte_t pte = pte_modify(old, vma->vm_page_prot);
          if (try_writable && !pte_write(pte) && can_change_pte_writable(vma, a, pte))
            pte = pte_mkwrite(pte);
          set_pte(ptep, pte);
        } else if (is_swap_pte(old)) {
          const swp_entry_t e = pte_to_swp_entry(old);
          // Writable entries waiting to be restored are downgraded (as
          // change_pte_range does for every protection change): the restored
          // PTE then follows the new protection, and a later write faults.
          const Pfn pfn = swp_offset_pfn(e);
          if (is_writable_migration_entry(e)) {
            swp_entry_t r = folio_test_anon(page_folio(mm.ms().pfn_to_page(pfn)))
                                ? make_readable_exclusive_migration_entry(pfn)
                                : make_readable_migration_entry(pfn);
            if (is_migration_entry_young(e)) r = make_migration_entry_young(r);
            if (is_migration_entry_dirty(e)) r = make_migration_entry_dirty(r);
            set_pte(ptep, swp_entry_to_pte(r));
          } else if (is_writable_device_private_entry(e)) {
            set_pte(ptep, swp_entry_to_pte(make_readable_device_private_entry(pfn)));
          } else if (is_writable_device_exclusive_entry(e)) {
            set_pte(ptep, swp_entry_to_pte(make_readable_device_exclusive_entry(pfn)));
          }
        }
      }
      pte_unmap_unlock(lp);
    }
    tlb.need_flush();
    addr = next;
  }
}

// ---- populate ----

namespace {

// Whether `addr` is already mapped well enough for the access.
bool already_populated(Vma* vma, VirtAddr addr, bool write) {
  Mm& mm = vma->vm_mm();
  pmd_t* pmd = pmd_offset(mm, addr);
  if (pmd == nullptr) return false;
  const pmd_t pmdval = pmdp_get(pmd);
  if (pmd_leaf(pmdval)) return !write || pmd_write(pmdval);
  if (!pmd_is_table(pmdval)) return false;
  const pte_t pte = ptep_get(pte_offset_map(mm, pmdval, addr));
  if (!pte_present(pte) || pte_protnone(pte)) return false;
  return !write || pte_write(pte);
}

}  // namespace

Result<void> populate_range(Vma* vma, VirtAddr start, VirtAddr end, bool write) {
  for (VirtAddr addr = start; addr < end; addr = addr + PAGE_SIZE) {
    if (current().fatal_signal_pending()) return Errno(EINTR);
    if (already_populated(vma, addr, write)) continue;
    const VmFault ret = handle_mm_fault(vma, addr, write ? FAULT_FLAG_WRITE : FAULT_FLAG_NONE);
    if (any(ret & VM_FAULT_OOM)) return Errno(ENOMEM);
    if (any(ret & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE))) return Errno(EHWPOISON);
    if (any(ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV))) return Errno(EFAULT);
  }
  return {};
}

}  // namespace pinmm
