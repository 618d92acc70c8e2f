// Device-exclusive access: a device takes pages away from the CPU for
// atomic operations.
//
// Linux counterpart: make_device_exclusive_range() and
// folio_make_device_exclusive() (mm/rmap.c, 6.12). KERNEL-SPEC 9.6's last
// paragraph. The range is faulted in for writing with GUP (FOLL_GET |
// FOLL_WRITE | FOLL_SPLIT_PMD, so COW is broken and THPs are PTE-mapped);
// each page whose folio can be locked has every mapping replaced by a
// device-exclusive entry (inside an MMU_NOTIFY_EXCLUSIVE invalidation
// carrying `owner`, so the driver can tell its own change from others).
// The entry keeps the mapping's reference but not its mapcount (6.12). A
// CPU access faults and restores the mapping, notifying the driver with
// MMU_NOTIFY_EXCLUSIVE; so does a migration of the page or a fork.
//
// The pages come back locked and referenced; the driver programs its
// atomic mapping under its notifier lock and then unlocks and puts each
// page, after which the CPU may revoke exclusivity at any time.
//
// Thread safety: the caller holds the mmap lock for reading.
#pragma once

#include "pinmm/base/types.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class Mm;

// Returns the number of pages GUP found (pages[i] is non-null, locked and
// referenced, for each one made exclusive), or GUP's negative errno.
long make_device_exclusive_range(Mm& mm, VirtAddr start, VirtAddr end, Page** pages,
                                 const void* owner);

}  // namespace pinmm
