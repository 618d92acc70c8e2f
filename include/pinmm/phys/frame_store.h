// The contents of physical memory: 4 KiB of host memory per PFN.
//
// Linux counterpart: the direct map (page_address()). The store is one host
// mapping reserved with MAP_NORESERVE, so frames nobody touched cost no host
// memory. Allocation with __GFP_ZERO zeroes frames; debug builds poison freed
// frames with PAGE_POISON (0xaa, as CONFIG_PAGE_POISONING does) and check
// the poison when the frame is handed out again, which catches writes to
// freed memory (a device DMAing into a page that was migrated or freed).
//
// Thread safety: frames are plain bytes. Who may touch a frame is decided by
// the page's owner (pins, locks, the TLB model); the store itself adds no
// synchronisation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "pinmm/base/errno.h"
#include "pinmm/base/types.h"

namespace pinmm {

inline constexpr uint8_t PAGE_POISON = 0xaa;

class FrameStore {
 public:
  static Result<FrameStore> create(uint64_t nr_pfns);
  FrameStore(FrameStore&& other) noexcept;
  FrameStore& operator=(FrameStore&&) = delete;
  FrameStore(const FrameStore&) = delete;
  ~FrameStore();

  std::byte* frame(Pfn pfn) const { return base_ + (pfn.value() << PAGE_SHIFT); }
  // The frame a pointer into the store lies in.
  Pfn pfn_of(const void* p) const {
    return Pfn(static_cast<uint64_t>(static_cast<const std::byte*>(p) - base_) >> PAGE_SHIFT);
  }
  void zero(Pfn pfn, PageCount n) const;
  void poison(Pfn pfn, PageCount n) const;
  // Offset of the first byte in [pfn, pfn+n) that is not PAGE_POISON.
  std::optional<uint64_t> find_unpoisoned(Pfn pfn, PageCount n) const;
  void copy(Pfn dst, Pfn src, PageCount n) const;
  uint64_t nr_pfns() const { return nr_pfns_; }

 private:
  FrameStore(std::byte* base, uint64_t nr_pfns) : base_(base), nr_pfns_(nr_pfns) {}
  std::byte* base_;
  uint64_t nr_pfns_;
};

}  // namespace pinmm
