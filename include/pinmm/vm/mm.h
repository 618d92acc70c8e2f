// Address spaces: Mm and its VMAs.
//
// Linux counterpart: struct mm_struct and struct vm_area_struct
// (include/linux/mm_types.h), VM_* flags (include/linux/mm.h), MMF_* bits
// (include/linux/sched/coredump.h), mmget/mmput/mmgrab/mmdrop. An Mm owns a
// 4-level page table (its PGD is a table page of simulated memory), a set of
// VMAs keyed by start address, the mmap lock, MMF_HAS_PINNED, the fork
// write_protect_seq, RSS counters, the TLB model and the MMU-notifier
// subscribers.
//
// Lifetime: mm_users counts users of the address space (MmHandle holds one);
// when it reaches zero the mappings are torn down (exit_mmap). mm_count
// counts references to the structure itself (all users together hold one);
// when it reaches zero the Mm is freed.
//
// Thread safety: the VMA set and every Vma field are guarded by mmap_lock
// (read to look, write to change), except what page-table locks guard.
// flags and the counters are atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pinmm/base/flags.h"
#include "pinmm/base/locks.h"
#include "pinmm/base/seqcount.h"
#include "pinmm/vm/mmu_notifier.h"
#include "pinmm/vm/pgtable.h"
#include "pinmm/vm/tlb.h"
#include "pinmm/vm/vm_context.h"

namespace pinmm {

class File;
class AnonVma;
class Mm;
struct VmFaultInfo;

enum class VmFlags : uint64_t {};
PINMM_DEFINE_FLAG_OPS(VmFlags)

inline constexpr VmFlags VM_NONE{0};
inline constexpr VmFlags VM_READ{0x00000001};
inline constexpr VmFlags VM_WRITE{0x00000002};
inline constexpr VmFlags VM_EXEC{0x00000004};
inline constexpr VmFlags VM_SHARED{0x00000008};
inline constexpr VmFlags VM_MAYREAD{0x00000010};
inline constexpr VmFlags VM_MAYWRITE{0x00000020};
inline constexpr VmFlags VM_MAYEXEC{0x00000040};
inline constexpr VmFlags VM_MAYSHARE{0x00000080};
inline constexpr VmFlags VM_GROWSDOWN{0x00000100};
inline constexpr VmFlags VM_PFNMAP{0x00000400};
inline constexpr VmFlags VM_LOCKED{0x00002000};
inline constexpr VmFlags VM_IO{0x00004000};
inline constexpr VmFlags VM_DONTCOPY{0x00020000};
inline constexpr VmFlags VM_DONTEXPAND{0x00040000};
inline constexpr VmFlags VM_ACCOUNT{0x00100000};
inline constexpr VmFlags VM_NORESERVE{0x00200000};
inline constexpr VmFlags VM_HUGETLB{0x00400000};
inline constexpr VmFlags VM_WIPEONFORK{0x02000000};
inline constexpr VmFlags VM_DONTDUMP{0x04000000};
inline constexpr VmFlags VM_MIXEDMAP{0x10000000};
inline constexpr VmFlags VM_HUGEPAGE{0x20000000};
inline constexpr VmFlags VM_NOHUGEPAGE{0x40000000};
inline constexpr VmFlags VM_MERGEABLE{0x80000000};
inline constexpr VmFlags VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;

// MMF_* bits of Mm::flags.
inline constexpr unsigned MMF_UNSTABLE = 22;
inline constexpr unsigned MMF_HUGE_ZERO_PAGE = 23;
inline constexpr unsigned MMF_HAS_PINNED = 27;

enum MmCounter : uint8_t { MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES, NR_MM_COUNTERS };

// vm_operations_struct: how a file-backed VMA faults.
struct VmOperations {
  const char* name;
  // Finds or creates the folio for vmf.pgoff, locked, with a reference, in
  // vmf.page; or a VM_FAULT_* error (or VM_FAULT_RETRY with the mmap lock
  // released).
  uint32_t (*fault)(VmFaultInfo& vmf);
  // A shared mapping is about to become writable (write notification for
  // file systems that track dirty pages); nullptr if none is needed.
  uint32_t (*page_mkwrite)(VmFaultInfo& vmf);
};

class Vma {
 public:
  Vma(Mm& mm, VirtAddr start, VirtAddr end, VmFlags flags, uint64_t pgoff);
  ~Vma();
  Vma(const Vma&) = delete;
  Vma& operator=(const Vma&) = delete;

  Mm& vm_mm() const { return mm_; }
  uint64_t size() const { return vm_end - vm_start; }
  uint64_t pages() const { return size() >> PAGE_SHIFT; }
  bool contains(VirtAddr a) const { return a >= vm_start && a < vm_end; }

  VirtAddr vm_start;
  VirtAddr vm_end;  // exclusive
  VmFlags vm_flags = VM_NONE;
  pgprot_t vm_page_prot{0};
  uint64_t vm_pgoff = 0;  // offset in pages (the file's, or addr >> PAGE_SHIFT for anon)
  std::shared_ptr<File> vm_file;
  const VmOperations* vm_ops = nullptr;  // nullptr: anonymous
  AnonVma* anon_vma = nullptr;
  // hugetlb private mappings: huge pages reserved at mmap and not yet used.
  uint64_t hugetlb_resv = 0;

