// Files: creation, truncate, read and write (mm/shmem.c, mm/truncate.c;
// ext4 and hugetlbfs files share them).
#include "pinmm/vm/filemap.h"

#include <algorithm>
#include <cstring>

#include "internal.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/hugetlb.h"

namespace pinmm {

// ---- File ----

File::File(VmContext& vm, FsType type, std::string name, uint64_t size, unsigned huge_order)
    : vm_(vm),
      type_(type),
      name_(std::move(name)),
      huge_order_(huge_order),
      ino_(vm.next_ino()),
      mapping_(*this),
      size_(size) {}

std::shared_ptr<File> File::create(VmContext& vm, FsType type, std::string name, uint64_t size,
                                   Bytes huge_page_size) {
  unsigned order = 0;
  if (type == FsType::kHugetlbfs)
    order = huge_page_size == Bytes::GiB(1) ? HPAGE_PUD_ORDER : HPAGE_PMD_ORDER;
  return std::shared_ptr<File>(new File(vm, type, std::move(name), size, order));
}

std::shared_ptr<File> File::create_device(VmContext& vm, std::string name, DeviceMmapFn mmap) {
  auto file = std::shared_ptr<File>(new File(vm, FsType::kDevice, std::move(name), 0, 0));
  file->device_mmap_ = std::move(mmap);
  return file;
}

File::~File() {
  // The last reference: every mapping is gone; drop the page cache and any
  // hugetlb reservation still held for shared mappings.
  std::vector<Folio*> folios;
  {
    SpinGuard g(mapping_.i_pages_lock);
    for (const auto& [index, folio] : mapping_.i_pages) {
      folio_get(folio);  // our own reference: removal drops the cache's
      folios.push_back(folio);
    }
  }
  for (Folio* folio : folios) {
    folio_lock(folio);
    filemap_remove_folio(folio);
    folio_unlock(folio);
    folio_put(folio);
  }
  if (reserved_huge_pages != 0) {
    HugetlbPools& pools = vm_.ms().hugetlb();
    MutexGuard g(pools.hugetlb_lock);
    pools.hstate_for_order(huge_order_)->resv_huge_pages -= reserved_huge_pages;
  }
}

uint64_t File::size() const {
  MutexGuard g(size_lock_);
  return size_;
}

// ---- truncate, I/O ----

Result<void> File::truncate(uint64_t new_size) {
  if (is_device()) return Errno(EINVAL);
  if (is_hugetlbfs() && new_size % (uint64_t{1} << (huge_order_ + PAGE_SHIFT)) != 0)
    return Errno(EINVAL);
  uint64_t old_size;
  {
    MutexGuard g(size_lock_);
    old_size = size_;
    size_ = new_size;
  }
  if (new_size >= old_size) return {};
  const uint64_t first_gone = (new_size + PAGE_SIZE - 1) >> PAGE_SHIFT;
  // Unmap first (private COW copies too), then drop the cached pages.
  unmap_mapping_range(*this, first_gone, true);
  std::vector<Folio*> doomed;
  {
    SpinGuard g(mapping_.i_pages_lock);
    for (auto it = mapping_.i_pages.lower_bound(first_gone); it != mapping_.i_pages.end(); ++it) {
      folio_get(it->second);
      doomed.push_back(it->second);
    }
  }
  for (Folio* folio : doomed) {
    folio_lock(folio);
    folio_wait_writeback(folio);
    if (folio_mapping(folio) == &mapping_) filemap_remove_folio(folio);
    folio_unlock(folio);
    folio_put(folio);
  }
  // The tail of a partial last page reads as zeros from now on.
  if (new_size % PAGE_SIZE != 0) {
    if (Folio* folio = filemap_get_folio(mapping_, new_size >> PAGE_SHIFT)) {
      const uint64_t off = new_size % PAGE_SIZE;
      std::byte* frame = vm_.ms().frames().frame(
          folio_pfn(folio) + PageCount((new_size >> PAGE_SHIFT) - folio->page.index()));
      std::memset(frame + off, 0, PAGE_SIZE - off);
      folio_put(folio);
    }
  }
  return {};
}

Result<uint64_t> File::pread(std::span<std::byte> buf, uint64_t offset) {
  if (is_device()) return Errno(EINVAL);
  const uint64_t sz = size();
  if (offset >= sz) return uint64_t{0};
  const uint64_t len = std::min<uint64_t>(buf.size(), sz - offset);
  uint64_t done = 0;
  while (done < len) {
    const uint64_t pos = offset + done;
    const uint64_t index = pos >> PAGE_SHIFT;
    const uint64_t in_page = pos % PAGE_SIZE;
    const uint64_t chunk = std::min(len - done, PAGE_SIZE - in_page);
    if (Folio* folio = filemap_get_folio(mapping_, index)) {
      const std::byte* src =
          vm_.ms().frames().frame(folio_pfn(folio) + PageCount(index - folio->page.index()));
      std::memcpy(buf.data() + done, src + in_page, chunk);
      folio_put(folio);
    } else {
      std::memset(buf.data() + done, 0, chunk);  // a hole reads as zeros
    }
    done += chunk;
  }
  return done;
}

Result<uint64_t> File::pwrite(std::span<const std::byte> buf, uint64_t offset) {
  if (is_hugetlbfs() || is_device()) return Errno(EINVAL);  // no write() method
  {
    MutexGuard g(size_lock_);
    size_ = std::max(size_, offset + buf.size());
  }
  uint64_t done = 0;
  while (done < buf.size()) {
    const uint64_t pos = offset + done;
    const uint64_t index = pos >> PAGE_SHIFT;
    const uint64_t in_page = pos % PAGE_SIZE;
    const uint64_t chunk = std::min<uint64_t>(buf.size() - done, PAGE_SIZE - in_page);
    const GetFolioResult r = filemap_get_or_create_locked(*this, index, GFP_HIGHUSER_MOVABLE);
    if (r.folio == nullptr)
      return done != 0 ? Result<uint64_t>(done) : Result<uint64_t>(Errno(ENOMEM));
    folio_wait_writeback(r.folio);
    std::byte* dst =
        vm_.ms().frames().frame(folio_pfn(r.folio) + PageCount(index - r.folio->page.index()));
    std::memcpy(dst + in_page, buf.data() + done, chunk);
    folio_mark_dirty(r.folio);
    folio_unlock(r.folio);
    folio_put(r.folio);
    done += chunk;
  }
  return done;
}

}  // namespace pinmm
