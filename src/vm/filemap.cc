// Files and the page cache (mm/filemap.c, mm/shmem.c, mm/truncate.c,
// mm/page-writeback.c, fs/hugetlbfs).
#include "pinmm/vm/filemap.h"

#include <algorithm>
#include <cstring>

#include "internal.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/page_alloc.h"
#include "pinmm/vm/mm.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {

const char* fs_type_name(FsType t) {
  switch (t) {
    case FsType::kTmpfs:
      return "tmpfs";
    case FsType::kHugetlbfs:
      return "hugetlbfs";
    case FsType::kExt4:
      return "ext4";
    case FsType::kDevice:
      return "char";
  }
  return "?";
}

AddressSpace* folio_mapping(const Folio* folio) {
  const uintptr_t m = folio->page.mapping();
  if (m == 0 || (m & PAGE_MAPPING_FLAGS) != 0) return nullptr;
  return reinterpret_cast<AddressSpace*>(m);
}

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

// ---- page cache ----

Folio* filemap_get_folio(AddressSpace& mapping, uint64_t index) {
  SpinGuard g(mapping.i_pages_lock);
  auto it = mapping.i_pages.upper_bound(index);
  if (it == mapping.i_pages.begin()) return nullptr;
  --it;
  Folio* folio = it->second;
  if (index >= it->first + folio_nr_pages(folio)) return nullptr;
  folio_get(folio);  // the cache's references keep it alive under the lock
  return folio;
}

unsigned filemap_get_folios_contig(AddressSpace& mapping, uint64_t* start, uint64_t end,
                                   std::vector<Folio*>& batch) {
  batch.clear();
  SpinGuard g(mapping.i_pages_lock);
  uint64_t index = *start;
  auto it = mapping.i_pages.upper_bound(index);
  if (it == mapping.i_pages.begin()) return 0;
  --it;
  while (index <= end && batch.size() < kFolioBatchSize && it != mapping.i_pages.end()) {
    Folio* folio = it->second;
    if (index < it->first || index >= it->first + folio_nr_pages(folio)) break;  // a hole
    folio_get(folio);
    batch.push_back(folio);
    index = it->first + folio_nr_pages(folio);
    ++it;
  }
  *start = index;
  return static_cast<unsigned>(batch.size());
}

namespace {

void mod_file_stats(Folio* folio, int64_t nr) {
  MemorySystem& ms = page_memory_system(&folio->page);
  NodeStats& st = ms.node(folio_nid(folio)).stats();
  if (folio_test_hugetlb(folio)) return;  // hugetlb pages are not "file pages"
  st.add(NR_FILE_PAGES, nr);
  if (folio_test_swapbacked(folio)) st.add(NR_SHMEM, nr);
}

// mm_filemap_add_to_page_cache / mm_filemap_delete_from_page_cache.
void trace_filemap_op(TraceEvent event, const AddressSpace& mapping, const Folio* folio) {
  Tracer& tracer = page_memory_system(&folio->page).tracer();
  if (!tracer.enabled(event)) return;
  const File& file = mapping.host();
  tracer.emit(event, "dev 0:{} ino {:x} pfn={:#x} ofs={} order={}", file.dev_minor(), file.ino(),
              folio_pfn(folio).value(), folio->page.index() << PAGE_SHIFT, folio_order(folio));
}

}  // namespace

Result<void> filemap_add_folio(AddressSpace& mapping, Folio* folio, uint64_t index) {
  MM_BUG_ON(!folio_test_locked(folio), folio);
  const uint64_t nr = folio_nr_pages(folio);
  {
    SpinGuard g(mapping.i_pages_lock);
    auto it = mapping.i_pages.lower_bound(index);
    if (it != mapping.i_pages.end() && it->first < index + nr) return Errno(EEXIST);
    if (it != mapping.i_pages.begin()) {
      auto prev = std::prev(it);
      if (prev->first + folio_nr_pages(prev->second) > index) return Errno(EEXIST);
    }
    folio_ref_add(folio, static_cast<int>(nr));
    folio->page.set_index(index);
    folio->page.set_mapping(reinterpret_cast<uintptr_t>(&mapping));
    mapping.i_pages.emplace(index, folio);
    mapping.nrpages += nr;
  }
  mod_file_stats(folio, static_cast<int64_t>(nr));
  trace_filemap_op(TraceEvent::mm_filemap_add_to_page_cache, mapping, folio);
  if (!folio_test_hugetlb(folio)) folio_add_lru(folio);
  return {};
}

