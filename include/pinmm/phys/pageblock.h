// Pageblock flags: the migratetype of every 2 MiB pageblock.
//
// Linux counterpart: include/linux/pageblock-flags.h and the usemap that
// SPARSEMEM keeps per section (get_pfnblock_migratetype,
// set_pageblock_migratetype). pinmm keeps one bitmap over the whole PFN
// space, 4 bits per pageblock (3 bits of migratetype, 1 spare), in 64-bit
// words updated by compare-and-swap.
//
// Thread safety: readers may look without a lock (GUP reads it to decide
// long-term pinnability); writers hold the zone lock of the block, so a
// block's type changes only under that lock.
#pragma once

#include <cstdint>
#include <memory>

#include "pinmm/base/types.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

struct Page;

class PageblockFlags {
 public:
  explicit PageblockFlags(uint64_t nr_pfns);

  MigrateType get(Pfn pfn) const;
  void set(Pfn pfn, MigrateType mt);
  uint64_t bytes() const {
    return (nr_blocks_ + kBlocksPerWord - 1) / kBlocksPerWord * sizeof(uint64_t);
  }

 private:
  static constexpr unsigned kBitsPerBlock = 4;
  static constexpr unsigned kBlocksPerWord = 64 / kBitsPerBlock;
  uint64_t nr_blocks_;
  std::unique_ptr<uint64_t[]> words_;
};

MigrateType get_pfnblock_migratetype(const Page* page, Pfn pfn);
MigrateType get_pageblock_migratetype(const Page* page);
// Caller holds the zone lock of the page's zone.
void set_pageblock_migratetype(Page* page, MigrateType mt);
// Sets every pageblock covered by the 2^order block at `page` (order may be
// below pageblock_order, in which case only the containing block changes).
void change_pageblock_range(Page* page, unsigned order, MigrateType mt);

inline Pfn pageblock_start_pfn(Pfn pfn) { return pfn.align_down(kPageblockOrder); }
inline Pfn pageblock_end_pfn(Pfn pfn) {
  return pageblock_start_pfn(pfn) + PageCount(pageblock_nr_pages);
}

}  // namespace pinmm
