#include "pinmm/phys/frame_store.h"

#include <sys/mman.h>

#include <cstring>

namespace pinmm {

Result<FrameStore> FrameStore::create(uint64_t nr_pfns) {
  void* p = ::mmap(nullptr, nr_pfns << PAGE_SHIFT, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return Errno(ENOMEM);
  // Host transparent huge pages make first touch of simulated memory one host
  // fault per 2 MiB instead of per 4 KiB; a failure only costs speed.
  (void)::madvise(p, nr_pfns << PAGE_SHIFT, MADV_HUGEPAGE);
  return FrameStore(static_cast<std::byte*>(p), nr_pfns);
}

FrameStore::FrameStore(FrameStore&& other) noexcept : base_(other.base_), nr_pfns_(other.nr_pfns_) {
  other.base_ = nullptr;
  other.nr_pfns_ = 0;
}

FrameStore::~FrameStore() {
  if (base_ != nullptr) ::munmap(base_, nr_pfns_ << PAGE_SHIFT);
}

void FrameStore::zero(Pfn pfn, PageCount n) const { std::memset(frame(pfn), 0, n.bytes()); }

void FrameStore::poison(Pfn pfn, PageCount n) const {
  std::memset(frame(pfn), PAGE_POISON, n.bytes());
}

std::optional<uint64_t> FrameStore::find_unpoisoned(Pfn pfn, PageCount n) const {
  const auto* p = reinterpret_cast<const uint8_t*>(frame(pfn));
  const uint64_t len = n.bytes();
  // Compare a word at a time; find the byte only on a mismatch.
  constexpr uint64_t kPoisonWord = 0xaaaaaaaaaaaaaaaaull;
  for (uint64_t i = 0; i < len; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != kPoisonWord) {
      for (uint64_t j = i; j < i + 8; ++j) {
        if (p[j] != PAGE_POISON) return j;
      }
    }
  }
  return std::nullopt;
}

void FrameStore::copy(Pfn dst, Pfn src, PageCount n) const {
  std::memcpy(frame(dst), frame(src), n.bytes());
}

}  // namespace pinmm
