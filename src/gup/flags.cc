#include "pinmm/gup/flags.h"

#include <utility>

#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mm.h"

namespace pinmm {

namespace {

constexpr std::pair<Foll, const char*> kNames[] = {
    {FOLL_WRITE, "FOLL_WRITE"},
    {FOLL_GET, "FOLL_GET"},
    {FOLL_DUMP, "FOLL_DUMP"},
    {FOLL_FORCE, "FOLL_FORCE"},
    {FOLL_NOWAIT, "FOLL_NOWAIT"},
    {FOLL_NOFAULT, "FOLL_NOFAULT"},
    {FOLL_HWPOISON, "FOLL_HWPOISON"},
    {FOLL_ANON, "FOLL_ANON"},
    {FOLL_LONGTERM, "FOLL_LONGTERM"},
    {FOLL_SPLIT_PMD, "FOLL_SPLIT_PMD"},
    {FOLL_PCI_P2PDMA, "FOLL_PCI_P2PDMA"},
    {FOLL_INTERRUPTIBLE, "FOLL_INTERRUPTIBLE"},
    {FOLL_HONOR_NUMA_FAULT, "FOLL_HONOR_NUMA_FAULT"},
    {FOLL_TOUCH, "FOLL_TOUCH"},
    {FOLL_TRIED, "FOLL_TRIED"},
    {FOLL_REMOTE, "FOLL_REMOTE"},
    {FOLL_PIN, "FOLL_PIN"},
    {FOLL_FAST_ONLY, "FOLL_FAST_ONLY"},
    {FOLL_UNLOCKABLE, "FOLL_UNLOCKABLE"},
    {FOLL_MADV_POPULATE, "FOLL_MADV_POPULATE"},
};

// writable_file_mapping_allowed: a long-term writable pin of a file
// mapping is refused where the file system writes back (it would write
// pages the device keeps changing, and break dirty tracking).
bool writable_file_mapping_allowed(const Vma* vma, Foll flags) {
  if ((flags & (FOLL_PIN | FOLL_LONGTERM)) != (FOLL_PIN | FOLL_LONGTERM)) return true;
  return !vma_needs_dirty_tracking(vma);
}

}  // namespace

std::string foll_flags_to_string(Foll flags) {
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if (!any(flags & bit)) continue;
    if (!out.empty()) out += '|';
    out += name;
    flags &= ~bit;
  }
  if (any(flags)) out += (out.empty() ? "" : "|") + std::to_string(raw(flags));
  return out.empty() ? "0" : out;
}

bool is_valid_gup_args(bool has_pages, const int* locked, Foll* out, Foll flags, Foll to_set) {
  // The kernel WARNs once for each of these: they are caller bugs.
  if (any(flags & INTERNAL_GUP_FLAGS)) return false;
  flags |= to_set;
  if (locked != nullptr) {
    if (*locked != 1) return false;
    flags |= FOLL_UNLOCKABLE;
  }
  if ((flags & (FOLL_PIN | FOLL_GET)) == (FOLL_PIN | FOLL_GET)) return false;
  if (!any(flags & FOLL_PIN) && any(flags & FOLL_LONGTERM)) return false;
  if (any(flags & (FOLL_GET | FOLL_PIN)) && !has_pages) return false;
  if (any(flags & FOLL_LONGTERM) && any(flags & FOLL_PCI_P2PDMA)) return false;
  *out = flags;
  return true;
}

int check_vma_flags(const Vma* vma, Foll flags) {
  const VmFlags vm_flags = vma->vm_flags;
  const bool write = any(flags & FOLL_WRITE);
  const bool vma_anon = vma_is_anonymous(vma);
  if (any(vm_flags & (VM_IO | VM_PFNMAP))) return -EFAULT;
  if (any(flags & FOLL_ANON) && !vma_anon) return -EFAULT;
  // pinmm has no fs-dax and no secretmem: those two rows never apply.
  if (any(flags & FOLL_SPLIT_PMD) && is_vm_hugetlb_page(vma)) return -EOPNOTSUPP;
  if (write) {
    if (!vma_anon && !writable_file_mapping_allowed(vma, flags)) return -EFAULT;
    if (!any(vm_flags & VM_WRITE)) {
      if (!any(flags & FOLL_FORCE)) return -EFAULT;
      if (is_vm_hugetlb_page(vma)) return -EFAULT;
      if (!is_cow_mapping(vm_flags)) return -EFAULT;
    }
  } else if (!any(vm_flags & VM_READ)) {
    if (!any(flags & FOLL_FORCE)) return -EFAULT;
    if (!any(vm_flags & VM_MAYREAD)) return -EFAULT;
  }
  return 0;
}

}  // namespace pinmm
