// Files and the page cache.
//
// Linux counterpart: struct file / inode / address_space, mm/filemap.c,
// mm/shmem.c, fs/hugetlbfs, mm/truncate.c and the writeback half of
// mm/page-writeback.c. Three kinds of file system:
//  - tmpfs (shmem, memfd, and the object behind MAP_SHARED|MAP_ANONYMOUS):
//    pages live only in the page cache; no writeback, no dirty tracking;
//  - hugetlbfs (and the object behind MAP_HUGETLB): the page cache holds
//    hugetlb folios of the file's huge page size from the pools;
//  - ext4, standing in for any disk file system: dirty pages are tracked
//    (shared writable mappings are write-protected until a write fault marks
//    the folio dirty; writeback cleans folios and write-protects them
//    again), and page-cache misses count as major faults (a read from disk,
//    which here reads zeros or what was last written back);
//  - device files (a character device with a driver's mmap handler, see
//    device_map.h): no page cache, no read/write; mmap calls the handler.
// A folio in the page cache holds one reference per page, has mapping =
// the AddressSpace and index = its first page's offset.
//
// Thread safety: i_pages (index -> folio) is guarded by i_pages_lock, the
// list of mapping VMAs (i_mmap) by i_mmap_rwsem, the size by size_lock.
// Page-cache folios are locked (PG_locked) while they are being added,
// truncated, written back or migrated.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "pinmm/base/errno.h"
#include "pinmm/base/locks.h"
#include "pinmm/phys/gfp.h"
#include "pinmm/phys/page.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/vm_context.h"

namespace pinmm {

class File;
class Vma;

enum class FsType : uint8_t { kTmpfs, kHugetlbfs, kExt4, kDevice };

// struct address_space: a file's page cache and its mappings.
class AddressSpace {
 public:
  explicit AddressSpace(File& host) : host_(host) {}
  File& host() const { return host_; }

  mutable SpinLock i_pages_lock{LockRank::kMappingPages};
  // Folios by the index of their first page.
  std::map<uint64_t, Folio*> i_pages GUARDED_BY(i_pages_lock);
  uint64_t nrpages GUARDED_BY(i_pages_lock) = 0;

  mutable RwSem i_mmap_rwsem{LockRank::kIMmap};
  std::vector<Vma*> i_mmap GUARDED_BY(i_mmap_rwsem);

 private:
  File& host_;
};

// The page cache a folio belongs to, or nullptr (anonymous, free, or removed).
AddressSpace* folio_mapping(const Folio* folio);

// A driver's mmap handler (file_operations.mmap): vm_mmap calls it with the
// new VMA in place and the mmap lock held for writing; it fills the VMA with
// remap_pfn_range() or vm_insert_page(). An error undoes the mapping and is
// what mmap returns.
using DeviceMmapFn = std::function<Result<void>(Vma& vma)>;

class File : public std::enable_shared_from_this<File> {
 public:
  // A file of `size` bytes (0 is fine). For hugetlbfs, `huge_page_size` is
  // 2MiB or 1GiB.
  static std::shared_ptr<File> create(VmContext& vm, FsType type, std::string name, uint64_t size,
                                      Bytes huge_page_size = Bytes::MiB(2));
  // A device file whose mappings `mmap` sets up.
  static std::shared_ptr<File> create_device(VmContext& vm, std::string name, DeviceMmapFn mmap);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  VmContext& vm() const { return vm_; }
  FsType fs_type() const { return type_; }
  const std::string& name() const { return name_; }
  // The inode number and the (anonymous) device number of the file's file
  // system as the filemap trace events print them: major 0, minor 1 + the
  // FsType.
  uint64_t ino() const { return ino_; }
  unsigned dev_minor() const { return 1 + static_cast<unsigned>(type_); }
  bool is_shmem() const { return type_ == FsType::kTmpfs; }
  bool is_hugetlbfs() const { return type_ == FsType::kHugetlbfs; }
  bool is_device() const { return type_ == FsType::kDevice; }
  // The driver's mmap handler (device files only).
  const DeviceMmapFn& device_mmap() const { return device_mmap_; }
  // Disk file systems need to know when a shared mapping dirties a page.
  bool needs_dirty_tracking() const { return type_ == FsType::kExt4; }
  // hugetlbfs: the huge page order of the file's pages (9 or 18); 0 otherwise.
  unsigned huge_order() const { return huge_order_; }
  AddressSpace& mapping() { return mapping_; }
  const AddressSpace& mapping() const { return mapping_; }

