#include "pinmm/gup/gup.h"

#include "internal.h"

#include "pinmm/base/task.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/huge_memory.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

bool gup_must_unshare(const Vma* vma, Foll flags, const Page* page) {
  // Only a read-only pin needs it: a write pin made the page exclusive by
  // its write fault, and a FOLL_GET reference promises nothing.
  if ((flags & (FOLL_WRITE | FOLL_PIN)) != FOLL_PIN) return false;
  const Folio* folio = page_folio(page);
  if (!folio_test_anon(folio)) {
    // Page cache or the zero page: only a long-term pin in a COW mapping
    // must not see them replaced by a later write fault.
    if (!any(flags & FOLL_LONGTERM)) return false;
    if (vma == nullptr) return true;  // GUP-fast cannot tell: fall back
    return is_cow_mapping(vma->vm_flags);
  }
  if (folio_test_ksm(folio)) return true;
  const Page* pae_page = folio_test_hugetlb(folio) ? &folio->page : page;
  return !PageAnonExclusive(pae_page);
}

namespace {

// What follow_page_mask found: a page (referenced as `flags` ask), or
// nothing to fault in (page == nullptr, err == 0), or an error: -EMLINK
// (fault with FAULT_FLAG_UNSHARE), -EFAULT, -EEXIST, -ENOMEM.
struct Followed {
  Page* page = nullptr;
  int err = 0;
  uint64_t page_mask = 0;  // pages of the leaf - 1 (0 for a PTE)
};

// What can_follow_write_pte and can_follow_write_pmd share (later kernels
// call it can_follow_write_common): FOLL_FORCE may write through a
// read-only entry only to an exclusive anonymous page of a private,
// may-write (COW) mapping that is not writable now. pinmm tracks neither
// soft-dirty nor uffd-wp, the two checks the kernel adds after it.
bool can_follow_write_common(const Page* page, const Vma* vma, Foll flags) {
  if (!any(flags & FOLL_FORCE)) return false;
  if (any(vma->vm_flags & (VM_MAYSHARE | VM_SHARED))) return false;
  if (!any(vma->vm_flags & VM_MAYWRITE)) return false;
  if (any(vma->vm_flags & VM_WRITE)) return false;
  if (page == nullptr || !folio_test_anon(page_folio(page))) return false;
  return PageAnonExclusive(page);
}

bool can_follow_write_pte(pte_t pte, const Page* page, const Vma* vma, Foll flags) {
  return pte_write(pte) || can_follow_write_common(page, vma, flags);
}

bool can_follow_write_pmd(pmd_t pmd, const Page* page, const Vma* vma, Foll flags) {
  return pmd_write(pmd) || can_follow_write_common(page, vma, flags);
}

// no_page_table: FOLL_DUMP wants an error for holes a fault would fill
// with zeros (anonymous memory, or no fault handler).
Followed no_page_table(const Vma* vma, Foll flags) {
  Followed r;
  if (any(flags & FOLL_DUMP) &&
      (vma_is_anonymous(vma) || vma->vm_ops == nullptr || vma->vm_ops->fault == nullptr))
    r.err = -EFAULT;
  return r;
}

// The common tail of every level: unshare check, grab, touch.
// `pae_page` holds the exclusivity that a read-only pin checks: the page
// itself for a PTE, the head page for a PMD leaf (whose mapping sets
// PageAnonExclusive on the head only, as follow_huge_pmd checks it).
Followed grab_leaf(const Vma* vma, Page* page, const Page* pae_page, bool writable, Foll flags,
                   uint64_t page_mask) {
  Followed r;
  if (!writable && gup_must_unshare(vma, flags, pae_page)) {
    r.err = -EMLINK;
    return r;
  }
  Folio* folio = page_folio(page);
  if (const int err = try_grab_folio(folio, 1, flags); err != 0) {
    r.err = err;
    return r;
  }
  if (any(flags & FOLL_TOUCH)) {
    if (any(flags & FOLL_WRITE) && !folio_test_dirty(folio)) folio_mark_dirty(folio);
    folio_mark_accessed(folio);
  }
  r.page = page;
  r.page_mask = page_mask;
  return r;
}

Followed follow_huge_pud(Vma* vma, pud_t* pud, VirtAddr addr, Foll flags) {
  Mm& mm = vma->vm_mm();
  SpinGuard g(pud_lockptr(mm, pud));
  const pud_t v = pudp_get(pud);
  if (!pud_leaf(v)) return no_page_table(vma, flags);
  Page* page =
      mm.ms().pfn_to_page(pud_pfn(v) + PageCount((addr.value() & ~PUD_MASK) >> PAGE_SHIFT));
  // No FOLL_FORCE here: only hugetlb maps PUD leaves, and check_vma_flags
  // refuses FOLL_FORCE writes to hugetlb before any walk.
  if (any(flags & FOLL_WRITE) && !pud_write(v)) return Followed{};
  return grab_leaf(vma, page, page, pud_write(v), flags, (uint64_t{1} << HPAGE_PUD_ORDER) - 1);
}

Followed follow_page_pte(Vma* vma, pmd_t* pmd, VirtAddr addr, Foll flags) {
  Mm& mm = vma->vm_mm();
  MemorySystem& ms = mm.ms();
  LockedPte lp = pte_offset_map_lock(mm, pmd, addr);
  if (!lp) return no_page_table(vma, flags);
  const pte_t pte = ptep_get(lp.pte);
  Followed r;
  if (!pte_present(pte) || pte_protnone(pte)) {
    // Swap-type entries (migration, device) are faulted: the fault waits.
    r = pte_none(pte) ? no_page_table(vma, flags) : Followed{};
  } else {
    Page* page = vm_normal_page(vma, addr, pte);
    if (any(flags & FOLL_WRITE) && !can_follow_write_pte(pte, page, vma, flags)) {
      r = Followed{};
    } else if (page == nullptr) {
      if (any(flags & FOLL_DUMP)) {
        r.err = -EFAULT;
      } else if (ms.is_zero_pfn(pte_pfn(pte))) {
        r = grab_leaf(vma, ms.zero_page(), ms.zero_page(), false, flags, 0);
      } else {
        r.err = -EEXIST;  // a PFN without a struct page the caller may use
      }
    } else {
      r = grab_leaf(vma, page, page, pte_write(pte), flags, 0);
    }
  }
  pte_unmap_unlock(lp);
  return r;
}

Followed follow_pmd_mask(Vma* vma, pmd_t* pmd, VirtAddr addr, Foll flags) {
  Mm& mm = vma->vm_mm();
  const pmd_t v = pmdp_get(pmd);
  if (pmd_none(v)) return no_page_table(vma, flags);
  if (!pmd_present(v)) return Followed{};  // a migration entry: fault and wait
  if (!pmd_leaf(v)) return follow_page_pte(vma, pmd, addr, flags);
  if (any(flags & FOLL_SPLIT_PMD) && !is_vm_hugetlb_page(vma)) {
    // The page stays whole; only its mapping becomes 512 PTEs.
    split_huge_pmd(vma, pmd, addr);
    return follow_page_pte(vma, pmd, addr, flags);
  }
  SpinLock& ptl = pmd_lockptr(mm, pmd);
  ptl_lock(&ptl);
  const pmd_t cur = pmdp_get(pmd);
  Followed r;
  if (!pmd_leaf(cur)) {
    ptl_unlock(&ptl);
    return follow_pmd_mask(vma, pmd, addr, flags);  // split or zapped meanwhile
  }
  Page* head = mm.ms().pfn_to_page(pmd_pfn(cur));
  Page* page = head + ((addr.value() & ~PMD_MASK) >> PAGE_SHIFT);
  if (any(flags & FOLL_WRITE) && !can_follow_write_pmd(cur, page, vma, flags)) {
    r = Followed{};
  } else if (any(flags & FOLL_DUMP) && mm.vm().is_huge_zero_folio(page_folio(head))) {
    r.err = -EFAULT;
  } else {
    r = grab_leaf(vma, page, head, pmd_write(cur), flags, HPAGE_PMD_NR - 1);
  }
  ptl_unlock(&ptl);
  return r;
}

// follow_page_mask (KERNEL-SPEC 4.2).
Followed follow_page_mask(Vma* vma, VirtAddr addr, Foll flags) {
  Mm& mm = vma->vm_mm();
  pud_t* pud = pud_offset(mm, addr);
  if (pud == nullptr) return no_page_table(vma, flags);
  if (pud_leaf(pudp_get(pud))) return follow_huge_pud(vma, pud, addr, flags);
  pmd_t* pmd = pmd_offset(mm, addr);
  if (pmd == nullptr) return no_page_table(vma, flags);
  return follow_pmd_mask(vma, pmd, addr, flags);
}

int vm_fault_to_errno(VmFault ret, Foll flags) {
  if (any(ret & VM_FAULT_OOM)) return -ENOMEM;
  if (any(ret & (VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE)))
    return any(flags & FOLL_HWPOISON) ? -EHWPOISON : -EFAULT;
  if (any(ret & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV))) return -EFAULT;
  return 0;
}

