// Page faults.
//
// Linux counterpart: handle_mm_fault and struct vm_fault (mm/memory.c,
// include/linux/mm_types.h), with vm_fault_t and FAULT_FLAG_* values of
// 6.12. The caller holds the mmap lock for reading (or writing); if the
// result has VM_FAULT_RETRY or VM_FAULT_COMPLETED, the fault released it
// (only possible with FAULT_FLAG_ALLOW_RETRY and without
// FAULT_FLAG_RETRY_NOWAIT).
//
// Counters: pgfault (every call), pgmajfault, pgreuse (a write fault reused
// an anonymous page), thp_fault_alloc/thp_fault_fallback.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "pinmm/base/flags.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

enum class VmFault : uint32_t {};
PINMM_DEFINE_FLAG_OPS(VmFault)
inline constexpr VmFault VM_FAULT_NONE{0};
inline constexpr VmFault VM_FAULT_OOM{0x000001};
inline constexpr VmFault VM_FAULT_SIGBUS{0x000002};
inline constexpr VmFault VM_FAULT_MAJOR{0x000004};
inline constexpr VmFault VM_FAULT_HWPOISON{0x000010};
inline constexpr VmFault VM_FAULT_HWPOISON_LARGE{0x000020};
inline constexpr VmFault VM_FAULT_SIGSEGV{0x000040};
inline constexpr VmFault VM_FAULT_NOPAGE{0x000100};
inline constexpr VmFault VM_FAULT_LOCKED{0x000200};
inline constexpr VmFault VM_FAULT_RETRY{0x000400};
inline constexpr VmFault VM_FAULT_FALLBACK{0x000800};
inline constexpr VmFault VM_FAULT_DONE_COW{0x001000};
inline constexpr VmFault VM_FAULT_COMPLETED{0x004000};
inline constexpr VmFault VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV |
                                          VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE |
                                          VM_FAULT_FALLBACK;

enum class FaultFlags : uint32_t {};
PINMM_DEFINE_FLAG_OPS(FaultFlags)
inline constexpr FaultFlags FAULT_FLAG_NONE{0};
inline constexpr FaultFlags FAULT_FLAG_WRITE{1u << 0};
inline constexpr FaultFlags FAULT_FLAG_MKWRITE{1u << 1};
inline constexpr FaultFlags FAULT_FLAG_ALLOW_RETRY{1u << 2};
inline constexpr FaultFlags FAULT_FLAG_RETRY_NOWAIT{1u << 3};
inline constexpr FaultFlags FAULT_FLAG_KILLABLE{1u << 4};
inline constexpr FaultFlags FAULT_FLAG_TRIED{1u << 5};
inline constexpr FaultFlags FAULT_FLAG_USER{1u << 6};
inline constexpr FaultFlags FAULT_FLAG_REMOTE{1u << 7};
inline constexpr FaultFlags FAULT_FLAG_INSTRUCTION{1u << 8};
inline constexpr FaultFlags FAULT_FLAG_INTERRUPTIBLE{1u << 9};
inline constexpr FaultFlags FAULT_FLAG_UNSHARE{1u << 10};

// struct vm_fault: the state of one fault as it goes down the levels.
struct VmFaultInfo {
  Vma* vma = nullptr;
  VirtAddr address;       // page aligned
  VirtAddr real_address;  // as faulted
  FaultFlags flags = FAULT_FLAG_NONE;
  uint64_t pgoff = 0;  // linear_page_index of address
  pud_t* pud = nullptr;
  pmd_t* pmd = nullptr;
  pmd_t orig_pmd{0};
  pte_t* pte = nullptr;  // set with ptl held
  pte_t orig_pte{0};
  SpinLock* ptl = nullptr;
  Page* page = nullptr;  // the page found (file faults: locked, with a reference)
};

// Resolves a fault at `address` in `vma`. See the header comment for the
// lock contract.
VmFault handle_mm_fault(Vma* vma, VirtAddr address, FaultFlags flags);

// A walker that found a migration entry (PTE at `address` under *pmd, or
// the PMD itself) sleeps until the migration that installed it is done; no
// reference is taken. Returns at once if the entry is gone.
void migration_entry_wait(Mm& mm, pmd_t* pmd, VirtAddr address);

namespace inject_point_vm {
// A window point: a fault found a migration entry and is about to wait for
// the migration (hit once per wait, with the PTE lock held, before the
// waiter is queued: a hook must not wait for that lock's holders).
inline constexpr std::string_view kMigrationEntryWait = "migration_entry_wait";
}  // namespace inject_point_vm
void pmd_migration_entry_wait(Mm& mm, pmd_t* pmd);

// The normal page a present entry maps, or nullptr for special mappings
// (the zero page, PFN maps) — the kernel's vm_normal_page.
Page* vm_normal_page(const Vma* vma, VirtAddr addr, pte_t pte);

// Whether a THP may back a PMD-aligned range at `addr` of this VMA
// (transparent_hugepage/enabled, VM_HUGEPAGE/VM_NOHUGEPAGE, the range lies
// inside the VMA, anonymous private memory).
bool thp_vma_allowable(const Vma* vma, VirtAddr addr);

}  // namespace pinmm
