#include "pinmm/phys/pageblock.h"

#include <atomic>

#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page.h"
#include "pinmm/phys/zone.h"

namespace pinmm {

PageblockFlags::PageblockFlags(uint64_t nr_pfns)
    : nr_blocks_((nr_pfns + pageblock_nr_pages - 1) >> pageblock_order),
      words_(new uint64_t[(nr_blocks_ + kBlocksPerWord - 1) / kBlocksPerWord]()) {}

MigrateType PageblockFlags::get(Pfn pfn) const {
  const uint64_t block = pfn.value() >> pageblock_order;
  MM_BUG_ON(block >= nr_blocks_);
  const uint64_t word =
      std::atomic_ref<uint64_t>(words_[block / kBlocksPerWord]).load(std::memory_order_relaxed);
  const unsigned shift = (block % kBlocksPerWord) * kBitsPerBlock;
  return static_cast<MigrateType>((word >> shift) & 0x7);
}

void PageblockFlags::set(Pfn pfn, MigrateType mt) {
  const uint64_t block = pfn.value() >> pageblock_order;
  MM_BUG_ON(block >= nr_blocks_);
  std::atomic_ref<uint64_t> word(words_[block / kBlocksPerWord]);
  const unsigned shift = (block % kBlocksPerWord) * kBitsPerBlock;
  const uint64_t mask = uint64_t{0x7} << shift;
  uint64_t old = word.load(std::memory_order_relaxed);
  while (!word.compare_exchange_weak(old, (old & ~mask) | (uint64_t{mt} << shift),
                                     std::memory_order_relaxed)) {
  }
}

MigrateType get_pfnblock_migratetype(const Page* page, Pfn pfn) {
  return page_zone(page)->ms().pageblock_flags().get(pfn);
}

MigrateType get_pageblock_migratetype(const Page* page) {
  return get_pfnblock_migratetype(page, page_to_pfn(page));
}

void set_pageblock_migratetype(Page* page, MigrateType mt) {
  page_zone(page)->ms().pageblock_flags().set(page_to_pfn(page), mt);
}

void change_pageblock_range(Page* page, unsigned order, MigrateType mt) {
  uint64_t nr_blocks = order >= pageblock_order ? uint64_t{1} << (order - pageblock_order) : 1;
  PageblockFlags& flags = page_zone(page)->ms().pageblock_flags();
  Pfn pfn = page_to_pfn(page);
  while (nr_blocks--) {
    flags.set(pfn, mt);
    pfn += PageCount(pageblock_nr_pages);
  }
}

}  // namespace pinmm
