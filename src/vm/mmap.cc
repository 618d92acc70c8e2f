// mmap, munmap, mprotect, madvise, fork's dup_mm and exit_mmap
// (mm/mmap.c, mm/vma.c, mm/mprotect.c, mm/madvise.c, kernel/fork.c).
#include "pinmm/vm/mmap.h"

#include <algorithm>

#include "internal.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/rmap.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

constexpr uint64_t kMmapMinAddr = 0x10000;  // vm.mmap_min_addr
// MAP_HUGE_SHIFT / MAP_HUGE_1GB from <linux/mman.h>.
constexpr int kMapHugeShift = 26;
constexpr int kMapHugeMask = 0x3f;

uint64_t page_align(uint64_t len) { return (len + PAGE_SIZE - 1) & PAGE_MASK; }

VmFlags calc_vm_prot_bits(int prot) {
  VmFlags f = VM_NONE;
  if (prot & PROT_READ) f |= VM_READ;
  if (prot & PROT_WRITE) f |= VM_WRITE;
  if (prot & PROT_EXEC) f |= VM_EXEC;
  return f;
}

bool range_free(const Mm& mm, uint64_t start, uint64_t len) REQUIRES_SHARED(mm.mmap_lock) {
  if (start < kMmapMinAddr || start + len > TASK_SIZE || start + len < start) return false;
  const Vma* v = mm.find_vma(VirtAddr(start));
  return v == nullptr || v->vm_start.value() >= start + len;
}

// Top-down search for a gap of `len` aligned to `align`, below kMmapBase.
std::optional<uint64_t> find_gap(const Mm& mm, uint64_t len, uint64_t align)
    REQUIRES_SHARED(mm.mmap_lock) {
  uint64_t high = Mm::kMmapBase;
  std::vector<Vma*> vmas = mm.vmas_in_range(VirtAddr(kMmapMinAddr), VirtAddr(high));
  for (auto it = vmas.rbegin();; ++it) {
    const uint64_t low =
        it == vmas.rend() ? kMmapMinAddr : std::max((*it)->vm_end.value(), kMmapMinAddr);
    if (high >= len && high - len >= low) {
      const uint64_t addr = (high - len) & ~(align - 1);
      if (addr >= low) return addr;
    }
    if (it == vmas.rend()) break;
    high = std::min(high, (*it)->vm_start.value());
  }
  return std::nullopt;
}

std::optional<uint64_t> get_unmapped_area(const Mm& mm, uint64_t hint, uint64_t len, int flags,
                                          uint64_t align) REQUIRES_SHARED(mm.mmap_lock) {
  if (flags & MAP_FIXED) return hint;
  if (hint != 0 && hint % align == 0 && range_free(mm, hint, len)) return hint;
  return find_gap(mm, len, align);
}

Result<void> do_munmap(Mm& mm, VirtAddr start, VirtAddr end) REQUIRES(mm.mmap_lock);

}  // namespace

// ---- mmap ----

