// Page descriptors and folios.
//
// Linux counterpart: struct page and struct folio (include/linux/mm_types.h),
// page-flags.h, page_ref.h and the folio helpers of mm.h. One Page exists per
// PFN, 64 bytes like the kernel's. A folio is a head page followed by its
// tail pages; large folios keep their order, pin count and mapcounts in the
// first tail page, as Linux does since 6.x:
//
//   page[0] (head): flags (PG_head), lru, mapping, index, private,
//                   mapcount (this page), refcount (the folio's)
//   page[1]:        compound_head, order in the low byte of flags,
//                   large_mapcount, entire_mapcount, nr_pages_mapped, pincount
//   page[n] (tail): compound_head = head | 1, mapcount (this page)
//
// Counts are zero-based (mapcount 0 = unmapped), unlike the kernel's -1
// biased _mapcount. The page "type" (buddy, offline, table, hugetlb, slab)
// lives in the top byte of flags rather than overlaying _mapcount.
//
// Thread safety: every field is accessed through atomic_ref. refcount is the
// folio's lifetime: folio_try_get() (add unless zero) is the only way to take
// a reference without already holding one; folio_ref_freeze() turns an
// expected count into 0 so no one can take a new one (migration's
// protocol). Flags are updated with atomic read-modify-writes; the __
// variants (plain load/store) are for pages no other thread can see.
// compound_head and flags may be read locklessly at any time (GUP-fast does).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>

#include "pinmm/base/check.h"
#include "pinmm/base/list.h"
#include "pinmm/base/types.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

class Zone;
class MemorySystem;

// Page flag bits, kernel numbering (include/linux/page-flags.h, 6.12).
enum PageFlag : uint8_t {
  PG_locked,
  PG_writeback,
  PG_referenced,
  PG_uptodate,
  PG_dirty,
  PG_lru,
  PG_head,
  PG_waiters,
  PG_active,
  PG_workingset,
  PG_owner_priv_1,
  PG_owner_2,
  PG_arch_1,
  PG_reserved,
  PG_private,
  PG_private_2,
  PG_reclaim,
  PG_swapbacked,
  PG_unevictable,
  PG_mlocked,
  PG_hwpoison,
  PG_young,
  PG_idle,
  __NR_PAGEFLAGS,

  // Aliases, as in the kernel.
  PG_swapcache = PG_owner_priv_1,
  PG_checked = PG_owner_priv_1,
  PG_anon_exclusive = PG_owner_2,
  PG_mappedtodisk = PG_owner_2,
  PG_isolated = PG_reclaim,
  PG_readahead = PG_reclaim,
  PG_large_rmappable = PG_workingset,  // on page[1]
};

// pinmm-private flag: the frame holds the free-page poison pattern (debug
// builds), so the allocator can check it was not written after free.
inline constexpr unsigned PG_pinmm_poisoned = 31;

// Page types (the kernel's PGTY_*), stored in the top byte of flags.
enum class PageType : uint8_t {
  kNone = 0,
  kBuddy = 0xf0,
  kOffline = 0xf1,
  kTable = 0xf2,
  kGuard = 0xf3,
  kHugetlb = 0xf4,
  kSlab = 0xf5,
};

// Low bits of Page::mapping (include/linux/page-flags.h).
inline constexpr uintptr_t PAGE_MAPPING_ANON = 0x1;
inline constexpr uintptr_t PAGE_MAPPING_MOVABLE = 0x2;
inline constexpr uintptr_t PAGE_MAPPING_KSM = PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE;
inline constexpr uintptr_t PAGE_MAPPING_FLAGS = PAGE_MAPPING_ANON | PAGE_MAPPING_MOVABLE;

namespace page_detail {
template <typename T>
inline std::atomic_ref<T> ref(const T& field) {
  return std::atomic_ref<T>(const_cast<T&>(field));
}
inline constexpr unsigned kTypeShift = 56;
inline constexpr uint64_t kTypeMask = uint64_t{0xff} << kTypeShift;
inline constexpr uint64_t kOrderMask = 0xff;  // page[1]: folio order
}  // namespace page_detail

