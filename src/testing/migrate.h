// Test helpers for migration: a two-node machine and short-hand for
// isolating and migrating what an address maps.
#pragma once

#include <gtest/gtest.h>

#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/target.h"
#include "pinmm/migrate/validate.h"
#include "pinmm/phys/lru.h"
#include "testing/vm.h"

namespace pinmm::testing {

// Two nodes of `per_node` each (THP always, no ZONE_MOVABLE) with two free
// 2 MiB hugetlb pages on each node.
inline MachineConfig two_node_machine(Bytes per_node = Bytes::MiB(32)) {
  MachineConfig c = MachineConfig::tiny(per_node);
  c.nodes.push_back({per_node, Bytes(0)});
  c.thp = ThpMode::kAlways;
  c.hugepages.push_back({Bytes::MiB(2), 4, std::nullopt});
  return c;
}

// A migration list that puts back whatever is left on it at scope exit.
struct FolioList {
  FolioList() { init_list_head(&head); }
  ~FolioList() { putback_movable_pages(&head); }
  FolioList(const FolioList&) = delete;
  FolioList& operator=(const FolioList&) = delete;
  size_t size() const {
    size_t n = 0;
    for (const ListHead* p = head.load_next(); p != &head; p = p->load_next())
      ++n;
    return n;
  }
  ListHead head;
};

// Isolates the folio mapped at addr (draining the LRU batches first).
inline bool isolate_at(Mm& mm, VirtAddr addr, FolioList& list) {
  lru_add_drain_all(mm.ms());
  Page* page = page_at(mm, addr);
  if (page == nullptr) return false;
  Folio* folio = page_folio(page);
  folio_get(folio);
  const bool ok = isolate_folio_to_list(folio, &list.head);
  folio_put(folio);
  return ok;
}

// migrate_pages to node `nid` with the default policy.
inline int migrate_to(MemorySystem& ms, FolioList& list, int nid, MigrateMode mode = MIGRATE_SYNC,
                      unsigned* nr_succeeded = nullptr, MigratePagesStats* stats = nullptr) {
  MigrationTargetControl mtc;
  mtc.nid = nid;
  mtc.gfp_mask = GFP_HIGHUSER_MOVABLE | __GFP_THISNODE;
  return migrate_pages(ms, &list.head, migration_target(ms, mtc), mode, MR_SYSCALL, nr_succeeded,
                       stats);
}

inline int nid_at(Mm& mm, VirtAddr addr) {
  Page* page = page_at(mm, addr);
  return page == nullptr ? -1 : page_to_nid(page);
}

#define EXPECT_MIGRATE_QUIESCENT(ms)                            \
  do {                                                          \
    const auto report_ = ::pinmm::validate_migrate((ms), true); \
    EXPECT_TRUE(report_.ok()) << report_.to_string();           \
  } while (0)

// Every layer up to migrate/ at a quiescent point: the vm layer first (it
// waits for RCU-deferred page-table frees, so the physical layer is
// quiescent when it is checked), then phys, then migration.
#define EXPECT_ALL_LAYERS_VALID(vm)      \
  do {                                   \
    EXPECT_VM_VALID(vm);                 \
    EXPECT_VALID((vm).ms());             \
    EXPECT_MIGRATE_QUIESCENT((vm).ms()); \
  } while (0)

}  // namespace pinmm::testing