 private:
  Mm& mm_;
};

inline bool vma_is_anonymous(const Vma* vma) { return vma->vm_ops == nullptr; }
inline bool is_cow_mapping(VmFlags f) { return (f & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE; }
inline bool is_vm_hugetlb_page(const Vma* vma) { return any(vma->vm_flags & VM_HUGETLB); }
// The page order of a hugetlb VMA's pages (9 or 18).
unsigned huge_page_order_of(const Vma* vma);
// The page index of `addr` in the VMA's object (file offset, or anon index).
inline uint64_t linear_page_index(const Vma* vma, VirtAddr addr) {
  return ((addr - vma->vm_start) >> PAGE_SHIFT) + vma->vm_pgoff;
}
// The address at which the VMA maps page `index` of its object.
inline VirtAddr vma_address(const Vma* vma, uint64_t index) {
  return vma->vm_start + ((index - vma->vm_pgoff) << PAGE_SHIFT);
}
// vm_get_page_prot: private writable mappings map read-only (COW).
pgprot_t vm_get_page_prot(VmFlags flags);

class MmHandle;

class Mm {
 public:
  // A new, empty address space with one user (the handle); an empty
  // handle if its page-table root cannot be allocated (mm_alloc_pgd).
  static MmHandle create(VmContext& vm);

  VmContext& vm() const { return vm_; }
  MemorySystem& ms() const { return vm_.ms(); }
  int id() const { return id_; }

  mutable RwSem mmap_lock{LockRank::kMmapLock};

  // ---- VMAs (mmap_lock) ----
  // The VMA containing addr, or nullptr.
  Vma* vma_lookup(VirtAddr addr) const REQUIRES_SHARED(mmap_lock);
  // The first VMA ending above addr, or nullptr.
  Vma* find_vma(VirtAddr addr) const REQUIRES_SHARED(mmap_lock);
  std::vector<Vma*> vmas_in_range(VirtAddr start, VirtAddr end) const REQUIRES_SHARED(mmap_lock);
  std::vector<Vma*> all_vmas() const REQUIRES_SHARED(mmap_lock);
  Vma* insert_vma(std::unique_ptr<Vma> vma) REQUIRES(mmap_lock);
  std::unique_ptr<Vma> detach_vma(Vma* vma) REQUIRES(mmap_lock);
  // Splits at `at` (page aligned, strictly inside); returns the upper part.
  Vma* split_vma(Vma* vma, VirtAddr at) REQUIRES(mmap_lock);

  // ---- page tables ----
  pgd_t* pgd() const { return table_entries<pgd_t>(ms(), page_to_pfn(pgd_page_)); }
  // Guards populating PUD and PMD tables (the kernel's mm->page_table_lock).
  mutable SpinLock page_table_lock{LockRank::kPudLock};

  // ---- flags ----
  bool test_flag(unsigned bit) const {
    return flags_.load(std::memory_order_acquire) & (uint64_t{1} << bit);
  }
  // Sets a sticky bit, writing only if it is not set yet (MMF_HAS_PINNED is
  // set on every pin; an unconditional write would bounce the cache line).
  void set_flag(unsigned bit) {
    if (!test_flag(bit)) flags_.fetch_or(uint64_t{1} << bit, std::memory_order_acq_rel);
  }
  // Sets the bit; whether it was set already (test_and_set_bit).
  bool test_and_set_flag(unsigned bit) {
    return flags_.fetch_or(uint64_t{1} << bit, std::memory_order_acq_rel) & (uint64_t{1} << bit);
  }
  // Odd while fork write-protects this mm's page tables.
  SeqCount write_protect_seq;

  // ---- lifetime ----
  bool mmget_not_zero();
  void mmput();
  void mmgrab() { count_.fetch_add(1, std::memory_order_relaxed); }
  void mmdrop();
  int users() const { return users_.load(std::memory_order_relaxed); }

  // ---- counters ----
  // Reported as rss_stat events (the counter's new size in bytes).
  void add_mm_counter(MmCounter c, int64_t v) {
    const int64_t now = rss_[c].fetch_add(v, std::memory_order_relaxed) + v;
    if (ms().tracer().enabled(TraceEvent::rss_stat)) trace_rss_stat(c, now);
  }
  int64_t get_mm_counter(MmCounter c) const { return rss_[c].load(std::memory_order_relaxed); }

  TlbModel& tlb() { return tlb_; }
  MmuNotifierList& notifiers() { return notifiers_; }

  // Where mmap looks for free space, top-down (no randomisation).
  static constexpr uint64_t kMmapBase = 0x7f0000000000ull;

 private:
  explicit Mm(VmContext& vm);
  ~Mm();
  void trace_rss_stat(MmCounter c, int64_t pages);

  VmContext& vm_;
  const int id_;
  Page* pgd_page_ = nullptr;
  std::map<uint64_t, std::unique_ptr<Vma>> vmas_ GUARDED_BY(mmap_lock);
  std::atomic<uint64_t> flags_{0};
  std::atomic<int> users_{1};
  std::atomic<int> count_{1};
  std::array<std::atomic<int64_t>, NR_MM_COUNTERS> rss_{};
  TlbModel tlb_;
  MmuNotifierList notifiers_;
};

// A user reference to an Mm (mmget/mmput), move-only.
class MmHandle {
 public:
  MmHandle() = default;
  explicit MmHandle(Mm* adopted) : mm_(adopted) {}
  MmHandle(MmHandle&& o) noexcept : mm_(std::exchange(o.mm_, nullptr)) {}
  MmHandle& operator=(MmHandle&& o) noexcept {
    if (this != &o) {
      reset();
      mm_ = std::exchange(o.mm_, nullptr);
    }
    return *this;
  }
  ~MmHandle() { reset(); }
  void reset() {
    if (mm_ != nullptr) std::exchange(mm_, nullptr)->mmput();
  }
  Mm* get() const { return mm_; }
  Mm& operator*() const { return *mm_; }
  Mm* operator->() const { return mm_; }
  explicit operator bool() const { return mm_ != nullptr; }

 private:
  Mm* mm_ = nullptr;
};

}  // namespace pinmm
