#include "pinmm/phys/page.h"

#include <array>

#include <fmt/format.h>

#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/memremap.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/zone.h"

namespace pinmm {

Pfn page_to_pfn(const Page* page) {
  return Pfn(static_cast<uint64_t>(page - page->zone()->mem_map()));
}

int page_to_nid(const Page* page) { return page->zone()->nid(); }

MemorySystem& page_memory_system(const Page* page) { return page->zone()->ms(); }

uint64_t page_vmemmap_address(const Page* page) {
  return 0xffffea0000000000ull + page_to_pfn(page).value() * sizeof(Page);
}

namespace {

// Last reference gone: hand the folio to whoever frees its kind.
void __folio_put(Folio* folio) {
  MM_BUG_ON(is_zero_folio(folio), folio);
  if (is_zone_device_page(&folio->page)) {
    free_zone_device_folio(folio);
    return;
  }
  if (folio_test_hugetlb(folio)) {
    page_memory_system(&folio->page).hugetlb().free_huge_folio(folio);
    return;
  }
  folio_lru_release(folio);
  free_frozen_pages(&folio->page, Order(folio_order(folio)));
}

}  // namespace

void folio_put_refs(Folio* folio, int refs) {
  const int old =
      page_detail::ref(folio->page.refcount_).fetch_sub(refs, std::memory_order_acq_rel);
  MM_BUG_ON(old < refs, folio);  // refcount underflow
  if (old == refs) __folio_put(folio);
}

void folio_put(Folio* folio) { folio_put_refs(folio, 1); }

std::string page_flags_to_string(uint64_t flags) {
  static constexpr std::array<const char*, __NR_PAGEFLAGS> kNames = {
      "locked",      "writeback", "referenced", "uptodate",   "dirty",        "lru",
      "head",        "waiters",   "active",     "workingset", "owner_priv_1", "owner_2",
      "arch_1",      "reserved",  "private",    "private_2",  "reclaim",      "swapbacked",
      "unevictable", "mlocked",   "hwpoison",   "young",      "idle",
  };
  std::string out;
  for (unsigned b = 0; b < __NR_PAGEFLAGS; ++b) {
    if (flags & (uint64_t{1} << b)) {
      if (!out.empty()) out += '|';
      out += kNames[b];
    }
  }
  return out;
}

std::string mm_describe(const Page* page) {
  if (page == nullptr) return "page: (null)";
  const Folio* folio = page_folio(page);
  const Pfn pfn = page_to_pfn(page);
  std::string out =
      fmt::format("page: refcount:{} mapcount:{} mapping:{:016x} index:{:#x} pfn:{:#x}",
                  page_count(page), page->mapcount(), page->mapping(), page->index(), pfn.value());
  if (folio_test_large(folio)) {
    out +=
        fmt::format("\nhead: pfn:{:#x} order:{} entire_mapcount:{} nr_pages_mapped:{} pincount:{}",
                    folio_pfn(folio).value(), folio_order(folio), folio_entire_mapcount(folio),
                    folio_nr_pages_mapped(folio), folio_pincount(folio));
  }
  if (folio_test_anon(folio)) out += "\nanon";
  const uint64_t f = page->flags();
  out += fmt::format("\nflags: {:#x}({})", f & ((uint64_t{1} << __NR_PAGEFLAGS) - 1),
                     page_flags_to_string(f));
  if (page->type() != PageType::kNone) {
    out += fmt::format("\npage_type: {:x}", static_cast<unsigned>(page->type()));
  }
  out += fmt::format("\nzone: {} node: {}", page->zone()->name(), page_to_nid(page));
  return out;
}

std::string mm_describe(const Folio* folio) {
  return mm_describe(folio == nullptr ? nullptr : &folio->page);
}

}  // namespace pinmm