void filemap_remove_folio(Folio* folio) {
  MM_BUG_ON(!folio_test_locked(folio), folio);
  AddressSpace* mapping = folio_mapping(folio);
  MM_BUG_ON(mapping == nullptr, folio);
  const uint64_t nr = folio_nr_pages(folio);
  {
    SpinGuard g(mapping->i_pages_lock);
    mapping->i_pages.erase(folio->page.index());
    mapping->nrpages -= nr;
  }
  if (folio_test_dirty(folio)) {
    MemorySystem& ms = page_memory_system(&folio->page);
    if (!folio_test_hugetlb(folio))
      ms.node(folio_nid(folio)).stats().add(NR_FILE_DIRTY, -static_cast<int64_t>(nr));
    folio_clear_dirty(folio);
  }
  mod_file_stats(folio, -static_cast<int64_t>(nr));
  trace_filemap_op(TraceEvent::mm_filemap_delete_from_page_cache, *mapping, folio);
  folio->page.set_mapping(0);
  folio_put_refs(folio, static_cast<int>(nr));
}

bool folio_mark_dirty(Folio* folio) {
  if (folio_test_set_dirty(folio)) return false;
  if (folio_mapping(folio) != nullptr && !folio_test_hugetlb(folio)) {
    MemorySystem& ms = page_memory_system(&folio->page);
    NodeStats& st = ms.node(folio_nid(folio)).stats();
    st.add(NR_FILE_DIRTY, static_cast<int64_t>(folio_nr_pages(folio)));
    st.add(NR_DIRTIED, static_cast<int64_t>(folio_nr_pages(folio)));
  }
  return true;
}

GetFolioResult filemap_get_or_create_locked(File& file, uint64_t index, Gfp gfp) {
  GetFolioResult r;
  if ((index << PAGE_SHIFT) >= file.size()) {
    r.error = VM_FAULT_SIGBUS;
    return r;
  }
  AddressSpace& mapping = file.mapping();
  for (;;) {
    if (Folio* folio = filemap_get_folio(mapping, index)) {
      folio_lock(folio);
      if (folio_mapping(folio) != &mapping) {  // truncated while we waited
        folio_unlock(folio);
        folio_put(folio);
        continue;
      }
      r.folio = folio;
      return r;
    }
    Folio* folio = folio_alloc(file.vm().ms(), gfp | __GFP_ZERO, Order(0));
    if (folio == nullptr) {
      r.error = VM_FAULT_OOM;
      return r;
    }
    if (file.is_shmem()) folio_set_swapbacked(folio);
    folio_set_uptodate(folio);
    folio_lock(folio);
    if (!filemap_add_folio(mapping, folio, index).ok()) {  // EEXIST: someone else added it
      folio_unlock(folio);
      folio_put(folio);
      continue;
    }
    // A disk file system read the page from disk; tmpfs just allocated it.
    r.major = file.needs_dirty_tracking();
    r.folio = folio;
    return r;
  }
}

// ---- faults ----

