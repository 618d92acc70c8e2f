#include "pinmm/gup/pin.h"

#include "internal.h"

#include <algorithm>
#include <atomic>

#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/filemap.h"

namespace pinmm {

namespace {

void mod_pin_stat(Folio* folio, NodeStatItem item, int refs) {
  MemorySystem& ms = page_memory_system(&folio->page);
  ms.node(folio_nid(folio)).stats().add(item, refs);
}

// try_get_folio: `refs` references unless the folio is being freed or is
// frozen, on the folio the page still belongs to afterwards.
Folio* try_get_folio(Page* page, int refs) {
  for (;;) {
    Folio* folio = page_folio(page);
    if (!folio_ref_try_add(folio, refs)) return nullptr;
    // A split may have made the page part of another folio before our
    // references landed: they belong to the old one; retry.
    if (page_folio(page) == folio) return folio;
    folio_put_refs(folio, refs);
  }
}

PinOwners& pin_owners_of(const Page* page) { return page_memory_system(page).pin_owners(); }

// The first non-null entry, or nullptr.
template <typename T>
T* first_entry(std::span<T* const> entries) {
  for (T* e : entries) {
    if (e != nullptr) return e;
  }
  return nullptr;
}

void release_owners(std::span<Page* const> pages) {
  if (Page* p = first_entry(pages)) pin_owners_of(p).release(pages);
}

void mark_dirty_locked(Folio* folio) {
  if (folio_test_dirty(folio)) return;
  folio_lock(folio);
  folio_mark_dirty(folio);
  folio_unlock(folio);
}

}  // namespace

int try_grab_folio(Folio* folio, int refs, Foll flags) {
  if (folio_ref_count(folio) <= 0) return -ENOMEM;  // the kernel WARNs: a caller bug
  if (any(flags & FOLL_GET)) {
    folio_ref_add(folio, refs);
  } else if (any(flags & FOLL_PIN)) {
    if (is_zero_folio(folio)) return 0;  // never counted
    if (folio_test_large(folio)) {
      folio_ref_add(folio, refs);
      folio_pincount_add(folio, refs);
    } else {
      folio_ref_add(folio, refs * GUP_PIN_COUNTING_BIAS);
    }
    mod_pin_stat(folio, NR_FOLL_PIN_ACQUIRED, refs);
  }
  return 0;
}

Folio* try_grab_folio_fast(Page* page, int refs, Foll flags) {
  if (!any(flags & (FOLL_GET | FOLL_PIN))) return nullptr;  // the kernel WARNs
  if (any(flags & FOLL_GET)) return try_get_folio(page, refs);
  if (is_zero_page(page)) return page_folio(page);  // pins of the zero page are pretended
  Folio* folio = try_get_folio(page, refs);
  if (folio == nullptr) return nullptr;
  // Only the fast path refuses here: the slow path pins and migrates
  // (unless the long-term pin policy pins in place).
  if (any(flags & FOLL_LONGTERM) && !folio_is_longterm_pinnable(folio) &&
      page_memory_system(page).longterm_pin_policy() == LongtermPinPolicy::kMigrate) {
    folio_put_refs(folio, refs);
    return nullptr;
  }
  if (folio_test_large(folio)) {
    folio_pincount_add(folio, refs);
  } else {
    folio_ref_add(folio, refs * (GUP_PIN_COUNTING_BIAS - 1));
  }
  // Pairs with the barrier of folio_try_share_anon_rmap_*: the caller's
  // re-read of the entry comes after the pin is visible.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  mod_pin_stat(folio, NR_FOLL_PIN_ACQUIRED, refs);
  return folio;
}

void gup_put_folio(Folio* folio, int refs, Foll flags) {
  if (any(flags & FOLL_PIN)) {
    if (is_zero_folio(folio)) return;
    mod_pin_stat(folio, NR_FOLL_PIN_RELEASED, refs);
    if (folio_test_large(folio)) {
      folio_pincount_add(folio, -refs);
    } else {
      refs *= GUP_PIN_COUNTING_BIAS;
    }
  }
  folio_put_refs(folio, refs);
}

void folio_add_pin(Folio* folio) {
  // As the kernel: no nr_foll_pin_acquired update here.
  if (is_zero_folio(folio)) return;
  Folio* const one[] = {folio};
  pin_owners_of(&folio->page).record(one, "folio_add_pin", false);
  if (folio_test_large(folio)) {
    folio_ref_add(folio, 1);
    folio_pincount_add(folio, 1);
  } else {
    folio_ref_add(folio, GUP_PIN_COUNTING_BIAS);
  }
}

void unpin_user_page(Page* page) { unpin_user_folio(page_folio(page), 1); }

void unpin_user_folio(Folio* folio, unsigned long npages) {
  pin_owners_of(&folio->page).release(folio, npages);
  gup_put_folio(folio, static_cast<int>(npages), FOLL_PIN);
}

void unpin_pages_untracked(std::span<Page* const> pages) {
  for_each_folio_run(
      pages, [](Folio* folio, size_t n) { gup_put_folio(folio, static_cast<int>(n), FOLL_PIN); });
}

long record_pins(Page** pages, long nr, const char* entry, Foll flags) {
  if (nr <= 0 || pages == nullptr || !any(flags & FOLL_PIN)) return nr;
  const std::span<Page* const> pinned(pages, static_cast<size_t>(nr));
  if (Page* p = first_entry(pinned))
    pin_owners_of(p).record(pinned, entry, any(flags & FOLL_LONGTERM));
  return nr;
}

void unpin_user_pages(std::span<Page* const> pages) {
  release_owners(pages);
  unpin_pages_untracked(pages);
}

void unpin_user_pages_dirty_lock(std::span<Page* const> pages, bool make_dirty) {
  if (!make_dirty) {
    unpin_user_pages(pages);
    return;
  }
  release_owners(pages);
  for_each_folio_run(pages, [](Folio* folio, size_t n) {
    mark_dirty_locked(folio);
    gup_put_folio(folio, static_cast<int>(n), FOLL_PIN);
  });
}

void unpin_user_page_range_dirty_lock(Page* page, unsigned long npages, bool make_dirty) {
  for (unsigned long i = 0; i < npages;) {
    Folio* folio = page_folio(page + i);
    const uint64_t in_folio =
        folio_nr_pages(folio) - (page_to_pfn(page + i) - folio_pfn(folio)).value();
    const auto n = static_cast<unsigned long>(std::min<uint64_t>(npages - i, in_folio));
    if (make_dirty) mark_dirty_locked(folio);
    unpin_user_folio(folio, n);
    i += n;
  }
}

void unpin_folio(Folio* folio) { unpin_user_folio(folio, 1); }

void unpin_folios_untracked(std::span<Folio* const> folios) {
  for (size_t i = 0; i < folios.size();) {
    if (folios[i] == nullptr) {
      ++i;
      continue;
    }
    size_t n = 1;
    while (i + n < folios.size() && folios[i + n] == folios[i])
      ++n;
    gup_put_folio(folios[i], static_cast<int>(n), FOLL_PIN);
    i += n;
  }
}

void unpin_folios(std::span<Folio* const> folios) {
  if (Folio* f = first_entry(folios)) pin_owners_of(&f->page).release(folios);
  unpin_folios_untracked(folios);
}

}  // namespace pinmm
