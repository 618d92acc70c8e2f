// The system calls a process uses on its address space.
//
// Linux counterpart: mmap/munmap/mprotect/madvise (mm/mmap.c, mm/mprotect.c,
// mm/madvise.c), fork's dup_mm (kernel/fork.c, mm/memory.c
// copy_page_range) and exit_mmap. prot, flags and advice values are the
// <sys/mman.h> ones (identical to the kernel's); errors are Linux's errnos.
// Each call takes the mmap lock itself (for writing; madvise's populate
// advice for reading).
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <memory>

#include "pinmm/base/errno.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

// mmap(2). addr is a hint (or the exact place with MAP_FIXED). Anonymous
// memory: file == nullptr and MAP_ANONYMOUS. EINVAL: len 0, unaligned
// offset or MAP_FIXED address, neither or both of MAP_SHARED/MAP_PRIVATE,
// a file mapping without a file. ENOMEM: no room below TASK_SIZE. EEXIST:
// MAP_FIXED_NOREPLACE over an existing mapping.
Result<VirtAddr> vm_mmap(Mm& mm, VirtAddr addr, uint64_t len, int prot, int flags,
                         std::shared_ptr<File> file = nullptr, uint64_t offset = 0);
// munmap(2). EINVAL: unaligned start, len 0, or beyond TASK_SIZE. Unmapping
// a hole is not an error.
Result<void> vm_munmap(Mm& mm, VirtAddr start, uint64_t len);
// mprotect(2). EINVAL: unaligned start or unknown prot bits; ENOMEM: part
// of the range is not mapped; EACCES: write on a shared mapping that may
// not become writable.
Result<void> do_mprotect(Mm& mm, VirtAddr start, uint64_t len, int prot);
// madvise(2): MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_DONTFORK,
// MADV_DOFORK, MADV_POPULATE_READ, MADV_POPULATE_WRITE. EINVAL: unaligned
// start or unknown advice, MADV_DOFORK on VM_IO; ENOMEM: part of the range
// is not mapped (the mapped parts are still advised, except for POPULATE).
// POPULATE: EINVAL for VM_PFNMAP/VM_IO or missing permissions, EFAULT when a
// fault fails with SIGBUS/SIGSEGV, ENOMEM on OOM, EINTR on a fatal signal.
Result<void> do_madvise(Mm& mm, VirtAddr start, uint64_t len, int advice);

// fork: a copy of `parent` (VMAs, anon_vma links, page tables with COW).
// ENOMEM if page tables or early-COW copies cannot be allocated.
Result<MmHandle> dup_mm(Mm& parent);
// Tears down every mapping (called when the last user goes).
void exit_mmap(Mm& mm);

}  // namespace pinmm