namespace {

// lock_folio_maybe_drop_mmap: the folio is locked by someone else. With
// ALLOW_RETRY on the first try, drop the mmap lock (unless RETRY_NOWAIT),
// wait, and ask for a retry; otherwise sleep on the lock. (Releasing the
// caller's mmap lock is conditional, which the static analysis cannot
// express.)
bool lock_folio_or_retry(Folio* folio, VmFaultInfo& vmf, VmFault* ret) NO_THREAD_SAFETY_ANALYSIS {
  if (folio_trylock(folio)) return true;
  const bool first_try =
      any(vmf.flags & FAULT_FLAG_ALLOW_RETRY) && !any(vmf.flags & FAULT_FLAG_TRIED);
  if (first_try) {
    *ret = VM_FAULT_RETRY;
    if (any(vmf.flags & FAULT_FLAG_RETRY_NOWAIT)) return false;  // mmap lock kept
    vmf.vma->vm_mm().mmap_lock.up_read();
    folio_wait_locked(folio);
    return false;
  }
  folio_lock(folio);
  return true;
}

uint32_t generic_file_fault(VmFaultInfo& vmf) NO_THREAD_SAFETY_ANALYSIS {
  File& file = *vmf.vma->vm_file;
  AddressSpace& mapping = file.mapping();
  // A cached folio that someone holds locked (truncate, writeback,
  // migration) may make us drop the mmap lock and retry.
  if (Folio* folio = filemap_get_folio(mapping, vmf.pgoff)) {
    VmFault ret = VM_FAULT_NONE;
    if (!lock_folio_or_retry(folio, vmf, &ret)) {
      folio_put(folio);
      return raw(ret);
    }
    if (folio_mapping(folio) != &mapping) {
      folio_unlock(folio);
      folio_put(folio);
      return raw(VM_FAULT_NOPAGE);  // truncated: refault
    }
    vmf.page = folio_page(folio, vmf.pgoff - folio->page.index());
    return raw(VM_FAULT_LOCKED);
  }
  const GetFolioResult r = filemap_get_or_create_locked(file, vmf.pgoff, GFP_HIGHUSER_MOVABLE);
  if (r.folio == nullptr) return raw(r.error);
  vmf.page = folio_page(r.folio, vmf.pgoff - r.folio->page.index());
  return raw(VM_FAULT_LOCKED | (r.major ? VM_FAULT_MAJOR : VM_FAULT_NONE));
}

// ext4's page_mkwrite: a shared page is about to be written; the page
// becomes dirty (and would get blocks allocated).
uint32_t ext4_page_mkwrite(VmFaultInfo& vmf) {
  Folio* folio = page_folio(vmf.page);
  folio_lock(folio);
  if (folio_mapping(folio) == nullptr) {
    folio_unlock(folio);
    return raw(VM_FAULT_NOPAGE);
  }
  folio_wait_writeback(folio);
  folio_mark_dirty(folio);
  return raw(VM_FAULT_LOCKED);
}

uint32_t hugetlbfs_fault(VmFaultInfo&) {
  // hugetlb VMAs fault through hugetlb_fault(), never through vm_ops->fault.
  MM_BUG_ON(true);
  return raw(VM_FAULT_SIGBUS);
}

constexpr VmOperations kShmemVmOps{"shmem", generic_file_fault, nullptr};
constexpr VmOperations kExt4VmOps{"ext4", generic_file_fault, ext4_page_mkwrite};
constexpr VmOperations kHugetlbVmOps{"hugetlbfs", hugetlbfs_fault, nullptr};
// A device mapping is filled by the driver at mmap time; a fault anywhere
// it left empty is SIGBUS.
constexpr VmOperations kDeviceVmOps{"device", nullptr, nullptr};

}  // namespace

const VmOperations* file_vm_ops(const File& file) {
  switch (file.fs_type()) {
    case FsType::kTmpfs:
      return &kShmemVmOps;
    case FsType::kExt4:
      return &kExt4VmOps;
    case FsType::kHugetlbfs:
      return &kHugetlbVmOps;
    case FsType::kDevice:
      return &kDeviceVmOps;
  }
  return nullptr;
}

bool vma_needs_dirty_tracking(const Vma* vma) {
  if (!any(vma->vm_flags & VM_SHARED) || !any(vma->vm_flags & VM_WRITE)) return false;
  return vma->vm_file && vma->vm_file->needs_dirty_tracking();
}

// ---- i_mmap ----

