// CPU access through the page tables (the MMU's walk, the A/D updates, and
// the user page-fault path).
#include "pinmm/vm/access.h"

#include <cstring>

#include "pinmm/base/rcu.h"
#include "pinmm/base/task.h"
#include "pinmm/base/trace.h"
#include "pinmm/vm/fault.h"
#include "pinmm/vm/walk.h"

namespace pinmm {
namespace {

enum class Access : uint8_t { kRead, kWrite };

// x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h).
constexpr unsigned X86_PF_PROT = 1;
constexpr unsigned X86_PF_WRITE = 2;
constexpr unsigned X86_PF_USER = 4;

// The MMU: translates `addr` if the entry allows the access, setting the
// accessed (and dirty) bit as hardware does. Inside an RCU read section.
// On failure, *present tells whether a present entry refused the access
// (a protection fault) rather than no entry being there.
std::byte* hw_translate(Mm& mm, VirtAddr addr, Access access, bool* present) {
  *present = false;
  const bool write = access == Access::kWrite;
  pud_t* pud = pud_offset(mm, addr);
  if (pud == nullptr) return nullptr;
  const pud_t pudval = pudp_get(pud);
  if (!pud_present(pudval)) return nullptr;
  if (pud_leaf(pudval)) {
    *present = pudval.val & _PAGE_PRESENT;
    if (!*present || (write && !pud_write(pudval))) return nullptr;
    const uint64_t set = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
    if ((pudval.val & set) != set && !entry_cmpxchg(pud, pudval, pud_t{pudval.val | set}))
      return nullptr;
    return mm.ms().frames().frame(pud_pfn(pudval)) + (addr.value() & (PUD_SIZE - 1));
  }
  pmd_t* pmd = table_entries<pmd_t>(mm.ms(), pud_pfn(pudval)) + pmd_index(addr);
  const pmd_t pmdval = pmdp_get(pmd);
  if (!pmd_present(pmdval)) return nullptr;
  if (pmd_leaf(pmdval)) {
    *present = pmdval.val & _PAGE_PRESENT;
    if (!*present || (write && !pmd_write(pmdval))) return nullptr;
    const uint64_t set = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
    if ((pmdval.val & set) != set && !entry_cmpxchg(pmd, pmdval, pmd_t{pmdval.val | set}))
      return nullptr;
    return mm.ms().frames().frame(pmd_pfn(pmdval)) + (addr.value() & (PMD_SIZE - 1));
  }
  pte_t* ptep = pte_offset_map(mm, pmdval, addr);
  const pte_t pte = ptep_get(ptep);
  *present = pte.val & _PAGE_PRESENT;
  if (!*present || (write && !pte_write(pte))) return nullptr;
  const uint64_t set = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  if ((pte.val & set) != set && !entry_cmpxchg(ptep, pte, pte_t{pte.val | set})) return nullptr;
  return mm.ms().frames().frame(pte_pfn(pte)) + (addr.value() % PAGE_SIZE);
}

// The user-fault path for one address: EFAULT, ENOMEM or EINTR on failure.
// `protection`: a present entry refused the access.
Result<void> user_fault(Mm& mm, VirtAddr addr, Access access, bool protection) {
  const bool write = access == Access::kWrite;
  // pinmm has no instruction pointers: ip is 0.
  PINMM_TRACE(mm.ms().tracer(), page_fault_user, "address={:#x} ip=0x0 error_code={:#x}",
              addr.value(),
              X86_PF_USER | (write ? X86_PF_WRITE : 0u) | (protection ? X86_PF_PROT : 0u));
  if (current().fatal_signal_pending()) return Errno(EINTR);
  ReadGuard g(mm.mmap_lock);
  Vma* vma = mm.vma_lookup(addr);
  if (vma == nullptr) return Errno(EFAULT);  // SIGSEGV
  if (write ? !any(vma->vm_flags & VM_WRITE)
            : !any(vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC))) {
    return Errno(EFAULT);  // access_error: SIGSEGV
  }
  const VmFault ret =
      handle_mm_fault(vma, addr, (write ? FAULT_FLAG_WRITE : FAULT_FLAG_NONE) | FAULT_FLAG_USER);
  if (any(ret & VM_FAULT_OOM)) return Errno(ENOMEM);
  if (any(ret &
          (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE))) {
    return Errno(EFAULT);
  }
  return {};
}

// Copies up to the end of the page (or huge page) at `addr`.
template <typename Copy>
Result<void> access_range(Mm& mm, VirtAddr addr, size_t len, Access access, Copy&& copy) {
  size_t done = 0;
  while (done < len) {
    const VirtAddr a = addr + done;
    const size_t chunk = std::min<size_t>(len - done, PAGE_SIZE - (a.value() % PAGE_SIZE));
    bool copied = false;
    bool present = false;
    {
      // The translation is held while the bytes move; an unmap's flush
      // waits for this (TlbModel).
      TlbModel::Access tlb_entry(mm.tlb());
      rcu::ReadSection rs;
      if (std::byte* p = hw_translate(mm, a, access, &present)) {
        copy(p, done, chunk);
        copied = true;
      }
    }
    if (copied) {
      done += chunk;
      continue;
    }
    TRY(user_fault(mm, a, access, present));
  }
  return {};
}

}  // namespace

Result<void> copy_from_user(Mm& mm, std::span<std::byte> dst, VirtAddr src) {
  return access_range(
      mm, src, dst.size(), Access::kRead,
      [&](const std::byte* p, size_t off, size_t n) { std::memcpy(dst.data() + off, p, n); });
}

Result<void> copy_to_user(Mm& mm, VirtAddr dst, std::span<const std::byte> src) {
  return access_range(mm, dst, src.size(), Access::kWrite, [&](std::byte* p, size_t off, size_t n) {
    std::memcpy(p, src.data() + off, n);
  });
}

}  // namespace pinmm
