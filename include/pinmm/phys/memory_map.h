// The physical memory map as reports draw it: one record per pageblock.
//
// Linux counterpart: none directly; /proc/pagetypeinfo counts pageblocks
// per migratetype and /proc/kpageflags exposes per-page flags, which tools
// like page-types(8) fold into pictures. pinmm snapshots, per pageblock of
// present memory, its node, zone, migratetype, page counts by kind (free,
// movable in use, unmovable, pinned, long-term pinned) and one state that
// sums it up, so a report can colour a grid and a checkpoint can compare
// maps.
//
// State of a pageblock, most telling first: offline (its section is
// offline), isolated (MIGRATE_ISOLATE), long-term pinned (some folio holds
// a FOLL_LONGTERM pin), pinned (some folio is maybe-DMA-pinned), unmovable
// (a kernel allocation or reserved page), movable (user pages in use),
// free. Device (ZONE_DEVICE memory) is listed for the HMM layer.
//
// Cost: one pass over the descriptors with free buddy blocks skipped a
// block at a time, plus one look at the pin-owner table; no allocation
// beyond the result.
//
// Thread safety: a lockless snapshot; pages changing meanwhile may be
// counted in their old or new state. Memory blocks must not change state
// during it (their zone and presence are read without the hotplug lock):
// take it at a checkpoint.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pinmm/base/types.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

class MemorySystem;

enum class PageblockState : uint8_t {
  kFree,
  kMovable,
  kUnmovable,
  kPinned,
  kLongtermPinned,
  kIsolated,
  kOffline,
  kDevice,
  kNrStates
};
const char* pageblock_state_name(PageblockState s);  // "free", "movable", … "long-term pinned"
char pageblock_state_char(PageblockState s);         // '.', 'm', 'U', 'p', 'L', 'I', 'o', 'D'

struct PageblockInfo {
  Pfn start;
  int nid = 0;
  ZoneType zone = ZONE_NORMAL;
  MigrateType migratetype = MIGRATE_MOVABLE;
  PageblockState state = PageblockState::kFree;
  // Pages of the block by kind (a large folio's pages count where they lie).
  uint16_t free = 0;
  uint16_t movable = 0;
  uint16_t unmovable = 0;
  uint16_t pinned = 0;           // pages of maybe-pinned folios
  uint16_t longterm_pinned = 0;  // … of which a record says FOLL_LONGTERM
  bool operator==(const PageblockInfo&) const = default;
};

struct PhysMemoryMap {
  std::vector<PageblockInfo> blocks;  // present memory, in PFN order
  std::array<uint64_t, static_cast<size_t>(PageblockState::kNrStates)> blocks_in_state{};
  bool operator==(const PhysMemoryMap&) const = default;
  uint64_t count(PageblockState s) const { return blocks_in_state[static_cast<size_t>(s)]; }
};

PhysMemoryMap snapshot_memory_map(const MemorySystem& ms);

// A text picture: per memory block of present memory one row of pageblock
// characters, led by the block's id, node and zone, then a legend and the
// per-state totals.
std::string format_memory_map(const MemorySystem& ms, const PhysMemoryMap& map);

}  // namespace pinmm