Result<VirtAddr> vm_mmap(Mm& mm, VirtAddr addr, uint64_t len, int prot, int flags,
                         std::shared_ptr<File> file, uint64_t offset) {
  if (offset % PAGE_SIZE != 0) return Errno(EINVAL);
  if (len == 0) return Errno(EINVAL);
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) return Errno(EINVAL);
  const int map_type = flags & MAP_TYPE;
  if (map_type != MAP_SHARED && map_type != MAP_PRIVATE && map_type != MAP_SHARED_VALIDATE)
    return Errno(EINVAL);
  const bool shared = map_type != MAP_PRIVATE;
  const bool anon = flags & MAP_ANONYMOUS;
  if (!anon && file == nullptr) return Errno(EBADF);
  if (anon) file = nullptr;
  len = page_align(len);
  if (len > TASK_SIZE || len == 0) return Errno(ENOMEM);

  VmContext& vm = mm.vm();
  uint64_t align = PAGE_SIZE;
  // MAP_HUGETLB: anonymous memory from a hidden hugetlbfs file.
  if (anon && (flags & MAP_HUGETLB)) {
    const int huge = (flags >> kMapHugeShift) & kMapHugeMask;
    if (huge != 0 && huge != 21 && huge != 30) return Errno(EINVAL);
    const Bytes size = huge == 30 ? Bytes::GiB(1) : Bytes::MiB(2);
    len = (len + size.value() - 1) & ~(size.value() - 1);
    file = File::create(vm, FsType::kHugetlbfs, "anon_hugepage", len, size);
  } else if (anon && shared) {
    file = File::create(vm, FsType::kTmpfs, "dev/zero", len);  // shmem_zero_setup
  }
  if (file != nullptr && file->is_hugetlbfs()) {
    const uint64_t hsz = uint64_t{1} << (file->huge_order() + PAGE_SHIFT);
    if (offset % hsz != 0) return Errno(EINVAL);
    if ((flags & MAP_FIXED) && addr.value() % hsz != 0) return Errno(EINVAL);
    len = (len + hsz - 1) & ~(hsz - 1);
    align = hsz;
  } else if (anon && !shared && len % PMD_SIZE == 0) {
    align = PMD_SIZE;  // larger anonymous mappings are THP-aligned
  }
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && (addr.value() % PAGE_SIZE != 0))
    return Errno(EINVAL);
  if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;

  VmFlags vm_flags = calc_vm_prot_bits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  if (shared) vm_flags |= VM_SHARED | VM_MAYSHARE;
  if (file != nullptr && file->is_hugetlbfs()) vm_flags |= VM_HUGETLB | VM_DONTEXPAND;
  if (flags & MAP_NORESERVE) vm_flags |= VM_NORESERVE;

  VirtAddr start;
  {
    WriteGuard g(mm.mmap_lock);
    if ((flags & MAP_FIXED) &&
        (addr.value() + len > TASK_SIZE || addr.value() + len < addr.value())) {
      return Errno(ENOMEM);
    }
    const auto where = get_unmapped_area(mm, addr.value(), len, flags, align);
    if (!where) return Errno(ENOMEM);
    start = VirtAddr(*where);
    const VirtAddr end = start + len;
    if ((flags & MAP_FIXED_NOREPLACE) && !mm.vmas_in_range(start, end).empty())
      return Errno(EEXIST);
    if (flags & MAP_FIXED) TRY(do_munmap(mm, start, end));

    const uint64_t pgoff = file != nullptr ? offset >> PAGE_SHIFT : start.value() >> PAGE_SHIFT;
    auto vma = std::make_unique<Vma>(mm, start, end, vm_flags, pgoff);
    if (file != nullptr) {
      vma->vm_file = file;
      vma->vm_ops = file_vm_ops(*file);
    }
    vma_set_page_prot(vma.get());
    if (is_vm_hugetlb_page(vma.get())) TRY(hugetlb_reserve_pages(vma.get()));
    if (file != nullptr) file_vma_link(vma.get());
    Vma& inserted = *vma;
    mm.insert_vma(std::move(vma));
    if (file != nullptr && file->is_device()) {
      const Result<void> r = file->device_mmap() ? file->device_mmap()(inserted) : Errno(ENODEV);
      if (!r.ok()) {
        (void)do_munmap(mm, start, end);
        return r.error();
      }
    }
  }
  if ((flags & MAP_POPULATE) && !(flags & MAP_NONBLOCK)) {
    // mm_populate: errors do not fail the mmap.
    ReadGuard g(mm.mmap_lock);
    for (Vma* vma : mm.vmas_in_range(start, start + len)) {
      const bool write = (vma->vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE;
      if (!any(vma->vm_flags & (VM_IO | VM_PFNMAP)) &&
          any(vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC))) {
        (void)populate_range(vma, std::max(start, vma->vm_start),
                             std::min(start + len, vma->vm_end), write);
      }
    }
  }
  return start;
}

// ---- munmap ----

