// GUP-fast (KERNEL-SPEC 3.5, 4.1): a lockless page-table walk that grabs
// what is mapped and permitted, and hands the rest of the range to the
// slow path unless FOLL_FAST_ONLY.
//
// Thread safety: the walk runs inside an RCU read section (page tables are
// freed through RCU) while holding a TLB-model access on the mm, standing
// in for the disabled interrupts that make a shootdown wait for the walk.
// Each entry is read once; the folio is grabbed speculatively (add unless
// zero, re-check the page's folio) and the PMD and the entry are read again
// afterwards: if either changed, the grab is undone and the walk stops.
// For FOLL_PIN, fork's write_protect_seq is sampled before and checked
// after the walk: a fork that write-protected the range meanwhile undoes
// every pin of this walk.
#include "internal.h"
#include "pinmm/base/rcu.h"
#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/tlb.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

namespace {

bool access_permitted(uint64_t entry, Foll flags) {
  if (!(entry & _PAGE_PRESENT) || !(entry & _PAGE_USER)) return false;
  return !any(flags & FOLL_WRITE) || (entry & _PAGE_RW);
}

// gup_fast_folio_allowed. Debian's kernel has CONFIG_SECRETMEM, so the
// mapping is looked at for every non-pin grab too (a truncated folio is
// refused).
bool gup_fast_folio_allowed(const Folio* folio, Foll flags) {
  const bool reject_file_backed =
      (flags & (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE)) == (FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE);
  const bool check_mapping = reject_file_backed || !any(flags & FOLL_PIN);
  if (!check_mapping) return true;
  if (folio_test_hugetlb(folio)) return true;
  const uintptr_t mapping = folio->page.mapping();
  if (mapping == 0) return false;  // truncated meanwhile
  if (mapping & PAGE_MAPPING_FLAGS) return mapping & PAGE_MAPPING_ANON;
  if (!reject_file_backed) return true;
  // Only shmem may be pinned long-term for writing without a VMA check.
  return reinterpret_cast<const AddressSpace*>(mapping)->host().is_shmem();
}

struct FastWalk {
  Mm& mm;
  Foll flags;
  Page** pages;
  long nr = 0;
};

// The common checks after a grab of `refs` pages of `folio` at an entry
// whose value was `entry`; false (grab undone) to stop the walk.
bool keep_grab(FastWalk& w, Folio* folio, int refs, bool still_same, bool writable,
               const Page* page) {
  if (!still_same || !gup_fast_folio_allowed(folio, w.flags) ||
      (!writable && gup_must_unshare(nullptr, w.flags, page))) {
    gup_put_folio(folio, refs, w.flags);
    return false;
  }
  folio_set_referenced(folio);
  return true;
}

bool gup_fast_pte_range(FastWalk& w, pmd_t* pmdp, pmd_t pmd, VirtAddr addr, VirtAddr end) {
  MemorySystem& ms = w.mm.ms();
  pte_t* ptep = pte_offset_map(w.mm, pmd, addr);
  for (; addr < end; addr = addr + PAGE_SIZE, ++ptep) {
    const pte_t pte = ptep_get(ptep);
    if (pte_protnone(pte) || !access_permitted(pte.val, w.flags) || pte_special(pte)) return false;
    if (ms.is_zero_pfn(pte_pfn(pte)) || !ms.pfn_valid(pte_pfn(pte))) return false;
    Page* page = ms.pfn_to_page(pte_pfn(pte));
    Folio* folio = try_grab_folio_fast(page, 1, w.flags);
    if (folio == nullptr) return false;
    // The PMD re-read guards against a THP collapse freeing this table.
    const bool same = pmdp_get(pmdp) == pmd && ptep_get(ptep) == pte;
    if (!keep_grab(w, folio, 1, same, pte_write(pte), page)) return false;
    w.pages[w.nr++] = page;
  }
  return true;
}

// A PMD or PUD leaf: every page of it in [addr, end) with one grab.
template <typename E>
bool fast_leaf(FastWalk& w, E* entryp, E entry, uint64_t leaf_size, VirtAddr addr, VirtAddr end) {
  if (!access_permitted(entry.val, w.flags) || (entry.val & _PAGE_SPECIAL)) return false;
  Page* head = w.mm.ms().pfn_to_page(entry_pfn(entry));
  Page* first = head + ((addr.value() & (leaf_size - 1)) >> PAGE_SHIFT);
  const auto refs = static_cast<int>((end - addr) >> PAGE_SHIFT);
  Folio* folio = try_grab_folio_fast(head, refs, w.flags);
  if (folio == nullptr) return false;
  if (!keep_grab(w, folio, refs, entry_get(entryp) == entry, entry.val & _PAGE_RW, head))
    return false;
  for (int i = 0; i < refs; ++i)
    w.pages[w.nr++] = first + i;
  return true;
}

bool gup_fast_pmd_range(FastWalk& w, pud_t* pudp, VirtAddr addr, VirtAddr end) {
  (void)pudp;
  while (addr < end) {
    const VirtAddr next(std::min(end.value(), (addr.value() & PMD_MASK) + PMD_SIZE));
    pmd_t* pmdp = pmd_offset(w.mm, addr);
    if (pmdp == nullptr) return false;
    const pmd_t pmd = pmdp_get(pmdp);
    if (!pmd_present(pmd) || pte_protnone(pte_t{pmd.val})) return false;
    if (pmd_leaf(pmd)) {
      if (!fast_leaf(w, pmdp, pmd, PMD_SIZE, addr, next)) return false;
    } else if (!gup_fast_pte_range(w, pmdp, pmd, addr, next)) {
      return false;
    }
    addr = next;
  }
  return true;
}

void gup_fast_pgd_range(FastWalk& w, VirtAddr addr, VirtAddr end) {
  while (addr < end) {
    const VirtAddr next(std::min(end.value(), (addr.value() & PUD_MASK) + PUD_SIZE));
    pud_t* pudp = pud_offset(w.mm, addr);
    if (pudp == nullptr) return;
    const pud_t pud = pudp_get(pudp);
    if (!pud_present(pud)) return;
    if (pud_leaf(pud)) {
      if (!fast_leaf(w, pudp, pud, PUD_SIZE, addr, next)) return;
    } else if (!gup_fast_pmd_range(w, pudp, addr, next)) {
      return;
    }
    addr = next;
  }
}

// gup_fast: the pages grabbed from the front of the range.
long gup_fast(Mm& mm, VirtAddr start, VirtAddr end, Foll flags, Page** pages) {
  uint32_t seq = 0;
  if (any(flags & FOLL_PIN)) {
    seq = mm.write_protect_seq.raw_read();
    if (seq & 1) return 0;  // fork is write-protecting: take the slow path
  }
  FastWalk w{mm, flags, pages};
  {
    TlbModel::Access cpu(mm.tlb());
    rcu::ReadSection rs;
    gup_fast_pgd_range(w, start, end);
  }
  if (any(flags & FOLL_PIN) && mm.write_protect_seq.retry(seq)) {
    unpin_pages_untracked(std::span<Page* const>(pages, static_cast<size_t>(w.nr)));
    return 0;
  }
  return w.nr;
}

// gup_fast_fallback.
long gup_fast_fallback(unsigned long start, unsigned long nr_pages, Foll flags, Page** pages) {
  if (any(flags & ~GUP_FAST_ALLOWED_FLAGS)) return -EINVAL;  // the kernel WARNs
  Mm* mm = current().mm();
  if (mm == nullptr) return -EFAULT;
  if (any(flags & FOLL_PIN)) mm->set_flag(MMF_HAS_PINNED);
  start &= ~(PAGE_SIZE - 1);
  unsigned long end = 0;
  if (__builtin_mul_overflow(nr_pages, PAGE_SIZE, &end) || __builtin_add_overflow(start, end, &end))
    return -EOVERFLOW;
  if (end > TASK_SIZE) return -EFAULT;
  if (nr_pages == 0) return 0;
  const long nr_pinned = gup_fast(*mm, VirtAddr(start), VirtAddr(end), flags, pages);
  if (nr_pinned == static_cast<long>(nr_pages) || any(flags & FOLL_FAST_ONLY)) return nr_pinned;
  // The rest through the slow path, which takes the mmap lock itself.
  int locked = 0;
  const long ret =
      __gup_longterm_locked(*mm, start + static_cast<unsigned long>(nr_pinned) * PAGE_SIZE,
                            nr_pages - static_cast<unsigned long>(nr_pinned), pages + nr_pinned,
                            &locked, flags | FOLL_TOUCH | FOLL_UNLOCKABLE);
  if (ret < 0) return nr_pinned != 0 ? nr_pinned : ret;
  return ret + nr_pinned;
}

}  // namespace

long get_user_pages_fast(unsigned long start, unsigned long nr_pages, Foll gup_flags,
                         Page** pages) {
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags, FOLL_GET))
    return -EINVAL;
  return gup_fast_fallback(start, nr_pages, gup_flags, pages);
}

long get_user_pages_fast_only(unsigned long start, unsigned long nr_pages, Foll gup_flags,
                              Page** pages) {
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags,
                         FOLL_GET | FOLL_FAST_ONLY))
    return -EINVAL;
  return gup_fast_fallback(start, nr_pages, gup_flags, pages);
}

long pin_user_pages_fast(unsigned long start, unsigned long nr_pages, Foll gup_flags,
                         Page** pages) {
  if (!is_valid_gup_args(pages != nullptr, nullptr, &gup_flags, gup_flags, FOLL_PIN))
    return -EINVAL;
  return record_pins(pages, gup_fast_fallback(start, nr_pages, gup_flags, pages),
                     "pin_user_pages_fast", gup_flags);
}

}  // namespace pinmm
