// validate() for the vm layer.
//
// At a quiescent point (no faults, unmaps or migrations in flight), walks
// every Mm of the VmContext and checks:
//  - every leaf entry lies inside a VMA; present entries map allocated pages
//    of live folios (special entries only the zero page and PFN maps);
//    no migration entry is left behind;
//  - a writable mapping of an anonymous page is PageAnonExclusive, and an
//    exclusive page is mapped once at most;
//  - each folio's mapcounts equal what the page tables hold, over all Mms;
//  - refcount >= mappings + page-cache references + LRU-batch references;
//  - rmap (rmap_walk + page_vma_mapped_walk) finds exactly the entries
//    that map each folio (except drivers' vm_insert_page pages, which rmap
//    cannot find in Linux either);
//  - RSS counters match the entries;
//  - the page-table pages reachable from all Mms (plus deposited THP tables)
//    are all the page-table pages the nodes count (no leak after munmap or
//    exit);
//  - page-cache folios of mapped files point back at their file.
// It also runs the physical layer's validate(). Page-table freeing is
// RCU-deferred, so it first waits for pending RCU callbacks.
#pragma once

#include "pinmm/base/validate.h"
#include "pinmm/vm/vm_context.h"

namespace pinmm {

ValidationReport validate_vm(VmContext& vm);

}  // namespace pinmm