namespace {

// Splits so that no VMA straddles `at`; EINVAL when that would cut a huge page.
Result<void> split_at(Mm& mm, VirtAddr at) REQUIRES(mm.mmap_lock) {
  Vma* v = mm.vma_lookup(at);
  if (v == nullptr || v->vm_start == at) return {};
  if (is_vm_hugetlb_page(v) &&
      at.value() % (uint64_t{1} << (huge_page_order_of(v) + PAGE_SHIFT)) != 0) {
    return Errno(EINVAL);
  }
  mm.split_vma(v, at);
  return {};
}

// free_pgtables' first step: take the VMA out of the rmap (its anon_vma
// family and its file's i_mmap) before its page tables are freed. An rmap
// walker holds the anon_vma or i_mmap lock across its walk, so once the
// unlink (which takes those locks for writing) returns, no walker can reach
// the tables any more.
void unlink_vma_from_rmap(Vma* vma) {
  unlink_anon_vmas(vma);
  if (vma->vm_file) file_vma_unlink(vma);
}

void destroy_vma(Mm& mm, Vma* vma) REQUIRES(mm.mmap_lock) {
  if (is_vm_hugetlb_page(vma)) hugetlb_vma_release(vma);
  mm.detach_vma(vma);  // the unique_ptr dies here
}

Result<void> do_munmap(Mm& mm, VirtAddr start, VirtAddr end) {
  if (mm.vmas_in_range(start, end).empty()) return {};
  TRY(split_at(mm, start));
  TRY(split_at(mm, end));
  const std::vector<Vma*> vmas = mm.vmas_in_range(start, end);
  if (vmas.empty()) return {};
  // The gap the unmap leaves: from the previous VMA's end to the next one's start.
  VirtAddr floor(0), ceiling(TASK_SIZE + PAGE_SIZE);
  for (Vma* v : mm.all_vmas()) {
    if (v->vm_end <= start) floor = std::max(floor, v->vm_end);
    if (v->vm_start >= end) ceiling = std::min(ceiling, v->vm_start);
  }
  const MmuNotifierRange range{&mm,    start, end, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_UNMAP,
                               nullptr};
  mmu_notifier_invalidate_range_start(range);
  {
    MmuGather tlb(mm);
    for (Vma* vma : vmas)
      unmap_single_vma(tlb, vma, vma->vm_start, vma->vm_end);
    for (Vma* vma : vmas)
      unlink_vma_from_rmap(vma);
    free_pgtables(mm, start, end, floor, ceiling, tlb);
  }
  mmu_notifier_invalidate_range_end(range);
  for (Vma* vma : vmas)
    destroy_vma(mm, vma);
  return {};
}

}  // namespace

Result<void> vm_munmap(Mm& mm, VirtAddr start, uint64_t len) {
  if (!start.is_page_aligned() || len == 0) return Errno(EINVAL);
  len = page_align(len);
  if (start.value() > TASK_SIZE || len > TASK_SIZE - start.value()) return Errno(EINVAL);
  WriteGuard g(mm.mmap_lock);
  return do_munmap(mm, start, start + len);
}

// ---- mprotect ----

Result<void> do_mprotect(Mm& mm, VirtAddr start, uint64_t len, int prot) {
  if (!start.is_page_aligned()) return Errno(EINVAL);
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) return Errno(EINVAL);
  if (len == 0) return {};
  len = page_align(len);
  const VirtAddr end = start + len;
  if (end <= start) return Errno(ENOMEM);
  const VmFlags newprot = calc_vm_prot_bits(prot);
  WriteGuard g(mm.mmap_lock);
  // The whole range must be mapped, and every VMA allow the new rights.
  VirtAddr cursor = start;
  for (Vma* v : mm.vmas_in_range(start, end)) {
    if (v->vm_start > cursor) return Errno(ENOMEM);
    if (any(newprot & VM_WRITE) && !any(v->vm_flags & VM_MAYWRITE)) return Errno(EACCES);
    if (any(newprot & VM_READ) && !any(v->vm_flags & VM_MAYREAD)) return Errno(EACCES);
    if (any(newprot & VM_EXEC) && !any(v->vm_flags & VM_MAYEXEC)) return Errno(EACCES);
    cursor = v->vm_end;
  }
  if (cursor < end) return Errno(ENOMEM);
  TRY(split_at(mm, start));
  TRY(split_at(mm, end));
  for (Vma* vma : mm.vmas_in_range(start, end)) {
    vma->vm_flags = (vma->vm_flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | newprot;
    vma_set_page_prot(vma);
    const MmuNotifierRange range{
        &mm,    vma->vm_start, vma->vm_end, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_PROTECTION_VMA,
        nullptr};
    mmu_notifier_invalidate_range_start(range);
    {
      MmuGather tlb(mm);
      change_protection(vma, vma->vm_start, vma->vm_end, tlb);
    }
    mmu_notifier_invalidate_range_end(range);
  }
  return {};
}