// faultin_page (KERNEL-SPEC 2.3): 0 (look again), -EBUSY (the fault
// dropped the mmap lock: *locked = 0), -EAGAIN (completed with the lock
// dropped), or an errno.
int faultin_page(Vma* vma, VirtAddr addr, Foll flags, bool unshare, int* locked) {
  FaultFlags ff = FAULT_FLAG_NONE;
  if (any(flags & FOLL_NOFAULT)) return -EFAULT;
  if (any(flags & FOLL_WRITE)) ff |= FAULT_FLAG_WRITE;
  if (any(flags & FOLL_REMOTE)) ff |= FAULT_FLAG_REMOTE;
  if (any(flags & FOLL_UNLOCKABLE)) {
    ff |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE;
    if (any(flags & FOLL_INTERRUPTIBLE)) ff |= FAULT_FLAG_INTERRUPTIBLE;
  }
  if (any(flags & FOLL_NOWAIT)) ff |= FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_RETRY_NOWAIT;
  if (any(flags & FOLL_TRIED)) ff |= FAULT_FLAG_TRIED;
  if (unshare) ff |= FAULT_FLAG_UNSHARE;  // never together with WRITE
  const VmFault ret = handle_mm_fault(vma, addr, ff);
  if (any(ret & VM_FAULT_COMPLETED)) {
    *locked = 0;
    return -EAGAIN;
  }
  if (any(ret & VM_FAULT_ERROR)) return vm_fault_to_errno(ret, flags);
  if (any(ret & VM_FAULT_RETRY)) {
    if (!any(ff & FAULT_FLAG_RETRY_NOWAIT)) *locked = 0;
    return -EBUSY;
  }
  return 0;
}

