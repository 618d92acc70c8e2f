// gup/'s internal interfaces between its own files. Not for other layers.
#pragma once

#include <span>

#include "pinmm/gup/flags.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class Mm;
class MemorySystem;

// KERNEL-SPEC 2.4: the locked walk with the UNLOCKABLE retry loop.
long __get_user_pages_locked(Mm& mm, unsigned long start, unsigned long nr_pages, Page** pages,
                             int* locked, Foll flags);

// KERNEL-SPEC 5.2: pin, then migrate what may not stay pinned and re-pin,
// for FOLL_LONGTERM; otherwise the plain locked walk.
long __gup_longterm_locked(Mm& mm, unsigned long start, unsigned long nr_pages, Page** pages,
                           int* locked, Foll flags);

// check_and_migrate_movable_folios (KERNEL-SPEC 5.2) for memfd_pin_folios:
// 0 if every folio may stay pinned; -EAGAIN after unpinning all and
// migrating the rest out (re-pin); -ENOMEM if a migration failed (nothing
// pinned any more).
long check_and_migrate_movable_folios(MemorySystem& ms, std::span<Folio*> folios);

// Drops pins taken inside GUP that never reached the caller (undoing a
// fast walk, unpinning before a long-term migration): no owner records.
void unpin_pages_untracked(std::span<Page* const> pages);
void unpin_folios_untracked(std::span<Folio* const> folios);

// Records the owner of the `nr` pins an entry point returns in `pages`
// (phys/pin_owners.h), when `flags` pin; returns nr.
long record_pins(Page** pages, long nr, const char* entry, Foll flags);

}  // namespace pinmm
