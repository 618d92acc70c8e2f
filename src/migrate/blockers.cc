#include "pinmm/migrate/blockers.h"

#include <algorithm>

#include "pinmm/migrate/migrate.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/rmap.h"

namespace pinmm {

namespace {

// What a page is, for a person reading the report.
const char* page_kind(const Page* page, const Folio* folio) {
  if (PageReserved(page)) return "reserved";
  if (PageBuddy(page)) return "free";
  if (PageOffline(page)) return "offline";
  if (PageSlab(&folio->page)) return "slab";
  if (PageTable(&folio->page)) return "page table";
  if (folio_test_hugetlb(folio)) return "hugetlb";
  if (__folio_test_movable(folio)) return "movable_ops";
  if (folio_test_anon(folio)) return folio_test_large(folio) ? "anon THP" : "anon";
  if (folio_mapping(folio) != nullptr) {
    if (folio_test_swapbacked(folio)) return folio_test_large(folio) ? "shmem THP" : "shmem";
    return "file";
  }
  return "kernel";
}

// Memory the kernel allocated for itself: nothing can move it.
bool kernel_memory(const Page* page, const Folio* folio) {
  if (PageReserved(page) || PageSlab(&folio->page) || PageTable(&folio->page)) return true;
  return !folio_test_lru(folio) && !__folio_test_movable(folio) && !folio_test_hugetlb(folio) &&
         !folio_test_anon(folio) && folio_mapping(folio) == nullptr && !PageBuddy(page) &&
         !PageOffline(page) && folio_ref_count(folio) > 0;
}

}  // namespace

int folio_expected_ref_count(const Folio* folio) {
  int refs = folio_mapcount(folio);
  if (!folio_test_anon(folio) && folio_mapping(folio) != nullptr) {
    refs += static_cast<int>(folio_nr_pages(folio));
    if (folio_test_private(folio)) ++refs;
  }
  return refs;
}

PageBlocker describe_blocker(MemorySystem& ms, Pfn pfn, BlockReason observed, int err,
                             bool isolated) {
  PageBlocker b;
  b.pfn = pfn;
  b.err = err;
  const Page* page = ms.pfn_to_page(pfn);
  const Folio* folio = page_folio(page);
  b.folio_pfn = ms.page_to_pfn(&folio->page);
  b.nr_pages = PageBuddy(page) ? 1 : folio_nr_pages(folio);
  b.kind = page_kind(page, folio);
  b.refcount = folio_ref_count(folio);
  if (kernel_memory(page, folio)) {
    b.reason = BlockReason::kUnmovable;
    b.kernel_owner = kernel_page_owner(page);
    return b;
  }
  if (PageBuddy(page) || PageOffline(page)) {
    b.reason = observed;
    return b;
  }
  b.mapcount = folio_mapcount(folio);
  b.expected_refs = folio_expected_ref_count(folio) + (isolated ? 1 : 0);
  if (folio_maybe_dma_pinned(folio)) {
    b.reason = BlockReason::kPinned;
    b.pins = folio_test_large(folio)
                 ? static_cast<uint64_t>(folio_pincount(folio))
                 : static_cast<uint64_t>(std::max(b.refcount - b.expected_refs, 0)) /
                       GUP_PIN_COUNTING_BIAS;
    b.owners = ms.pin_owners().owners_of(folio);
  } else if (b.refcount > b.expected_refs) {
    b.reason = BlockReason::kReferenced;
  } else {
    b.reason = observed;
  }
  return b;
}

std::vector<PageBlocker> describe_migration_list(MemorySystem& ms, ListHead* list, int err) {
  // migrate_pages returns how many folios failed; each of those failed its
  // own attempt with -EAGAIN (busy) once the retries ran out.
  if (err > 0) err = -EAGAIN;
  std::vector<PageBlocker> out;
  for (ListHead* pos = list->load_next(); pos != list; pos = pos->load_next()) {
    const Folio* folio = folio_of_lru(pos);
    out.push_back(describe_blocker(ms, folio_pfn(folio), BlockReason::kMigrationFailed, err,
                                   /*isolated=*/true));
  }
  return out;
}

}  // namespace pinmm