struct alignas(16) Page {
  // ---- raw storage; use the accessors below ----
  uint64_t flags_;
  union {
    ListHead lru;  // on a buddy free list, an LRU list, or another owner's list
    struct {
      uintptr_t compound_head_;  // tail pages: head | 1
      int32_t large_mapcount_;   // page[1]
      int32_t entire_mapcount_;  // page[1]
    };
  };
  union {
    uintptr_t mapping_;
    struct {
      int32_t nr_pages_mapped_;  // page[1]
      int32_t pincount_;         // page[1]
    };
  };
  uint64_t index_;
  uint64_t private_;
  int32_t mapcount_;
  int32_t refcount_;
  Zone* zone_;

  // ---- flags ----
  uint64_t flags(std::memory_order mo = std::memory_order_relaxed) const {
    return page_detail::ref(flags_).load(mo);
  }
  bool test(unsigned bit, std::memory_order mo = std::memory_order_relaxed) const {
    return (flags(mo) >> bit) & 1;
  }
  void set(unsigned bit) { page_detail::ref(flags_).fetch_or(uint64_t{1} << bit); }
  void clear(unsigned bit) { page_detail::ref(flags_).fetch_and(~(uint64_t{1} << bit)); }
  bool test_and_set(unsigned bit) {
    return (page_detail::ref(flags_).fetch_or(uint64_t{1} << bit) >> bit) & 1;
  }
  bool test_and_clear(unsigned bit) {
    return (page_detail::ref(flags_).fetch_and(~(uint64_t{1} << bit)) >> bit) & 1;
  }
  // Non-atomic read-modify-write, for pages no other thread can reach.
  void __set(unsigned bit) { store_flags(flags() | (uint64_t{1} << bit)); }
  void __clear(unsigned bit) { store_flags(flags() & ~(uint64_t{1} << bit)); }
  void store_flags(uint64_t f) { page_detail::ref(flags_).store(f, std::memory_order_relaxed); }

  PageType type() const {
    return static_cast<PageType>((flags() & page_detail::kTypeMask) >> page_detail::kTypeShift);
  }
  // Type changes happen under the lock of whoever owns the page (zone lock
  // for buddy pages); a page moves between "no type" and one type, so a
  // single atomic OR or AND does it and concurrent flag updates survive.
  void set_type(PageType t) {
    auto f = page_detail::ref(flags_);
    if (t == PageType::kNone) {
      f.fetch_and(~page_detail::kTypeMask, std::memory_order_relaxed);
      return;
    }
    MM_DCHECK(type() == PageType::kNone, this);
    f.fetch_or(uint64_t{static_cast<uint8_t>(t)} << page_detail::kTypeShift,
               std::memory_order_relaxed);
  }

  // ---- compound pages ----
  bool is_tail() const {
    return page_detail::ref(compound_head_).load(std::memory_order_acquire) & 1;
  }
  // The head of the compound page this page belongs to (itself if not a tail).
  // Lockless: a concurrent split or free can change the answer, so lockless
  // callers re-check after taking a reference (folio_try_get protocol).
  Page* compound_head() {
    const uintptr_t h = page_detail::ref(compound_head_).load(std::memory_order_acquire);
    return (h & 1) ? reinterpret_cast<Page*>(h - 1) : this;
  }
  const Page* compound_head() const { return const_cast<Page*>(this)->compound_head(); }

