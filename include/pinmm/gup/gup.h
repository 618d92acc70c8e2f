// get_user_pages and pin_user_pages: the slow path and its entry points.
//
// Linux counterpart: follow_page_mask(), faultin_page(),
// __get_user_pages(), __get_user_pages_locked() and the exported
// get_user_pages*() / pin_user_pages*() of mm/gup.c. KERNEL-SPEC 2 and 4.2
// are the reference: flags forced per entry point, the return conventions
// (a partial count hides the error that stopped the walk; nothing grabbed
// gives the errno), the unshare (-EMLINK) fault, and the UNLOCKABLE retry
// loop that re-takes the mmap lock after a fault dropped it.
//
// `pages` may be nullptr (no references taken: a fault-in/lookup only);
// otherwise it must have room for nr_pages entries. A large folio returned
// for several consecutive pages appears once per page (its subpages) and
// is referenced once per page. The non-remote entry points work on the
// calling Task's mm (current().mm()).
//
// pin_user_pages*(FOLL_LONGTERM) migrates what may not stay pinned first
// (KERNEL-SPEC 5): the result holds only long-term pinnable folios, or the
// call fails with -ENOMEM and holds nothing (and the machine's blocker log,
// phys/blockers.h, says which folios would not move and who pins them).
// That is the "migrate" long-term pin policy; under "in-place"
// (MemorySystem::set_longterm_pin_policy) FOLL_LONGTERM pins stay where
// the memory lies.
//
// Every pin an entry point returns is recorded in the machine's pin-owner
// table (phys/pin_owners.h) under the calling task's owner.
//
// Thread safety: get_user_pages / pin_user_pages / *_remote without
// `locked` need the caller to hold the mmap lock for reading, which GUP
// never drops; with `locked` (or the *_unlocked variants) GUP may drop and
// re-take it, and reports whether it is held in *locked.
#pragma once

#include <span>

#include "pinmm/base/policy.h"
#include "pinmm/gup/flags.h"
#include "pinmm/phys/page.h"

namespace pinmm {

// The long-term pin policies (phys/config.h LongtermPinPolicy), for
// `pinmm policies`.
std::span<const PolicyInfo> longterm_pin_policies();

class File;
class Mm;

long get_user_pages(unsigned long start, unsigned long nr_pages, Foll gup_flags, Page** pages);
long get_user_pages_remote(Mm& mm, unsigned long start, unsigned long nr_pages, Foll gup_flags,
                           Page** pages, int* locked);
long get_user_pages_unlocked(unsigned long start, unsigned long nr_pages, Page** pages,
                             Foll gup_flags);
long pin_user_pages(unsigned long start, unsigned long nr_pages, Foll gup_flags, Page** pages);
long pin_user_pages_remote(Mm& mm, unsigned long start, unsigned long nr_pages, Foll gup_flags,
                           Page** pages, int* locked);
long pin_user_pages_unlocked(unsigned long start, unsigned long nr_pages, Page** pages,
                             Foll gup_flags);

// GUP-fast entry points (KERNEL-SPEC 4.1): no mmap lock needed; what the
// lockless walk cannot take goes to the slow path (which takes the lock),
// unless FOLL_FAST_ONLY. A slow-path error is hidden when the fast walk got
// at least one page. Only FOLL_WRITE, FOLL_LONGTERM, FOLL_FORCE,
// FOLL_NOFAULT, FOLL_PCI_P2PDMA and FOLL_HONOR_NUMA_FAULT may be passed;
// anything else is -EINVAL, as is an invalid combination for the entry.
// Range errors: -EOVERFLOW (start + size wraps), -EFAULT (beyond the user
// address space).
long get_user_pages_fast(unsigned long start, unsigned long nr_pages, Foll gup_flags, Page** pages);
long get_user_pages_fast_only(unsigned long start, unsigned long nr_pages, Foll gup_flags,
                              Page** pages);
long pin_user_pages_fast(unsigned long start, unsigned long nr_pages, Foll gup_flags, Page** pages);

// memfd_pin_folios (KERNEL-SPEC 2.6): pins each distinct folio of a tmpfs or
// hugetlbfs file covering the byte range [start, end] (inclusive), in index
// order, at most max_folios, allocating what is missing; always long-term
// (inside a memalloc_pin scope, folios in ZONE_MOVABLE or CMA migrate
// first). *offset is start's byte offset in the first folio. Returns the
// number of folios (release them with unpin_folio(s)) or -errno with
// nothing pinned: -EINVAL for a bad range, max_folios 0, no file, another
// file system, or end beyond the file; -ENOMEM.
long memfd_pin_folios(File* memfd, int64_t start, int64_t end, Folio** folios, unsigned max_folios,
                      uint64_t* offset);

// gup_must_unshare (KERNEL-SPEC 3.6) for a page mapped read-only; `vma`
// nullptr for the fast path, which cannot tell a COW mapping.
bool gup_must_unshare(const Vma* vma, Foll flags, const Page* page);

}  // namespace pinmm
