#include "pinmm/migrate/validate.h"

#include "pinmm/phys/memory_system.h"

namespace pinmm {

ValidationReport validate_migrate(const MemorySystem& ms, bool quiescent) {
  ValidationReport r;
  for (int nid = 0; nid < ms.nr_nodes(); ++nid) {
    const NodeStats& st = ms.node(nid).stats();
    for (NodeStatItem item : {NR_ISOLATED_ANON, NR_ISOLATED_FILE}) {
      const int64_t v = st.get(item);
      if (v < 0 || (quiescent && v != 0))
        r.fail("node {}: {} is {} with {}", nid, vmstat_name(item), v,
               quiescent ? "no migration in flight" : "a negative count");
    }
  }
  if (!quiescent) return r;
  for (Pfn pfn{0}; pfn < ms.max_pfn(); pfn += PageCount(1)) {
    if (!ms.pfn_valid(pfn)) continue;
    const Page* p = ms.pfn_to_page(pfn);
    // A tail's mapping and flags words hold its folio's counts and state.
    if (p->is_tail()) continue;
    if ((p->mapping() & PAGE_MAPPING_FLAGS) == PAGE_MAPPING_MOVABLE && p->test(PG_isolated))
      r.fail("pfn {:#x}: movable_ops page still isolated", pfn.value());
  }
  return r;
}

}  // namespace pinmm