// ---- madvise ----

namespace {

Result<void> madvise_dontneed(Mm& mm, VirtAddr start, VirtAddr end) REQUIRES_SHARED(mm.mmap_lock) {
  bool hole = false;
  VirtAddr cursor = start;
  for (Vma* vma : mm.vmas_in_range(start, end)) {
    if (vma->vm_start > cursor) hole = true;
    cursor = vma->vm_end;
    if (any(vma->vm_flags & (VM_LOCKED | VM_PFNMAP))) return Errno(EINVAL);
    const VirtAddr s = std::max(start, vma->vm_start);
    const VirtAddr e = std::min(end, vma->vm_end);
    if (is_vm_hugetlb_page(vma)) {
      const uint64_t hsz = uint64_t{1} << (huge_page_order_of(vma) + PAGE_SHIFT);
      if (s.value() % hsz != 0 || e.value() % hsz != 0) return Errno(EINVAL);
    }
    const MmuNotifierRange range{&mm,    s, e, MMU_NOTIFIER_RANGE_BLOCKABLE, MMU_NOTIFY_CLEAR,
                                 nullptr};
    mmu_notifier_invalidate_range_start(range);
    {
      MmuGather tlb(mm);
      unmap_single_vma(tlb, vma, s, e);
    }
    mmu_notifier_invalidate_range_end(range);
  }
  if (hole || cursor < end) return Errno(ENOMEM);
  return {};
}

Result<void> madvise_populate(Mm& mm, VirtAddr start, VirtAddr end, bool write)
    REQUIRES_SHARED(mm.mmap_lock) {
  VirtAddr cursor = start;
  while (cursor < end) {
    Vma* vma = mm.vma_lookup(cursor);
    if (vma == nullptr) return Errno(ENOMEM);  // no VMA
    if (any(vma->vm_flags & (VM_IO | VM_PFNMAP))) return Errno(EINVAL);
    if (write ? !any(vma->vm_flags & VM_WRITE) : !any(vma->vm_flags & VM_READ))
      return Errno(EINVAL);
    const VirtAddr e = std::min(end, vma->vm_end);
    TRY(populate_range(vma, cursor, e, write));
    cursor = e;
  }
  return {};
}

// The new vm_flags of `vma` under `advice`, or EINVAL (MADV_DOFORK on VM_IO).
Result<VmFlags> madvise_new_flags(const Vma* vma, int advice) {
  VmFlags f = vma->vm_flags;
  switch (advice) {
    case MADV_HUGEPAGE:
      if (any(f & (VM_SPECIAL | VM_HUGETLB))) return f;
      return (f | VM_HUGEPAGE) & ~VM_NOHUGEPAGE;
    case MADV_NOHUGEPAGE:
      if (any(f & (VM_SPECIAL | VM_HUGETLB))) return f;
      return (f | VM_NOHUGEPAGE) & ~VM_HUGEPAGE;
    case MADV_DONTFORK:
      return f | VM_DONTCOPY;
    case MADV_DOFORK:
      if (any(f & VM_IO)) return Errno(EINVAL);
      return f & ~VM_DONTCOPY;
  }
  return Errno(EINVAL);
}

// Advice that only changes VMA flags. Like the kernel, the mapped parts of
// the range are updated even when it has holes; ENOMEM reports the holes.
Result<void> madvise_update_flags(Mm& mm, VirtAddr start, VirtAddr end, int advice)
    REQUIRES(mm.mmap_lock) {
  bool hole = false;
  VirtAddr cursor = start;
  for (Vma* vma : mm.vmas_in_range(start, end)) {
    if (vma->vm_start > cursor) hole = true;
    cursor = vma->vm_end;
    const VmFlags flags = TRY(madvise_new_flags(vma, advice));
    if (flags == vma->vm_flags) continue;
    const VirtAddr s = std::max(start, vma->vm_start);
    const VirtAddr e = std::min(end, vma->vm_end);
    TRY(split_at(mm, s));
    TRY(split_at(mm, e));
    mm.vma_lookup(s)->vm_flags = flags;
  }
  if (hole || cursor < end) return Errno(ENOMEM);
  return {};
}

}  // namespace

