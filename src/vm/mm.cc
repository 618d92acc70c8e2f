#include "pinmm/vm/mm.h"

#include <array>
#include <optional>
#include <utility>

#include "internal.h"
#include "pinmm/base/task.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mmap.h"
#include "pinmm/vm/rmap.h"

namespace pinmm {

pgprot_t vm_get_page_prot(VmFlags flags) {
  // x86's protection_map: no access is PROTNONE; anything else is present
  // and user-accessible (exec implies read); only shared writable mappings
  // are writable (private ones write-fault into COW). Mappings start young,
  // as x86's PAGE_* protections carry _PAGE_ACCESSED.
  if (!any(flags & (VM_READ | VM_WRITE | VM_EXEC))) return {_PAGE_PROTNONE | _PAGE_ACCESSED};
  uint64_t prot = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
  if (any(flags & VM_WRITE) && any(flags & VM_SHARED)) prot |= _PAGE_RW;
  return {prot};
}

Vma::Vma(Mm& mm, VirtAddr start, VirtAddr end, VmFlags flags, uint64_t pgoff)
    : vm_start(start),
      vm_end(end),
      vm_flags(flags),
      vm_page_prot(vm_get_page_prot(flags)),
      vm_pgoff(pgoff),
      mm_(mm) {}

Vma::~Vma() = default;

Mm::Mm(VmContext& vm) : vm_(vm), id_(vm.next_mm_id()), tlb_(&vm.ms().tracer()) {
  vm_.register_mm(this);
}

void Mm::trace_rss_stat(MmCounter c, int64_t pages) {
  static constexpr std::array<const char*, NR_MM_COUNTERS> kNames = {
      "MM_FILEPAGES", "MM_ANONPAGES", "MM_SWAPENTS", "MM_SHMEMPAGES"};
  ms().tracer().emit(TraceEvent::rss_stat, "mm_id={} curr={} type={} size={}B", id_,
                     current().mm() == this ? 1 : 0, kNames[c], pages << PAGE_SHIFT);
}

Mm::~Mm() {
  vm_.unregister_mm(this);
  if (pgd_page_ != nullptr) pagetable_free_rcu(pgd_page_);
}

MmHandle Mm::create(VmContext& vm) {
  auto* mm = new Mm(vm);
  // The PGD comes from kernel memory like any page table (mm_alloc_pgd);
  // without it there is no mm (fork fails with -ENOMEM).
  mm->pgd_page_ = pagetable_alloc(vm.ms(), NUMA_NO_NODE, LockRank::kPudLock);
  if (mm->pgd_page_ == nullptr) {
    delete mm;
    return MmHandle();
  }
  return MmHandle(mm);
}

bool Mm::mmget_not_zero() {
  int u = users_.load(std::memory_order_relaxed);
  do {
    if (u == 0) return false;
  } while (!users_.compare_exchange_weak(u, u + 1, std::memory_order_acquire,
                                         std::memory_order_relaxed));
  return true;
}

void Mm::mmput() {
  if (users_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    exit_mmap(*this);
    vm().mm_put_huge_zero_folio(*this);  // __mmput
    mmdrop();
  }
}

void Mm::mmdrop() {
  if (count_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

Vma* Mm::vma_lookup(VirtAddr addr) const {
  auto it = vmas_.upper_bound(addr.value());
  if (it == vmas_.begin()) return nullptr;
  --it;
  return it->second->contains(addr) ? it->second.get() : nullptr;
}

Vma* Mm::find_vma(VirtAddr addr) const {
  if (Vma* v = vma_lookup(addr)) return v;
  auto it = vmas_.upper_bound(addr.value());
  return it == vmas_.end() ? nullptr : it->second.get();
}

std::vector<Vma*> Mm::vmas_in_range(VirtAddr start, VirtAddr end) const {
  std::vector<Vma*> out;
  for (Vma* v = find_vma(start); v != nullptr && v->vm_start < end;) {
    out.push_back(v);
    auto it = vmas_.upper_bound(v->vm_start.value());
    v = it == vmas_.end() ? nullptr : it->second.get();
  }
  return out;
}

std::vector<Vma*> Mm::all_vmas() const {
  std::vector<Vma*> out;
  out.reserve(vmas_.size());
  for (const auto& [start, v] : vmas_)
    out.push_back(v.get());
  return out;
}

Vma* Mm::insert_vma(std::unique_ptr<Vma> vma) {
  Vma* raw = vma.get();
  MM_BUG_ON(vma_lookup(raw->vm_start) != nullptr);
  vmas_.emplace(raw->vm_start.value(), std::move(vma));
  return raw;
}

std::unique_ptr<Vma> Mm::detach_vma(Vma* vma) {
  auto it = vmas_.find(vma->vm_start.value());
  MM_BUG_ON(it == vmas_.end() || it->second.get() != vma);
  std::unique_ptr<Vma> out = std::move(it->second);
  vmas_.erase(it);
  return out;
}

Vma* Mm::split_vma(Vma* vma, VirtAddr at) {
  MM_BUG_ON(!at.is_page_aligned() || at <= vma->vm_start || at >= vma->vm_end);
  // A huge mapping straddling the split point is split first.
  vma_adjust_trans_huge(vma, at);
  auto upper = std::make_unique<Vma>(*this, at, vma->vm_end, vma->vm_flags,
                                     vma->vm_pgoff + ((at - vma->vm_start) >> PAGE_SHIFT));
  upper->vm_page_prot = vma->vm_page_prot;
  upper->vm_file = vma->vm_file;
  upper->vm_ops = vma->vm_ops;
  if (vma->anon_vma != nullptr) anon_vma_clone(upper.get(), vma);
  if (upper->vm_file) file_vma_link(upper.get());
  {
    // vma_prepare: rmap walkers read a VMA's bounds under its anon_vma and
    // i_mmap locks, so the bounds change under both.
    std::optional<WriteGuard> i_mmap, anon;
    if (vma->vm_file) i_mmap.emplace(vma->vm_file->mapping().i_mmap_rwsem);
    if (vma->anon_vma != nullptr) anon.emplace(vma->anon_vma->rwsem);
    vma->vm_end = at;
  }
  return insert_vma(std::move(upper));
}

}  // namespace pinmm
