#include "pinmm/phys/memory_map.h"

#include <algorithm>

#include <fmt/format.h>

#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/phys/pin_owners.h"

namespace pinmm {

namespace {

// Whether an in-use folio is user memory that migration could move.
bool movable_folio(const Folio* folio) {
  return folio_test_lru(folio) || __folio_test_movable(folio) || folio_test_hugetlb(folio) ||
         folio_test_anon(folio) || folio->page.mapping() != 0;
}

PageblockState sum_up(const PageblockInfo& b) {
  if (b.migratetype == MIGRATE_ISOLATE) return PageblockState::kIsolated;
  if (b.longterm_pinned != 0) return PageblockState::kLongtermPinned;
  if (b.pinned != 0) return PageblockState::kPinned;
  if (b.unmovable != 0) return PageblockState::kUnmovable;
  if (b.movable != 0) return PageblockState::kMovable;
  return PageblockState::kFree;
}

// Counts the pages of one online pageblock.
void count_pages(const MemorySystem& ms, PageblockInfo& b, const std::vector<uint64_t>& longterm) {
  const Pfn end = b.start + PageCount(pageblock_nr_pages);
  for (Pfn pfn = b.start; pfn < end;) {
    const Page* page = ms.pfn_to_page(pfn);
    if (PageBuddy(page)) {
      // Racy without the zone lock: clamp a stale order to the block.
      const unsigned order = std::min<unsigned>(buddy_order(page), pageblock_order);
      const uint64_t n = std::min<uint64_t>(uint64_t{1} << order, (end - pfn).value());
      b.free = static_cast<uint16_t>(b.free + n);
      pfn += PageCount(n);
      continue;
    }
    const Folio* folio = page_folio(page);
    const bool head_free = folio_ref_count(folio) == 0 && !folio_test_hugetlb(folio);
    if (head_free || PageOffline(page)) {
      ++b.free;
    } else if (PageReserved(page) || !movable_folio(folio)) {
      ++b.unmovable;
    } else if (folio_maybe_dma_pinned(folio)) {
      ++b.pinned;
      if (std::binary_search(longterm.begin(), longterm.end(), folio_pfn(folio).value()))
        ++b.longterm_pinned;
    } else {
      ++b.movable;
    }
    ++pfn;
  }
}

}  // namespace

const char* pageblock_state_name(PageblockState s) {
  switch (s) {
    case PageblockState::kFree:
      return "free";
    case PageblockState::kMovable:
      return "movable";
    case PageblockState::kUnmovable:
      return "unmovable";
    case PageblockState::kPinned:
      return "pinned";
    case PageblockState::kLongtermPinned:
      return "long-term pinned";
    case PageblockState::kIsolated:
      return "isolated";
    case PageblockState::kOffline:
      return "offline";
    case PageblockState::kDevice:
      return "device";
    case PageblockState::kNrStates:
      break;
  }
  return "?";
}

char pageblock_state_char(PageblockState s) {
  static constexpr char kChars[] = {'.', 'm', 'U', 'p', 'L', 'I', 'o', 'D'};
  return s < PageblockState::kNrStates ? kChars[static_cast<size_t>(s)] : '?';
}

PhysMemoryMap snapshot_memory_map(const MemorySystem& ms) {
  PhysMemoryMap map;
  const std::vector<uint64_t> longterm = ms.pin_owners().longterm_folio_pfns();
  for (const MemoryBlock& mb : ms.memory_blocks()) {
    if (!mb.present) continue;
    for (Pfn pfn = mb.start_pfn; pfn < mb.start_pfn + mb.nr_pages;
         pfn += PageCount(pageblock_nr_pages)) {
      PageblockInfo b;
      b.start = pfn;
      b.nid = mb.nid;
      b.zone = mb.zone;
      b.migratetype = ms.pageblock_flags().get(pfn);
      if (ms.pfn_to_online_page(pfn) == nullptr) {
        b.state = PageblockState::kOffline;
      } else {
        count_pages(ms, b, longterm);
        b.state = sum_up(b);
      }
      ++map.blocks_in_state[static_cast<size_t>(b.state)];
      map.blocks.push_back(b);
    }
  }
  return map;
}

std::string format_memory_map(const MemorySystem& ms, const PhysMemoryMap& map) {
  std::string out;
  // One row per memory block, wrapped at 64 pageblocks (128 MiB).
  const uint64_t per_block = std::min<uint64_t>(ms.block_pages().value() / pageblock_nr_pages, 64);
  for (size_t i = 0; i < map.blocks.size(); i += per_block) {
    const PageblockInfo& first = map.blocks[i];
    const uint64_t id = first.start.value() / ms.block_pages().value();
    const bool offline = first.state == PageblockState::kOffline;
    out += fmt::format("memory{:<4} node {} {:<8} pfn {:#9x} ", id, first.nid,
                       offline ? "-" : zone_type_name(first.zone), first.start.value());
    for (size_t j = i; j < std::min(i + per_block, map.blocks.size()); ++j)
      out += pageblock_state_char(map.blocks[j].state);
    out += '\n';
  }
  out += "legend:";
  for (size_t s = 0; s < static_cast<size_t>(PageblockState::kNrStates); ++s) {
    const auto st = static_cast<PageblockState>(s);
    out += fmt::format(" {} {}", pageblock_state_char(st), pageblock_state_name(st));
    out += s + 1 < static_cast<size_t>(PageblockState::kNrStates) ? "," : "\n";
  }
  out += "pageblocks:";
  for (size_t s = 0; s < static_cast<size_t>(PageblockState::kNrStates); ++s) {
    if (map.blocks_in_state[s] == 0) continue;
    out += fmt::format(" {} {}", pageblock_state_name(static_cast<PageblockState>(s)),
                       map.blocks_in_state[s]);
  }
  out += '\n';
  return out;
}

}  // namespace pinmm