Result<void> do_madvise(Mm& mm, VirtAddr start, uint64_t len, int advice) {
  if (!start.is_page_aligned()) return Errno(EINVAL);
  switch (advice) {
    case MADV_DONTNEED:
    case MADV_HUGEPAGE:
    case MADV_NOHUGEPAGE:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
    case MADV_DONTFORK:
    case MADV_DOFORK:
      break;
    default:
      return Errno(EINVAL);
  }
  if (len == 0) return {};
  len = page_align(len);
  const VirtAddr end = start + len;
  if (end < start) return Errno(EINVAL);
  if (advice != MADV_DONTNEED && advice != MADV_POPULATE_READ && advice != MADV_POPULATE_WRITE) {
    WriteGuard g(mm.mmap_lock);
    return madvise_update_flags(mm, start, end, advice);
  }
  ReadGuard g(mm.mmap_lock);
  if (advice == MADV_DONTNEED) return madvise_dontneed(mm, start, end);
  return madvise_populate(mm, start, end, advice == MADV_POPULATE_WRITE);
}

// ---- fork and exit ----

Result<MmHandle> dup_mm(Mm& parent) {
  MmHandle child = Mm::create(parent.vm());
  if (!child) return Errno(ENOMEM);
  Result<void> result;
  {
    WriteGuard gp(parent.mmap_lock);
    child->mmap_lock.down_write_nested();
    for (Vma* src : parent.all_vmas()) {
      if (any(src->vm_flags & VM_DONTCOPY)) continue;
      auto dst =
          std::make_unique<Vma>(*child, src->vm_start, src->vm_end, src->vm_flags, src->vm_pgoff);
      dst->vm_page_prot = src->vm_page_prot;
      dst->vm_file = src->vm_file;
      dst->vm_ops = src->vm_ops;
      if (src->anon_vma != nullptr && !any(src->vm_flags & VM_WIPEONFORK))
        anon_vma_clone(dst.get(), src);
      if (dst->vm_file) file_vma_link(dst.get());
      Vma* d = child->insert_vma(std::move(dst));
      if (!any(src->vm_flags & VM_WIPEONFORK)) {
        result = copy_page_range(d, src);
        if (!result.ok()) break;
      }
    }
    // Parent entries were write-protected: flush its TLB.
    parent.tlb().flush();
    child->mmap_lock.up_write();
  }
  if (!result.ok()) return result.error();  // the child handle tears the partial copy down
  return child;
}

void exit_mmap(Mm& mm) {
  mm.notifiers().release(mm);
  WriteGuard g(mm.mmap_lock);
  const std::vector<Vma*> vmas = mm.all_vmas();
  {
    MmuGather tlb(mm);
    for (Vma* vma : vmas)
      unmap_single_vma(tlb, vma, vma->vm_start, vma->vm_end);
    for (Vma* vma : vmas)
      unlink_vma_from_rmap(vma);
    free_pgtables(mm, VirtAddr(0), VirtAddr(TASK_SIZE + PAGE_SIZE), VirtAddr(0),
                  VirtAddr(TASK_SIZE + PAGE_SIZE), tlb);
  }
  for (Vma* vma : vmas)
    destroy_vma(mm, vma);
}

}  // namespace pinmm