  // ---- counts and words ----
  // Acquire: a reader that sees a count drop (a reference or mapping gone)
  // also sees what the dropping thread did before (release): the reuse
  // checks of COW depend on it.
  int32_t refcount(std::memory_order mo = std::memory_order_acquire) const {
    return page_detail::ref(refcount_).load(mo);
  }
  int32_t mapcount() const { return page_detail::ref(mapcount_).load(std::memory_order_acquire); }
  uintptr_t mapping() const { return page_detail::ref(mapping_).load(std::memory_order_acquire); }
  void set_mapping(uintptr_t m) { page_detail::ref(mapping_).store(m, std::memory_order_release); }
  uint64_t index() const { return page_detail::ref(index_).load(std::memory_order_relaxed); }
  void set_index(uint64_t i) { page_detail::ref(index_).store(i, std::memory_order_relaxed); }
  uint64_t private_data() const {
    return page_detail::ref(private_).load(std::memory_order_relaxed);
  }
  void set_private_data(uint64_t p) {
    page_detail::ref(private_).store(p, std::memory_order_relaxed);
  }
  Zone* zone() const { return page_detail::ref(zone_).load(std::memory_order_relaxed); }
  void set_zone(Zone* z) { page_detail::ref(zone_).store(z, std::memory_order_relaxed); }
};

static_assert(sizeof(Page) == 64, "a page descriptor is 64 bytes, like the kernel's struct page");
static_assert(alignof(Page) == 16);
static_assert(4096 % sizeof(Page) == 0, "page descriptors must tile a 4 KiB page");
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<int32_t>::is_always_lock_free);

// A folio: the head page of a compound page (or a single page). Its tail
// pages follow it in the page array.
struct Folio {
  Page page;
};

inline Folio* page_folio(Page* page) { return reinterpret_cast<Folio*>(page->compound_head()); }
inline const Folio* page_folio(const Page* page) {
  return reinterpret_cast<const Folio*>(page->compound_head());
}
inline Page* folio_page(Folio* folio, uint64_t n) { return &folio->page + n; }
inline const Page* folio_page(const Folio* folio, uint64_t n) { return &folio->page + n; }

inline bool folio_test_large(const Folio* f) { return f->page.test(PG_head); }
inline unsigned folio_order(const Folio* f) {
  if (!folio_test_large(f)) return 0;
  return static_cast<unsigned>(folio_page(f, 1)->flags() & page_detail::kOrderMask);
}
inline uint64_t folio_nr_pages(const Folio* f) { return uint64_t{1} << folio_order(f); }
inline uint64_t folio_size(const Folio* f) { return folio_nr_pages(f) << PAGE_SHIFT; }

// How many consecutive entries of `pages` from `i` belong to `folio` (the
// folio of pages[i]; entries may be null). Subpages listed in order — what
// GUP returns for a large folio — are recognised by their addresses alone,
// without touching their descriptors.
inline size_t folio_run_length(std::span<Page* const> pages, size_t i, const Folio* folio) {
  const Page* first = pages[i];
  const uint64_t left = folio_nr_pages(folio) - static_cast<uint64_t>(first - &folio->page);
  size_t n = 1;
  while (i + n < pages.size() && n < left && pages[i + n] == first + n)
    ++n;
  while (i + n < pages.size() && pages[i + n] != nullptr && page_folio(pages[i + n]) == folio)
    ++n;
  return n;
}

// Calls fn(folio, n) for each run of n consecutive entries of `pages` that
// belong to one folio, skipping null entries.
template <typename Fn>
void for_each_folio_run(std::span<Page* const> pages, Fn fn) {
  for (size_t i = 0; i < pages.size();) {
    if (pages[i] == nullptr) {
      ++i;
      continue;
    }
    Folio* folio = page_folio(pages[i]);
    const size_t n = folio_run_length(pages, i, folio);
    fn(folio, n);
    i += n;
  }
}

// Flag tests on a folio read the head page, as FOLIO_FLAG(..., FOLIO_HEAD_PAGE).
#define PINMM_FOLIO_FLAG(name, bit)                                                 \
  inline bool folio_test_##name(const Folio* f) { return f->page.test(bit); }       \
  inline void folio_set_##name(Folio* f) { f->page.set(bit); }                      \
  inline void folio_clear_##name(Folio* f) { f->page.clear(bit); }                  \
  inline void __folio_set_##name(Folio* f) { f->page.__set(bit); }                  \
  inline void __folio_clear_##name(Folio* f) { f->page.__clear(bit); }              \
  inline bool folio_test_set_##name(Folio* f) { return f->page.test_and_set(bit); } \
  inline bool folio_test_clear_##name(Folio* f) { return f->page.test_and_clear(bit); }

