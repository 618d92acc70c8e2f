#include "pinmm/migrate/target.h"

#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/page_alloc.h"

namespace pinmm {

namespace {

// htlb_allow_alloc_fallback: the reasons that may place a hugetlb folio on
// another node than the one asked for.
bool htlb_allow_alloc_fallback(MigrateReason reason) {
  switch (reason) {
    case MR_MEMORY_HOTPLUG:
    case MR_MEMORY_FAILURE:
    case MR_SYSCALL:
    case MR_MEMPOLICY_MBIND:
      return true;
    default:
      return false;
  }
}

constexpr MigrationPolicyInfo kPolicies[] = {
    {"alloc_migration_target",
     "the source's node (or the one asked for), normal zonelist fallback, same order; "
     "honours the caller's memalloc_pin scope (the kernel's default)"},
    {"nodemask",
     "alloc_migration_target restricted to a node mask (offlining: every node but the "
     "source's)"},
};

}  // namespace

Folio* alloc_migration_target(MemorySystem& ms, Folio* src, const MigrationTargetControl& mtc) {
  const int nid = mtc.nid != NUMA_NO_NODE ? mtc.nid : folio_nid(src);
  const NodeMask* nmask = mtc.nmask ? &*mtc.nmask : nullptr;
  if (folio_test_hugetlb(src)) {
    Hstate* h = ms.hugetlb().hstate_for_order(folio_order(src));
    if (h == nullptr) return nullptr;
    return ms.hugetlb().alloc_hugetlb_folio_nodemask(*h, nid, nmask,
                                                     htlb_allow_alloc_fallback(mtc.reason));
  }
  Gfp gfp = mtc.gfp_mask;
  unsigned order = 0;
  if (folio_test_large(src)) {
    // Consistent with a THP fault's allocation: no direct reclaim.
    gfp = (gfp & ~__GFP_RECLAIM) | GFP_TRANSHUGE;
    order = folio_order(src);
  }
  if (folio_zone(src)->type() == ZONE_MOVABLE) gfp |= __GFP_HIGHMEM;
  return reinterpret_cast<Folio*>(
      __alloc_pages(ms, gfp | (order > 0 ? __GFP_COMP : GFP_NONE), Order(order), nid, nmask));
}

MigrationTarget migration_target(MemorySystem& ms, const MigrationTargetControl& mtc) {
  return MigrationTarget{[&ms, mtc](Folio* src) { return alloc_migration_target(ms, src, mtc); },
                         {}};
}

std::span<const MigrationPolicyInfo> migration_target_policies() { return kPolicies; }

Result<MigrationTarget> migration_target_by_name(MemorySystem& ms, std::string_view name,
                                                 const MigrationTargetControl& mtc) {
  if (name == "alloc_migration_target") return migration_target(ms, mtc);
  if (name == "nodemask") {
    if (!mtc.nmask) return Errno(EINVAL);
    return migration_target(ms, mtc);
  }
  return Errno(EINVAL);
}

}  // namespace pinmm
