// The migrate layer's invariants.
//
// Isolation counters (nr_isolated_anon/file) never go negative; when no
// migration is in flight (`quiescent`), they are zero and no movable_ops
// page is marked isolated. Migration entries on locked folios are checked
// by validate_vm().
#pragma once

#include "pinmm/base/validate.h"

namespace pinmm {

class MemorySystem;

ValidationReport validate_migrate(const MemorySystem& ms, bool quiescent);

}  // namespace pinmm