void file_vma_link(Vma* vma) {
  AddressSpace& mapping = vma->vm_file->mapping();
  WriteGuard g(mapping.i_mmap_rwsem);
  mapping.i_mmap.push_back(vma);
}

void file_vma_unlink(Vma* vma) {
  AddressSpace& mapping = vma->vm_file->mapping();
  WriteGuard g(mapping.i_mmap_rwsem);
  std::erase(mapping.i_mmap, vma);
}

void unmap_mapping_range(File& file, uint64_t from_index, bool even_cows) {
  AddressSpace& mapping = file.mapping();
  std::vector<Vma*> vmas;
  {
    ReadGuard g(mapping.i_mmap_rwsem);
    vmas = mapping.i_mmap;
  }
  for (Vma* vma : vmas) {
    const uint64_t vend = vma->vm_pgoff + vma->pages();
    if (vend <= from_index) continue;
    const uint64_t first = std::max(from_index, vma->vm_pgoff);
    const VirtAddr start = vma_address(vma, first);
    Mm& mm = vma->vm_mm();
    const MmuNotifierRange range{
        &mm, start, vma->vm_end, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_CLEAR, nullptr};
    mmu_notifier_invalidate_range_start(range);
    {
      MmuGather tlb(mm);
      zap_page_range(vma, start, vma->vm_end, tlb, ZapDetails{&mapping, even_cows});
    }
    mmu_notifier_invalidate_range_end(range);
  }
}

// ---- truncate, I/O, writeback ----

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

namespace {

// folio_mkclean: write-protect and clean every PTE mapping the folio, so
// the next write through a mapping faults and dirties it again.
void folio_mkclean(Folio* folio) {
  rmap_walk(folio, [folio](Vma* vma, VirtAddr) {
    bool changed = false;
    Mm& mm = vma->vm_mm();
    const MmuNotifierRange range{&mm,
                                 vma->vm_start,
                                 vma->vm_end,
                                 MMU_NOTIFIER_RANGE_BLOCKABLE,
                                 MMU_NOTIFY_PROTECTION_PAGE,
                                 nullptr};
    mmu_notifier_invalidate_range_start(range);
    page_vma_mapped_walk(folio, vma, false, [&](PageVmaMapped& m) {
      if (m.pte != nullptr) {
        const pte_t pte = ptep_get(m.pte);
        if (pte_write(pte) || pte_dirty(pte)) {
          set_pte(m.pte, pte_mkclean(pte_wrprotect(pte)));
          changed = true;
        }
      }
      return true;
    });
    if (changed) mm.tlb().flush();
    mmu_notifier_invalidate_range_end(range);
    return true;
  });
}

}  // namespace

uint64_t File::writeback() {
  if (!needs_dirty_tracking()) return 0;
  std::vector<Folio*> dirty;
  {
    SpinGuard g(mapping_.i_pages_lock);
    for (const auto& [index, folio] : mapping_.i_pages) {
      if (folio_test_dirty(folio)) {
        folio_get(folio);
        dirty.push_back(folio);
      }
    }
  }
  MemorySystem& ms = vm_.ms();
  uint64_t written = 0;
  for (Folio* folio : dirty) {
    folio_lock(folio);
    if (folio_mapping(folio) == &mapping_ && folio_test_dirty(folio)) {
      // folio_clear_dirty_for_io: clean the mappings first, then the folio.
      folio_mkclean(folio);
      folio_clear_dirty(folio);
      const auto nr = static_cast<int64_t>(folio_nr_pages(folio));
      NodeStats& st = ms.node(folio_nid(folio)).stats();
      st.add(NR_FILE_DIRTY, -nr);
      folio_set_writeback(folio);
      st.add(NR_WRITEBACK, nr);
      // The I/O completes at once.
      st.add(NR_WRITEBACK, -nr);
      st.add(NR_WRITTEN, nr);
      folio_end_writeback(folio);
      ++written;
    }
    folio_unlock(folio);
    folio_put(folio);
  }
  return written;
}

}  // namespace pinmm
