// The page cache, file faults and i_mmap (mm/filemap.c, fs/hugetlbfs).
#include "pinmm/vm/filemap.h"

#include <algorithm>

#include "internal.h"
#include "pinmm/phys/folio_lock.h"
#include "pinmm/phys/page_alloc.h"

namespace pinmm {

AddressSpace* folio_mapping(const Folio* folio) {
  const uintptr_t m = folio->page.mapping();
  if (m == 0 || (m & PAGE_MAPPING_FLAGS) != 0) return nullptr;
  return reinterpret_cast<AddressSpace*>(m);
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
      unmap_single_vma(tlb, vma, start, vma->vm_end, ZapDetails{&mapping, even_cows});
    }
    mmu_notifier_invalidate_range_end(range);
  }
}

}  // namespace pinmm
