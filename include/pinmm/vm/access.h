// CPU access to an address space: reading and writing bytes as a CPU does.
//
// Linux counterpart: the hardware page walk plus the page-fault path a user
// access takes (copy_from_user/copy_to_user for the current mm). Each page
// is translated locklessly (RCU read section), with the accessed and dirty
// bits set as the MMU sets them, and copied inside a TlbModel::Access so an
// unmap's flush waits for it; a missing or insufficient translation takes
// the page-fault path (handle_mm_fault with the mmap lock held for reading)
// and retries.
//
// EFAULT: no VMA, the VMA forbids the access, or the fault ends in
// SIGSEGV/SIGBUS/HWPOISON. ENOMEM: the fault ran out of memory. EINTR: the
// task has a fatal signal pending.
#pragma once

#include <cstddef>
#include <span>

#include "pinmm/base/errno.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

Result<void> copy_from_user(Mm& mm, std::span<std::byte> dst, VirtAddr src);
Result<void> copy_to_user(Mm& mm, VirtAddr dst, std::span<const std::byte> src);

// Convenience for tests and workloads: one value at an address.
template <typename T>
Result<T> read_user(Mm& mm, VirtAddr addr) {
  T v{};
  TRY(copy_from_user(mm, std::as_writable_bytes(std::span<T, 1>(&v, 1)), addr));
  return v;
}
template <typename T>
Result<void> write_user(Mm& mm, VirtAddr addr, const T& v) {
  return copy_to_user(mm, addr, std::as_bytes(std::span<const T, 1>(&v, 1)));
}

}  // namespace pinmm