bool gup_signal_pending(Foll flags) {
  const Task& t = current();
  return any(flags & FOLL_INTERRUPTIBLE) ? t.signal_pending() : t.fatal_signal_pending();
}

// __get_user_pages: the walk with the mmap lock held on entry; stops at
// once if a fault drops it (*locked = 0). Returns pages done, or an errno
// if none.
long __get_user_pages(Mm& mm, VirtAddr start, unsigned long nr_pages, Foll flags, Page** pages,
                      int* locked) REQUIRES_SHARED(mm.mmap_lock) {
  if (nr_pages == 0) return 0;
  start = VirtAddr(start.value() & ~(PAGE_SIZE - 1));
  long i = 0;
  long ret = 0;
  Vma* vma = nullptr;
  while (nr_pages > 0) {
    if (vma == nullptr || start >= vma->vm_end) {
      vma = mm.vma_lookup(start);
      if (vma == nullptr) {
        ret = any(flags & FOLL_MADV_POPULATE) ? -ENOMEM : -EFAULT;
        break;
      }
      if (const int err = check_vma_flags(vma, flags); err != 0) {
        ret = any(flags & FOLL_MADV_POPULATE) ? -EINVAL : err;
        break;
      }
    }
    if (current().fatal_signal_pending()) {
      ret = -EINTR;
      break;
    }
    Followed f = follow_page_mask(vma, start, flags);
    if (f.page == nullptr && (f.err == 0 || f.err == -EMLINK)) {
      ret = faultin_page(vma, start, flags, f.err == -EMLINK, locked);
      if (ret == 0) continue;                        // look again
      if (ret == -EBUSY || ret == -EAGAIN) ret = 0;  // the lock is gone: report progress
      break;
    }
    if (f.err == -EEXIST) {
      // A PFN without a page: fine for a fault-in, an error for pages[].
      if (pages != nullptr) {
        ret = f.err;
        break;
      }
    } else if (f.err != 0) {
      ret = f.err;
      break;
    }
    // One lookup serves every page of a huge leaf up to its end.
    uint64_t increm = 1 + (~(start.value() >> PAGE_SHIFT) & f.page_mask);
    increm = std::min<uint64_t>(increm, nr_pages);
    if (pages != nullptr && f.page != nullptr) {
      Folio* folio = page_folio(f.page);
      if (increm > 1 && try_grab_folio(folio, static_cast<int>(increm - 1), flags) != 0) {
        gup_put_folio(folio, 1, flags);
        ret = -EFAULT;
        break;
      }
      for (uint64_t j = 0; j < increm; ++j)
        pages[i + static_cast<long>(j)] = f.page + j;
    }
    i += static_cast<long>(increm);
    start = start + increm * PAGE_SIZE;
    nr_pages -= increm;
  }
  return i != 0 ? i : ret;
}

}  // namespace