  uint64_t size() const EXCLUDES(size_lock_);
  // ftruncate(2): growing only changes the size; shrinking unmaps the cut
  // pages from every mapping (private COW copies too) and drops them from
  // the page cache, and zeroes the tail of a partial last page.
  // EINVAL for hugetlbfs sizes that are not huge-page multiples and for
  // device files.
  Result<void> truncate(uint64_t new_size) EXCLUDES(size_lock_);
  // pread(2)/pwrite(2) through the page cache. Writes extend the file.
  // EINVAL on device files (no read/write methods) and for hugetlbfs writes.
  Result<uint64_t> pread(std::span<std::byte> buf, uint64_t offset);
  Result<uint64_t> pwrite(std::span<const std::byte> buf, uint64_t offset);
  // ext4: writes back every dirty folio (clean + write-protect its mappings).
  // A no-op elsewhere. Returns the number of folios written.
  uint64_t writeback();

  // hugetlbfs reservations of shared mappings (pages reserved at mmap, not
  // yet faulted), released when the file goes.
  uint64_t reserved_huge_pages = 0;

 private:
  File(VmContext& vm, FsType type, std::string name, uint64_t size, unsigned huge_order);

  VmContext& vm_;
  const FsType type_;
  const std::string name_;
  const unsigned huge_order_;
  const uint64_t ino_;
  AddressSpace mapping_;
  DeviceMmapFn device_mmap_;
  mutable Mutex size_lock_{LockRank::kLeaf};
  uint64_t size_ GUARDED_BY(size_lock_);
};

// ---- page cache operations (mm/filemap.c) ----

// The folio covering `index`, with a reference, or nullptr.
Folio* filemap_get_folio(AddressSpace& mapping, uint64_t index);
// filemap_get_folios_contig: the folios covering `*start` onwards, up to
// `end` (inclusive) and at most kFolioBatchSize of them, stopping at the
// first hole; each with a reference (drop them with folio_put). `*start`
// moves past the last folio returned.
inline constexpr size_t kFolioBatchSize = 31;  // PAGEVEC_SIZE
unsigned filemap_get_folios_contig(AddressSpace& mapping, uint64_t* start, uint64_t end,
                                   std::vector<Folio*>& batch);
// Adds a locked new folio at `index` (aligned to its size): the cache takes
// nr_pages references and the folio joins the LRU. EEXIST if something is
// there already.
Result<void> filemap_add_folio(AddressSpace& mapping, Folio* folio, uint64_t index);
// Removes a locked folio from its page cache and drops the cache's
// references.
void filemap_remove_folio(Folio* folio);
// Marks a page-cache folio dirty (with the counters); false if it already was.
bool folio_mark_dirty(Folio* folio);
// The folio for `index`, created if missing (zeroed, uptodate), locked and
// with a reference; SIGBUS beyond EOF; OOM. `major` tells whether a disk
// read was simulated.
struct GetFolioResult {
  Folio* folio = nullptr;
  VmFault error = VM_FAULT_NONE;
  bool major = false;
};
GetFolioResult filemap_get_or_create_locked(File& file, uint64_t index, Gfp gfp);

// memfd_alloc_folio (mm/memfd.c): the folio for `index` of a tmpfs or
// hugetlbfs file that has none yet, added to its page cache and returned
// unlocked with a reference. A hugetlb folio comes from the pool (the
// file's reservation if it has one left, else an unreserved free page);
// inside a memalloc_pin scope neither kind comes from ZONE_MOVABLE or CMA.
// EEXIST if another folio got there first (hugetlbfs; tmpfs returns that
// one), ENOMEM, EINVAL for other file systems or beyond EOF.
Result<Folio*> memfd_alloc_folio(File& memfd, uint64_t index);

// The VmOperations of each file system, chosen by vm_mmap.
const VmOperations* file_vm_ops(const File& file);
// Whether writes through a shared mapping of this VMA must be tracked
// (vma_needs_dirty_tracking): shared, writable, on a file system that
// writes back. GUP refuses long-term writable pins there.
bool vma_needs_dirty_tracking(const Vma* vma);

}  // namespace pinmm
