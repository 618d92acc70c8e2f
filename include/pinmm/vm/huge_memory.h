// Splitting a transparent huge page into small folios.
//
// Linux counterpart: split_huge_page_to_list_to_order() with new_order 0,
// can_split_folio(), unmap_folio(), __split_huge_page() and remap_page()
// (mm/huge_memory.c). The folio's mappings are replaced by migration
// entries (PMDs are split to PTEs first), its refcount is frozen, the
// compound page becomes 2^order order-0 folios that inherit the head's
// state, and the migration entries are turned back into PTEs to the
// corresponding small folios.
//
// pinmm splits anonymous PMD-sized THPs that are not on an LRU list (the
// callers, migration and later GUP/HMM, isolate first); file THPs are not
// modelled.
//
// Thread safety: the caller holds the folio lock and one reference (e.g.
// the isolation reference). Faults on the folio wait on the migration
// entries, as during a migration.
#pragma once

#include <string_view>

#include "pinmm/base/list.h"
#include "pinmm/phys/page.h"
#include "pinmm/vm/pgtable.h"

namespace pinmm {

class Vma;

// Splits a PMD leaf (THP or huge zero) at `address` into a PTE table of 512
// entries mapping the same pages (FOLL_SPLIT_PMD, VMA boundaries). The
// folio itself stays whole.
void split_huge_pmd(Vma* vma, pmd_t* pmd, VirtAddr address);

namespace inject_point_vm {
// split_folio_to_list fails with -EAGAIN as if the folio had an extra
// reference.
inline constexpr std::string_view kSplitFolio = "vm.split_folio";
}  // namespace inject_point_vm

// Returns 0 with the folio split: the head stays locked with the caller's
// reference; every other new folio is unlocked and put on `list` with a
// reference of its own (the pieces of an isolated folio stay isolated).
// Errors: -EAGAIN if someone else holds a reference (a pin), -EBUSY for a
// folio whose AnonVma is gone or that is still on an LRU list, -EINVAL for
// anything but an anonymous PMD-sized THP or without a list.
// thp_split_page or thp_split_page_failed counts the outcome.
int split_folio_to_list(Folio* folio, ListHead* list);

}  // namespace pinmm
