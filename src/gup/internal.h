// gup/'s internal interfaces between its own files. Not for other layers.
#pragma once

#include "pinmm/gup/flags.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class Mm;

// KERNEL-SPEC 2.4: the locked walk with the UNLOCKABLE retry loop.
long __get_user_pages_locked(Mm& mm, unsigned long start, unsigned long nr_pages, Page** pages,
                             int* locked, Foll flags);

// KERNEL-SPEC 5.2: pin, then migrate what may not stay pinned and re-pin,
// for FOLL_LONGTERM; otherwise the plain locked walk.
long __gup_longterm_locked(Mm& mm, unsigned long start, unsigned long nr_pages, Page** pages,
                           int* locked, Foll flags);

}  // namespace pinmm
