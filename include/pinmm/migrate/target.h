// Migration target policies: where a migrated folio goes.
//
// Linux counterpart: struct migration_target_control and
// alloc_migration_target() (mm/migrate.c), alloc_hugetlb_folio_nodemask()
// (mm/hugetlb.c). The kernel passes the policy as a callback plus private
// data; pinmm names the policies so that the CLI can list them.
//
//  - "alloc_migration_target" (the default): the source's node (or
//    `nid`), the normal zonelist fallback, the source's order (THPs ask with
//    GFP_TRANSHUGE, without reclaim), highmem/movable zones allowed when
//    the source was in ZONE_MOVABLE, and whatever scope the calling task
//    is in (inside memalloc_pin_save(), __GFP_MOVABLE is stripped, so the
//    target is pinnable). hugetlb sources take a free pool folio of the
//    same size, falling back to other nodes only for MR_MEMORY_HOTPLUG,
//    MR_MEMORY_FAILURE, MR_SYSCALL and MR_MEMPOLICY_MBIND.
//  - "nodemask": the same, restricted to the nodes of `nmask` (offlining
//    passes every node with memory except the source's).
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "pinmm/base/errno.h"
#include "pinmm/base/policy.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/phys/gfp.h"

namespace pinmm {

struct MigrationTargetControl {
  int nid = NUMA_NO_NODE;  // NUMA_NO_NODE: the source's node
  std::optional<NodeMask> nmask;
  Gfp gfp_mask = GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL;
  MigrateReason reason = MR_SYSCALL;
};

Folio* alloc_migration_target(MemorySystem& ms, Folio* src, const MigrationTargetControl& mtc);

// A MigrationTarget allocating with alloc_migration_target and `mtc`.
MigrationTarget migration_target(MemorySystem& ms, const MigrationTargetControl& mtc);

using MigrationPolicyInfo = PolicyInfo;
std::span<const MigrationPolicyInfo> migration_target_policies();

// The named policy with `mtc`; EINVAL for an unknown name or "nodemask"
// without a mask.
// FIXME(#17): nothing selects a policy by name yet; the policy registry
// (machine.policies, --policy) is its caller.
Result<MigrationTarget> migration_target_by_name(MemorySystem& ms, std::string_view name,
                                                 const MigrationTargetControl& mtc);

}  // namespace pinmm
