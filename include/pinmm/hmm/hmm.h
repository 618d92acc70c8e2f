// hmm_range_fault: a device mirror's view of a CPU address range.
//
// Linux counterpart: include/linux/hmm.h and mm/hmm.c. KERNEL-SPEC 9.1-9.2
// are the reference. A driver that mirrors a process address space (a GPU,
// an RDMA NIC in on-demand-paging mode) takes an interval subscription
// (vm/mmu_notifier.h), then for each lookup:
//
//   again:
//     range.notifier_seq = mmu_interval_read_begin(&sub);
//     mmap_read_lock; ret = hmm_range_fault(&range); mmap_read_unlock;
//     if (ret == -EBUSY) goto again;
//     driver_lock;
//     if (mmu_interval_read_retry(&sub, range.notifier_seq)) { unlock; goto again; }
//     program the device from range.hmm_pfns; driver_unlock;
//
// hmm_range_fault takes no page references: the PFNs are good only under
// the driver lock the invalidate callback also takes, after read_retry said
// no invalidation ran.
//
// Each hmm_pfns[i] is an input (what the driver asks for, combined with
// default_flags and pfn_flags_mask) and an output (the PFN and what the CPU
// mapping allows):
//
//   bit 63  HMM_PFN_VALID (out) / HMM_PFN_REQ_FAULT (in)
//   bit 62  HMM_PFN_WRITE (out) / HMM_PFN_REQ_WRITE (in)
//   bit 61  HMM_PFN_ERROR (out): no access possible
//   56..60  the order of the CPU mapping (9 for a PMD, 18 for a PUD)
//   0..55   the PFN
//
// 0 means "not present, but a fault could make it so". On -EBUSY (the range
// was invalidated, or a fault or migration wait happened and the walk had
// to restart) entries below the restart point hold outputs and the rest
// still hold inputs; the caller re-reads the sequence and calls again.
//
// Thread safety: the caller holds the mm's mmap lock for reading (checked
// in debug builds). Faults taken on the caller's behalf are FAULT_FLAG_REMOTE
// and never drop that lock.
#pragma once

#include <chrono>
#include <cstdint>

#include "pinmm/base/types.h"
#include "pinmm/vm/mmu_notifier.h"

namespace pinmm {

inline constexpr uint64_t HMM_PFN_VALID = uint64_t{1} << 63;
inline constexpr uint64_t HMM_PFN_WRITE = uint64_t{1} << 62;
inline constexpr uint64_t HMM_PFN_ERROR = uint64_t{1} << 61;
inline constexpr unsigned HMM_PFN_ORDER_SHIFT = 56;
inline constexpr uint64_t HMM_PFN_REQ_FAULT = HMM_PFN_VALID;
inline constexpr uint64_t HMM_PFN_REQ_WRITE = HMM_PFN_WRITE;
inline constexpr uint64_t HMM_PFN_FLAGS = uint64_t{0xff} << HMM_PFN_ORDER_SHIFT;

// The test driver's retry budget for -EBUSY (lib/test_hmm.c).
inline constexpr std::chrono::milliseconds HMM_RANGE_DEFAULT_TIMEOUT{1000};

inline Pfn hmm_pfn_to_pfn(uint64_t hmm_pfn) { return Pfn(hmm_pfn & ~HMM_PFN_FLAGS); }
// The order of the CPU mapping the page belongs to (0 for a PTE).
inline unsigned hmm_pfn_to_map_order(uint64_t hmm_pfn) {
  return static_cast<unsigned>((hmm_pfn >> HMM_PFN_ORDER_SHIFT) & 0x1f);
}

// struct hmm_range.
struct HmmRange {
  MmuIntervalNotifier* notifier = nullptr;
  uint64_t notifier_seq = 0;
  VirtAddr start;                // inclusive, page aligned
  VirtAddr end;                  // exclusive, page aligned
  uint64_t* hmm_pfns = nullptr;  // (end - start) / PAGE_SIZE entries
  uint64_t default_flags = 0;
  uint64_t pfn_flags_mask = 0;
  const void* dev_private_owner = nullptr;
};

// KERNEL-SPEC 9.2. 0; -EINVAL (no notifier, an empty or unaligned range);
// -EBUSY (invalidated: re-read the sequence and retry); -EPERM (a write
// fault in a VMA without VM_WRITE); -EFAULT (a page that was asked for
// cannot be made valid: no VMA, a VM_IO/VM_PFNMAP or unreadable VMA, a
// special or poisoned entry, a failed fault); -ENOMEM.
int hmm_range_fault(HmmRange* range);

}  // namespace pinmm