PINMM_FOLIO_FLAG(locked, PG_locked)
PINMM_FOLIO_FLAG(writeback, PG_writeback)
PINMM_FOLIO_FLAG(referenced, PG_referenced)
PINMM_FOLIO_FLAG(uptodate, PG_uptodate)
PINMM_FOLIO_FLAG(dirty, PG_dirty)
PINMM_FOLIO_FLAG(lru, PG_lru)
PINMM_FOLIO_FLAG(active, PG_active)
PINMM_FOLIO_FLAG(workingset, PG_workingset)
PINMM_FOLIO_FLAG(reserved, PG_reserved)
PINMM_FOLIO_FLAG(private, PG_private)
PINMM_FOLIO_FLAG(swapbacked, PG_swapbacked)
PINMM_FOLIO_FLAG(swapcache, PG_swapcache)
PINMM_FOLIO_FLAG(unevictable, PG_unevictable)
PINMM_FOLIO_FLAG(mlocked, PG_mlocked)
PINMM_FOLIO_FLAG(hwpoison, PG_hwpoison)
PINMM_FOLIO_FLAG(isolated, PG_isolated)
PINMM_FOLIO_FLAG(young, PG_young)
PINMM_FOLIO_FLAG(idle, PG_idle)
#undef PINMM_FOLIO_FLAG

inline bool PageBuddy(const Page* p) { return p->type() == PageType::kBuddy; }
// The order of a free buddy block (valid under the zone lock while PageBuddy).
inline unsigned buddy_order(const Page* p) { return static_cast<unsigned>(p->private_data()); }
inline bool PageOffline(const Page* p) { return p->type() == PageType::kOffline; }
inline bool PageTable(const Page* p) { return p->type() == PageType::kTable; }
inline bool PageSlab(const Page* p) { return p->type() == PageType::kSlab; }
inline bool PageReserved(const Page* p) { return p->test(PG_reserved); }
inline bool PageAnonExclusive(const Page* p) { return p->test(PG_anon_exclusive); }
inline bool folio_test_hugetlb(const Folio* f) { return f->page.type() == PageType::kHugetlb; }

inline bool folio_test_anon(const Folio* f) { return f->page.mapping() & PAGE_MAPPING_ANON; }
inline bool folio_test_ksm(const Folio* f) {
  return (f->page.mapping() & PAGE_MAPPING_FLAGS) == PAGE_MAPPING_KSM;
}
inline bool __folio_test_movable(const Folio* f) {
  return (f->page.mapping() & PAGE_MAPPING_FLAGS) == PAGE_MAPPING_MOVABLE;
}

// ---- reference counts (include/linux/page_ref.h) ----

inline int folio_ref_count(const Folio* f) { return f->page.refcount(); }
inline int page_count(const Page* p) { return page_folio(p)->page.refcount(); }
inline void folio_set_count(Folio* f, int v) {
  page_detail::ref(f->page.refcount_).store(v, std::memory_order_release);
}
inline void folio_ref_add(Folio* f, int nr) {
  page_detail::ref(f->page.refcount_).fetch_add(nr, std::memory_order_relaxed);
}
inline void folio_get(Folio* f) {
  MM_DCHECK(folio_ref_count(f) > 0, &f->page);
  folio_ref_add(f, 1);
}
// Drops nr references; true if the count reached zero (the caller frees).
inline bool folio_ref_sub_and_test(Folio* f, int nr) {
  return page_detail::ref(f->page.refcount_).fetch_sub(nr, std::memory_order_acq_rel) == nr;
}
// Adds nr unless the count is zero (the folio is free or frozen). The
// caller must re-check that the page still belongs to this folio.
inline bool folio_ref_try_add(Folio* f, int nr) {
  auto r = page_detail::ref(f->page.refcount_);
  int old = r.load(std::memory_order_relaxed);
  do {
    if (old == 0) return false;
  } while (!r.compare_exchange_weak(old, old + nr, std::memory_order_acquire,
                                    std::memory_order_relaxed));
  return true;
}
inline bool folio_try_get(Folio* f) { return folio_ref_try_add(f, 1); }
// Replaces `expected` references by 0 atomically; fails if the count differs.
inline bool folio_ref_freeze(Folio* f, int expected) {
  int e = expected;
  return page_detail::ref(f->page.refcount_)
      .compare_exchange_strong(e, 0, std::memory_order_acquire);
}
inline void folio_ref_unfreeze(Folio* f, int count) {
  MM_DCHECK(folio_ref_count(f) == 0, &f->page);
  page_detail::ref(f->page.refcount_).store(count, std::memory_order_release);
}

