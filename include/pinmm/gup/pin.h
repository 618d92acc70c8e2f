// Taking and dropping GUP references and pins on folios.
//
// Linux counterpart: try_grab_folio(), try_grab_folio_fast(),
// gup_put_folio(), folio_add_pin(), unpin_user_page(s),
// unpin_user_pages_dirty_lock(), unpin_user_page_range_dirty_lock(),
// unpin_user_folio(), unpin_folio(s) (mm/gup.c). KERNEL-SPEC 2.5 and 3.
//
// FOLL_GET adds one reference per page. FOLL_PIN on a small folio adds
// GUP_PIN_COUNTING_BIAS (1024) references per page; on a large folio one
// reference and one pincount per page. The shared zero page is never
// counted (a pin of it is pretended and its unpin is a no-op). Each pin and
// unpin moves nr_foll_pin_acquired / nr_foll_pin_released of the folio's
// node.
//
// Thread safety: try_grab_folio needs a reference that cannot go away (the
// page-table lock of an entry mapping the folio). try_grab_folio_fast needs
// none: it adds its references only if the refcount is not zero (a folio
// being freed, or frozen by migration or a split) and then checks that the
// page still belongs to that folio; the full barrier after a pin pairs with
// the one in folio_try_share_anon_rmap_* (KERNEL-SPEC 3.4, 3.6): either
// the sharer sees the pin or the GUP-fast caller's re-read of the entry
// sees it cleared.
#pragma once

#include <span>

#include "pinmm/gup/flags.h"
#include "pinmm/phys/page.h"

namespace pinmm {

// 0, -ENOMEM (refcount not positive: a caller bug the kernel WARNs on).
// No long-term pinnability check here (KERNEL-SPEC 4.3): the slow path
// migrates afterwards.
int try_grab_folio(Folio* folio, int refs, Foll flags);

// The folio of `page` with `refs` references or pins, or nullptr (freed or
// frozen meanwhile; with FOLL_PIN|FOLL_LONGTERM, not long-term pinnable:
// the caller falls back to the slow path).
Folio* try_grab_folio_fast(Page* page, int refs, Foll flags);

// Drops what a grab with `flags` took (FOLL_PIN or FOLL_GET).
void gup_put_folio(Folio* folio, int refs, Foll flags);

// One more pin on an already pinned folio (no-op for the zero page).
void folio_add_pin(Folio* folio);

void unpin_user_page(Page* page);
void unpin_user_folio(Folio* folio, unsigned long npages);
// Consecutive entries of the same folio are dropped together; null
// entries are skipped.
void unpin_user_pages(std::span<Page* const> pages);
// Marks each folio dirty first (under its lock, unless already dirty).
void unpin_user_pages_dirty_lock(std::span<Page* const> pages, bool make_dirty);
// The same for `npages` physically contiguous pages from `page`.
void unpin_user_page_range_dirty_lock(Page* page, unsigned long npages, bool make_dirty);
void unpin_folio(Folio* folio);
void unpin_folios(std::span<Folio* const> folios);

}  // namespace pinmm