// __get_user_pages_locked (KERNEL-SPEC 2.4).
// The mmap lock is taken and dropped as *locked says (the caller's, ours,
// or a fault's), which the static analysis cannot follow: lockdep checks it
// at run time.
long __get_user_pages_locked(Mm& mm, unsigned long start, unsigned long nr_pages, Page** pages,
                             int* locked, Foll flags) NO_THREAD_SAFETY_ANALYSIS {
  bool must_unlock = false;
  if (*locked == 0) {
    if (!mm.mmap_lock.down_read_killable()) return -EAGAIN;
    must_unlock = true;
    *locked = 1;
  }
  if (any(flags & FOLL_PIN)) mm.set_flag(MMF_HAS_PINNED);
  if (pages != nullptr && !any(flags & FOLL_PIN)) flags |= FOLL_GET;

  long pages_done = 0;
  VirtAddr addr(start);
  for (;;) {
    long ret = __get_user_pages(mm, addr, nr_pages, flags, pages, locked);
    if (!any(flags & FOLL_UNLOCKABLE)) {
      pages_done = ret;  // the lock was never dropped
      break;
    }
    if (ret > 0) {
      nr_pages -= static_cast<unsigned long>(ret);
      pages_done += ret;
      if (nr_pages == 0) break;
    }
    if (*locked != 0) {
      // Stopped with the lock held: an error, or done.
      if (pages_done == 0) pages_done = ret;
      break;
    }
    // A fault dropped the lock after `ret` pages: retry the next page once
    // with FOLL_TRIED, until one succeeds, then go on.
    if (pages != nullptr) pages += ret;
    addr = addr + static_cast<uint64_t>(ret) * PAGE_SIZE;
    must_unlock = true;
    for (;;) {
      if (gup_signal_pending(flags)) {
        if (pages_done == 0) pages_done = -EINTR;
        goto done;
      }
      if (!mm.mmap_lock.down_read_killable()) {
        if (pages_done == 0) pages_done = -EINTR;
        goto done;
      }
      *locked = 1;
      ret = __get_user_pages(mm, addr, 1, flags | FOLL_TRIED, pages, locked);
      if (*locked != 0) break;
    }
    if (ret != 1) {
      if (pages_done == 0) pages_done = ret;
      break;
    }
    --nr_pages;
    ++pages_done;
    if (nr_pages == 0) break;
    if (pages != nullptr) ++pages;
    addr = addr + PAGE_SIZE;
  }
done:
  if (must_unlock && *locked != 0) {
    mm.mmap_lock.up_read();
    *locked = 0;
  }
  // The kernel WARNs here: only FOLL_NOWAIT may make no progress.
  if (pages_done == 0 && !any(flags & FOLL_NOWAIT)) return -EFAULT;
  return pages_done;
}