// Large-folio counters in page[1].
inline int folio_pincount(const Folio* f) {
  return page_detail::ref(folio_page(f, 1)->pincount_).load(std::memory_order_relaxed);
}
inline void folio_pincount_add(Folio* f, int nr) {
  page_detail::ref(folio_page(f, 1)->pincount_).fetch_add(nr, std::memory_order_relaxed);
}
inline int folio_entire_mapcount(const Folio* f) {
  return page_detail::ref(folio_page(f, 1)->entire_mapcount_).load(std::memory_order_acquire);
}
inline int folio_large_mapcount(const Folio* f) {
  return page_detail::ref(folio_page(f, 1)->large_mapcount_).load(std::memory_order_acquire);
}
inline int folio_nr_pages_mapped(const Folio* f) {
  return page_detail::ref(folio_page(f, 1)->nr_pages_mapped_).load(std::memory_order_relaxed);
}

// GUP_PIN_COUNTING_BIAS (include/linux/mm.h): one FOLL_PIN on a small folio
// adds this many references.
inline constexpr int GUP_PIN_COUNTING_BIAS = 1 << 10;

// folio_maybe_dma_pinned (KERNEL-SPEC 3.3): exact for large folios (pincount),
// a conservative guess for small ones (refcount >= 1024, compared unsigned so
// that an overflowed count still reads as pinned).
inline bool folio_maybe_dma_pinned(const Folio* f) {
  if (folio_test_large(f)) return folio_pincount(f) > 0;
  return static_cast<unsigned>(folio_ref_count(f)) >= static_cast<unsigned>(GUP_PIN_COUNTING_BIAS);
}

// ---- pfn <-> page, and who the page belongs to ----

Pfn page_to_pfn(const Page* page);
inline Pfn folio_pfn(const Folio* f) { return page_to_pfn(&f->page); }
inline Zone* page_zone(const Page* p) { return p->zone(); }
inline Zone* folio_zone(const Folio* f) { return f->page.zone(); }
int page_to_nid(const Page* page);
inline int folio_nid(const Folio* f) { return page_to_nid(&f->page); }
MemorySystem& page_memory_system(const Page* page);

// The shared zero page.
bool is_zero_folio(const Folio* folio);
inline bool is_zero_page(const Page* page) { return is_zero_folio(page_folio(page)); }

// folio_is_longterm_pinnable (KERNEL-SPEC 5.1): false for folios in CMA or
// isolated pageblocks (checked first) and in ZONE_MOVABLE; true for the
// zero page and everything else.
bool folio_is_longterm_pinnable(const Folio* folio);

// Folio reference release: frees the folio when the last reference goes.
void folio_put(Folio* folio);
void folio_put_refs(Folio* folio, int refs);
inline void put_page(Page* page) { folio_put(page_folio(page)); }
inline void get_page(Page* page) { folio_get(page_folio(page)); }

// The address the kernel's vmemmap would give this page on x86-64
// (0xffffea0000000000 + pfn * 64), for traces and dumps.
uint64_t page_vmemmap_address(const Page* page);

// dump_page(): one paragraph with the page's and its folio's state, in the
// kernel's style. Used by MM_BUG_ON(cond, page) and MM_BUG_ON(cond, folio).
std::string mm_describe(const Page* page);
std::string mm_describe(const Folio* folio);
std::string page_flags_to_string(uint64_t flags);

}  // namespace pinmm
