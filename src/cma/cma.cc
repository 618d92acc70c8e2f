#include "pinmm/cma/cma.h"

#include <fmt/format.h>

#include "pinmm/phys/page_alloc.h"
#include "pinmm/phys/pageblock.h"

namespace pinmm {

// ---- Cma ----

Cma::Cma(const CmaReservation& r)
    : name_(r.name),
      base_pfn_(r.base_pfn),
      count_(r.count.value()),
      order_per_bit_(r.order_per_bit),
      nid_(r.nid) {
  SpinGuard g(lock_);
  bitmap_.assign(bitmap_maxno(), false);
}

uint64_t Cma::find_zero_area(uint64_t start, uint64_t nr, uint64_t mask, uint64_t offset) const {
  const uint64_t size = bitmap_.size();
  for (;;) {
    uint64_t index = start;
    while (index < size && bitmap_[index])
      ++index;
    // Align (index + offset) up to the mask, then back to a bit index.
    index = ((index + offset + mask) & ~mask) - offset;
    const uint64_t end = index + nr;
    if (end > size) return end;
    uint64_t i = index;
    while (i < end && !bitmap_[i])
      ++i;
    if (i == end) return index;
    start = i + 1;
  }
}

void Cma::set_bits(uint64_t first, uint64_t nr, bool value) {
  for (uint64_t i = first; i < first + nr; ++i)
    bitmap_[i] = value;
}

void Cma::clear_bitmap(Pfn pfn, uint64_t count) {
  SpinGuard g(lock_);
  set_bits((pfn - base_pfn_).value() >> order_per_bit_, pages_to_bits(count), false);
}

uint64_t Cma::used_pages() const {
  SpinGuard g(lock_);
  uint64_t bits = 0;
  for (bool b : bitmap_)
    bits += b ? 1 : 0;
  return bits << order_per_bit_;
}

uint64_t Cma::largest_free_pages() const {
  SpinGuard g(lock_);
  uint64_t best = 0, run = 0;
  for (bool b : bitmap_) {
    run = b ? 0 : run + 1;
    best = std::max(best, run);
  }
  return best << order_per_bit_;
}

CmaAreaStats Cma::stats() const {
  return {alloc_success_.load(std::memory_order_relaxed),
          alloc_fail_.load(std::memory_order_relaxed),
          release_success_.load(std::memory_order_relaxed)};
}

// ---- CmaAreas ----

CmaAreas::CmaAreas(MemorySystem& ms) : ms_(ms) {
  // cma_activate_area: the boot reservation already made the pageblocks
  // MIGRATE_CMA and gave the free pages to the buddy allocator.
  for (const CmaReservation& r : ms.cma_reservations())
    areas_.push_back(std::make_unique<Cma>(r));
}

Cma* CmaAreas::find(std::string_view name) {
  for (auto& a : areas_) {
    if (a->name() == name) return a.get();
  }
  return nullptr;
}

Page* CmaAreas::cma_alloc(Cma* cma, uint64_t count, unsigned align, bool no_warn,
                          CmaAllocResult* result) {
  CmaAllocResult local;
  CmaAllocResult& res = result != nullptr ? *result : local;
  res = CmaAllocResult{};
  res.err = -ENOMEM;
  const char* name = cma != nullptr ? cma->name().c_str() : "(null)";
  PINMM_TRACE(ms_.tracer(), cma_alloc_start, "name={} count={} align={}", name, count, align);
  if (cma == nullptr || cma->count() == 0) return nullptr;
  if (count == 0) return nullptr;
  const uint64_t mask = cma->aligned_mask(align);
  const uint64_t offset = cma->aligned_offset(align);
  const uint64_t maxno = cma->bitmap_maxno();
  const uint64_t bitmap_count = cma->pages_to_bits(count);
  if (bitmap_count > maxno) return nullptr;

  res.blocked.operation = "cma_alloc";
  res.blocked.start = cma->base_pfn();
  res.blocked.end = cma->base_pfn() + PageCount(cma->count());
  const Gfp gfp = GFP_KERNEL | (no_warn ? __GFP_NOWARN : GFP_NONE);
  Page* page = nullptr;
  Pfn pfn{~uint64_t{0}};
  uint64_t start = 0;
  for (;;) {
    uint64_t bitmap_no = 0;
    {
      SpinGuard g(cma->lock_);
      bitmap_no = cma->find_zero_area(start, bitmap_count, mask, offset);
      if (bitmap_no >= maxno) break;
      // The run is ours while the lock is dropped; a failure clears it.
      cma->set_bits(bitmap_no, bitmap_count, true);
    }
    pfn = cma->base_pfn() + PageCount(bitmap_no << cma->order_per_bit());
    int ret = 0;
    {
      MutexGuard g(cma_mutex_);
      ++res.slots_tried;
      ret = alloc_contig_range(ms_, pfn, pfn + PageCount(count), MIGRATE_CMA, gfp, &res.blocked);
    }
    res.err = ret;
    if (ret == 0) {
      page = ms_.pfn_to_page(pfn);
      break;
    }
    cma->clear_bitmap(pfn, count);
    if (ret != -EBUSY) break;
    ++res.busy_retries;
    PINMM_TRACE(ms_.tracer(), cma_alloc_busy_retry,
                "name={} pfn={:#x} page={:016x} count={} align={}", name, pfn.value(),
                page_vmemmap_address(ms_.pfn_to_page(pfn)), count, align);
    // Try again a bit further on.
    start = bitmap_no + mask + 1;
  }
  PINMM_TRACE(ms_.tracer(), cma_alloc_finish,
              "name={} pfn={:#x} page={:016x} count={} align={} errorno={}", name, pfn.value(),
              page != nullptr ? page_vmemmap_address(page) : 0, count, align,
              page != nullptr ? 0 : res.err);
  if (page != nullptr) {
    res.err = 0;
    res.blocked.clear_blockers();
    ms_.events().inc(CMA_ALLOC_SUCCESS);
    cma->alloc_success_.fetch_add(count, std::memory_order_relaxed);
    return page;
  }
  ms_.events().inc(CMA_ALLOC_FAIL);
  cma->alloc_fail_.fetch_add(count, std::memory_order_relaxed);
  res.blocked.err = res.err;
  res.blocked.detail =
      fmt::format("{}: alloc failed, req-size: {} pages, ret: {}", cma->name(), count, res.err);
  ms_.blocker_log().add(res.blocked);
  return nullptr;
}

bool CmaAreas::cma_release(Cma* cma, const Page* pages, uint64_t count) {
  // cma_pages_valid.
  if (cma == nullptr || pages == nullptr) return false;
  const Pfn pfn = ms_.page_to_pfn(pages);
  const Pfn end = cma->base_pfn() + PageCount(cma->count());
  if (pfn < cma->base_pfn() || pfn >= end) return false;
  MM_BUG_ON(pfn + PageCount(count) > end, pages);
  free_contig_range(ms_, pfn, PageCount(count));
  cma->clear_bitmap(pfn, count);
  cma->release_success_.fetch_add(count, std::memory_order_relaxed);
  PINMM_TRACE(ms_.tracer(), cma_release, "name={} pfn={:#x} page={:016x} count={}", cma->name(),
              pfn.value(), page_vmemmap_address(pages), count);
  return true;
}

ValidationReport CmaAreas::validate() const {
  ValidationReport r;
  for (const auto& a : areas_) {
    const Cma& cma = *a;
    std::vector<bool> bits;
    {
      SpinGuard g(cma.lock_);
      bits = cma.bitmap_;
    }
    uint64_t set = 0;
    for (uint64_t i = 0; i < bits.size(); ++i) {
      if (!bits[i]) continue;
      ++set;
      // A bit covers 2^order_per_bit pages; an allocation rounds its last
      // bit up, so only the bit's first page must be in use.
      const Pfn first = cma.base_pfn() + PageCount(i << cma.order_per_bit());
      const Page* page = ms_.pfn_to_page(first);
      if (PageBuddy(page) || page->compound_head()->refcount() == 0) {
        r.fail("CMA area '{}': pfn {:#x} is allocated in the bitmap but free", cma.name(),
               first.value());
      }
    }
    for (Pfn pfn = cma.base_pfn(); pfn < cma.base_pfn() + PageCount(cma.count());
         pfn += PageCount(pageblock_nr_pages)) {
      const MigrateType mt = ms_.pageblock_flags().get(pfn);
      if (mt != MIGRATE_CMA && mt != MIGRATE_ISOLATE) {
        r.fail("CMA area '{}': pageblock {:#x} is {}", cma.name(), pfn.value(),
               migratetype_name(mt));
      }
    }
    const CmaAreaStats st = cma.stats();
    if (st.alloc_pages_success < st.release_pages_success ||
        (set << cma.order_per_bit()) > cma.count()) {
      r.fail("CMA area '{}': {} pages allocated, {} released, {} in the bitmap", cma.name(),
             st.alloc_pages_success, st.release_pages_success, set << cma.order_per_bit());
    }
  }
  return r;
}

}  // namespace pinmm