namespace {

Mm* current_mm() { return current().mm(); }

}  // namespace

long get_user_pages(unsigned long start, unsigned long nr_pages, Foll gup_flags, Page** pages) {
  int locked = 1;
  Mm* mm = current_mm();
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags, FOLL_TOUCH))
    return -EINVAL;
  if (mm == nullptr) return -EFAULT;
  if (nr_pages == 0) return 0;
  return __get_user_pages_locked(*mm, start, nr_pages, pages, &locked, gup_flags);
}

long get_user_pages_remote(Mm& mm, unsigned long start, unsigned long nr_pages, Foll gup_flags,
                           Page** pages, int* locked) {
  int local_locked = 1;
  if (!is_valid_gup_args(pages != nullptr, locked, &gup_flags, gup_flags, FOLL_TOUCH | FOLL_REMOTE))
    return -EINVAL;
  if (nr_pages == 0) return 0;
  return __get_user_pages_locked(mm, start, nr_pages, pages,
                                 locked != nullptr ? locked : &local_locked, gup_flags);
}

long get_user_pages_unlocked(unsigned long start, unsigned long nr_pages, Page** pages,
                             Foll gup_flags) {
  int locked = 0;
  Mm* mm = current_mm();
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags,
                         FOLL_TOUCH | FOLL_UNLOCKABLE))
    return -EINVAL;
  if (mm == nullptr) return -EFAULT;
  if (nr_pages == 0) return 0;
  return __get_user_pages_locked(*mm, start, nr_pages, pages, &locked, gup_flags);
}

long pin_user_pages(unsigned long start, unsigned long nr_pages, Foll gup_flags, Page** pages) {
  int locked = 1;
  Mm* mm = current_mm();
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags, FOLL_PIN)) return 0;
  if (mm == nullptr) return -EFAULT;
  if (nr_pages == 0) return 0;
  return record_pins(pages, __gup_longterm_locked(*mm, start, nr_pages, pages, &locked, gup_flags),
                     "pin_user_pages", gup_flags);
}

long pin_user_pages_remote(Mm& mm, unsigned long start, unsigned long nr_pages, Foll gup_flags,
                           Page** pages, int* locked) {
  int local_locked = 1;
  if (!is_valid_gup_args(pages != nullptr, locked, &gup_flags, gup_flags,
                         FOLL_PIN | FOLL_TOUCH | FOLL_REMOTE))
    return 0;
  if (nr_pages == 0) return 0;
  return record_pins(pages,
                     __gup_longterm_locked(mm, start, nr_pages, pages,
                                           locked != nullptr ? locked : &local_locked, gup_flags),
                     "pin_user_pages_remote", gup_flags);
}

long pin_user_pages_unlocked(unsigned long start, unsigned long nr_pages, Page** pages,
                             Foll gup_flags) {
  int locked = 0;
  Mm* mm = current_mm();
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags,
                         FOLL_PIN | FOLL_TOUCH | FOLL_UNLOCKABLE))
    return 0;
  if (mm == nullptr) return -EFAULT;
  if (nr_pages == 0) return 0;
  return record_pins(pages, __gup_longterm_locked(*mm, start, nr_pages, pages, &locked, gup_flags),
                     "pin_user_pages_unlocked", gup_flags);
}

}  // namespace pinmm
