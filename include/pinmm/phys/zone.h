// Nodes, zones and the buddy allocator's free areas.
//
// Linux counterpart: pg_data_t and struct zone (include/linux/mmzone.h); the
// buddy algorithm is in page_alloc.cc like mm/page_alloc.c. Each zone has
// free lists per order (0..MAX_PAGE_ORDER) and migratetype; a free block of
// 2^order pages sits on the list of its pageblock's migratetype (6.12's
// freelist hygiene) with PageBuddy set and its order in page->private.
//
// Thread safety: the free areas, nr_isolate_pageblock and every pageblock
// type change are guarded by `lock` (zone->lock). The span and page counts
// change only at boot and under memory hotplug; managed pages is atomic.
// Counters are relaxed atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "pinmm/base/counters.h"
#include "pinmm/base/list.h"
#include "pinmm/base/locks.h"
#include "pinmm/base/types.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/mmzone.h"
#include "pinmm/phys/page.h"

namespace pinmm {

class MemorySystem;
class Node;

struct FreeArea {
  std::array<ListHead, MIGRATE_TYPES> free_list;
  uint64_t nr_free = 0;                                // blocks of this order, all types
  std::array<uint64_t, MIGRATE_TYPES> nr_free_type{};  // blocks of this order, per type
};

// Allocation context flags (mm/internal.h ALLOC_*), the subset pinmm uses.
enum AllocFlags : uint32_t {
  ALLOC_WMARK_MIN = 0x00,
  ALLOC_WMARK_LOW = 0x01,
  ALLOC_WMARK_HIGH = 0x02,
  ALLOC_NO_WATERMARKS = 0x04,
  ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1,
  ALLOC_NON_BLOCK = 0x10,
  ALLOC_MIN_RESERVE = 0x20,
  ALLOC_CMA = 0x80,
  ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE,
};

// Flags for freeing pages (mm/internal.h FPI_*).
enum FpiFlags : uint32_t {
  FPI_NONE = 0,
  FPI_TO_TAIL = 1u << 1,
};

class Zone {
 public:
  Zone(MemorySystem& ms, Node& node, ZoneType type);
  Zone(const Zone&) = delete;
  Zone& operator=(const Zone&) = delete;

  // ---- identity ----
  MemorySystem& ms() const { return ms_; }
  Node& node() const { return node_; }
  int nid() const;
  ZoneType type() const { return type_; }
  const char* name() const { return zone_type_name(type_); }
  Page* mem_map() const { return mem_map_; }  // the page of pfn 0

  // ---- span and size ----
  // Relaxed reads: the span and present pages change only at boot and under
  // memory hotplug (serialised by the hotplug lock); concurrent readers may
  // see the old or the new value, as with the kernel's zone span seqlock
  // readers that do not retry.
  Pfn zone_start_pfn() const { return Pfn(start_pfn_.load(std::memory_order_relaxed)); }
  Pfn zone_end_pfn() const { return zone_start_pfn() + PageCount(spanned_pages()); }
  uint64_t spanned_pages() const { return spanned_pages_.load(std::memory_order_relaxed); }
  uint64_t present_pages() const { return present_pages_.load(std::memory_order_relaxed); }
  // Present pages that were there at boot (zone->present_early_pages).
  uint64_t present_early_pages() const {
    return present_early_pages_.load(std::memory_order_relaxed);
  }
  uint64_t managed_pages() const { return managed_pages_.load(std::memory_order_relaxed); }
  uint64_t cma_pages() const { return cma_pages_; }
  bool zone_spans_pfn(Pfn pfn) const { return pfn >= zone_start_pfn() && pfn < zone_end_pfn(); }
  // zone_intersects: whether [start, start+nr) overlaps the span.
  bool zone_intersects(Pfn start, PageCount nr) const;
  bool populated() const { return present_pages() != 0; }
  // Boot: grows the span to cover [start, start+nr) and adds nr present
  // (early) pages.
  void grow_span(Pfn start, PageCount nr);
  // Hotplug (resize_zone_range): grows the span to cover [start, start+nr).
  void resize_span(Pfn start, PageCount nr);
  // Hotplug: sets the span outright (shrink_zone_span's result); spanned 0
  // empties it.
  void set_span(Pfn start, uint64_t spanned);
  // Hotplug (adjust_present_page_count): present pages, and the early ones
  // too for boot memory.
  void adjust_present_pages(int64_t nr, bool early);
  void add_managed_pages(int64_t nr) { managed_pages_.fetch_add(nr, std::memory_order_relaxed); }
  void add_cma_pages(uint64_t nr) { cma_pages_ += nr; }

  // ---- watermarks ----
  // Relaxed: recomputed when memory is onlined or offlined while
  // allocations read them; any recent value is a valid watermark.
  uint64_t wmark(WmarkIndex w) const { return watermark_[w].load(std::memory_order_relaxed); }
  void set_wmark(WmarkIndex w, uint64_t v) { watermark_[w].store(v, std::memory_order_relaxed); }
  uint64_t lowmem_reserve(ZoneType t) const {
    return lowmem_reserve_[t].load(std::memory_order_relaxed);
  }
  void set_lowmem_reserve(ZoneType t, uint64_t v) {
    lowmem_reserve_[t].store(v, std::memory_order_relaxed);
  }
  uint64_t watermark_boost() const { return 0; }  // pinmm has no kswapd to decay a boost

  // ---- counters ----
  ZoneStats& stats() { return stats_; }
  const ZoneStats& stats() const { return stats_; }
  NumaEvents& numa_events() { return numa_events_; }
  const NumaEvents& numa_events() const { return numa_events_; }

  // ---- buddy allocator (page_alloc.cc) ----

  // Takes a 2^order block of `mt` (falling back as the kernel does) if the
  // zone is above the watermark `alloc_flags` name. Returns the first page,
  // still marked free-ish (no refcount); prep is the caller's. Locks `lock`.
  Page* rmqueue(Order order, MigrateType mt, uint32_t alloc_flags, ZoneType highest_zoneidx)
      EXCLUDES(lock);
  // Returns a 2^order block to the free lists, merging with free buddies.
  // Blocks larger than a pageblock are freed per pageblock, each with its
  // block's migratetype. Locks `lock`.
  void free_one_page(Page* page, Pfn pfn, Order order, uint32_t fpi) EXCLUDES(lock);

  // Page isolation's free-list half (6.12 move_freepages_block_isolate plus
  // the zone's isolated-block count): moves the free pages of the pageblock
  // at `pfn` to the MIGRATE_ISOLATE lists, which no allocation takes from,
  // splitting a free buddy that straddles the block, and marks the block
  // isolated. False if the block is already isolated or straddles zones.
  // Whether the block's in-use pages are movable is the caller's question
  // (page isolation, hotplug/ and cma/).
  bool isolate_pageblock(Pfn pfn) EXCLUDES(lock);
  // Gives an isolated block back its type `mt`, moving its free pages along.
  void unisolate_pageblock(Pfn pfn, MigrateType mt) EXCLUDES(lock);

  // Memory offlining's free-list half (__offline_isolated_pages): takes every
  // free block of [start, end) off the isolate lists for good. Every page of
  // the range must be free on an isolated block, hwpoisoned, or an
  // unreferenced PageOffline page (test_pages_isolated said so). Returns the
  // pages taken that were managed (all but the PageOffline ones).
  uint64_t remove_isolated_free_pages(Pfn start, Pfn end) EXCLUDES(lock);
  // alloc_contig_range's grab of an isolated range whose pages are all free
  // (the zone side of isolate_freepages_range): the start of the free block
  // covering `pfn` (find_large_buddy), and taking the free blocks from
  // `start` (a free block's head) until `end` is covered off the isolate
  // lists. Returns the end of the last block taken (at least `end`), or
  // Pfn(0) if some page in between is not free (then nothing is taken).
  Pfn free_block_start(Pfn pfn) EXCLUDES(lock);
  Pfn take_free_blocks(Pfn start, Pfn end) EXCLUDES(lock);
  // Onlining and offlining move whole blocks in or out of isolation without
  // unisolate_pageblock / isolate_pageblock (nr_isolate_pageblock fixups).
  void adjust_nr_isolate_pageblock(int64_t delta) EXCLUDES(lock);

  // Copies of the free-area counts for /proc dumps, taken under the lock.
  struct FreeCounts {
    std::array<uint64_t, NR_PAGE_ORDERS> nr_free{};
    std::array<std::array<uint64_t, NR_PAGE_ORDERS>, MIGRATE_TYPES> per_type{};
    bool operator==(const FreeCounts&) const = default;
  };
  FreeCounts free_counts() const EXCLUDES(lock);

  mutable SpinLock lock{LockRank::kZoneLock};

  // ---- locked internals, for page_alloc.cc, page isolation and validation ----
  FreeArea& free_area(unsigned order) REQUIRES(lock) { return free_area_[order]; }
  const FreeArea& free_area(unsigned order) const REQUIRES(lock) { return free_area_[order]; }
  uint64_t nr_isolate_pageblock() const REQUIRES(lock) { return nr_isolate_pageblock_; }
  // isolate_pageblock() for a caller that holds the lock (page isolation
  // checks the block's pages first under the same lock).
  bool isolate_pageblock_locked(Pfn pfn) REQUIRES(lock);

 private:
  // The buddy algorithm, all under `lock` (page_alloc.cc).
  void account_freepages(int64_t nr_pages, MigrateType mt) REQUIRES(lock);
  void add_to_free_list(Page* page, unsigned order, MigrateType mt, bool tail) REQUIRES(lock);
  // Unlinks a free block without touching the free-page counters.
  void __del_page_from_free_list(Page* page, unsigned order, MigrateType mt) REQUIRES(lock);
  void del_page_from_free_list(Page* page, unsigned order, MigrateType mt) REQUIRES(lock);
  void move_to_free_list(Page* page, unsigned order, MigrateType old_mt, MigrateType new_mt)
      REQUIRES(lock);
  Page* find_buddy_page(Page* page, Pfn pfn, unsigned order, Pfn* buddy_pfn) REQUIRES(lock);
  bool buddy_merge_likely(Pfn pfn, Pfn buddy_pfn, Page* page, unsigned order) REQUIRES(lock);
  void __free_one_page(Page* page, Pfn pfn, unsigned order, MigrateType mt, uint32_t fpi)
      REQUIRES(lock);
  void split_large_buddy(Page* page, Pfn pfn, unsigned order, uint32_t fpi) REQUIRES(lock);
  uint64_t expand(Page* page, unsigned low, unsigned high, MigrateType mt) REQUIRES(lock);
  void page_del_and_expand(Page* page, unsigned low, unsigned high, MigrateType mt) REQUIRES(lock);
  Page* __rmqueue_smallest(unsigned order, MigrateType mt) REQUIRES(lock);
  Page* __rmqueue_claim(unsigned order, MigrateType start_mt) REQUIRES(lock);
  Page* __rmqueue_steal(unsigned order, MigrateType start_mt) REQUIRES(lock);
  Page* __rmqueue(unsigned order, MigrateType mt, uint32_t alloc_flags) REQUIRES(lock);
  Page* try_to_steal_block(Page* page, unsigned current_order, unsigned order,
                           MigrateType start_type) REQUIRES(lock);
  bool prep_move_freepages_block(Page* page, Pfn* start_pfn, uint64_t* num_free,
                                 uint64_t* num_movable) REQUIRES(lock);
  uint64_t __move_freepages_block(Pfn start_pfn, MigrateType old_mt, MigrateType new_mt)
      REQUIRES(lock);
  std::optional<MigrateType> find_suitable_fallback(unsigned order, MigrateType mt, bool* can_steal)
      REQUIRES(lock);
  Pfn find_large_buddy(Pfn start_pfn) REQUIRES(lock);
  bool move_freepages_block_isolate(Page* page, MigrateType mt) REQUIRES(lock);
  bool zone_watermark_ok(unsigned order, uint64_t mark, ZoneType highest_zoneidx,
                         uint32_t alloc_flags) REQUIRES(lock);
  Page* pfn_to_page(Pfn pfn) const { return mem_map_ + pfn.value(); }

  MemorySystem& ms_;
  Node& node_;
  const ZoneType type_;
  Page* const mem_map_;
  std::atomic<uint64_t> start_pfn_{0};
  std::atomic<uint64_t> spanned_pages_{0};
  std::atomic<uint64_t> present_pages_{0};
  std::atomic<uint64_t> present_early_pages_{0};
  std::atomic<uint64_t> managed_pages_{0};
  uint64_t cma_pages_ = 0;
  std::array<std::atomic<uint64_t>, NR_WMARK> watermark_{};
  std::array<std::atomic<uint64_t>, MAX_NR_ZONES> lowmem_reserve_{};

  std::array<FreeArea, NR_PAGE_ORDERS> free_area_ GUARDED_BY(lock);
  uint64_t nr_isolate_pageblock_ GUARDED_BY(lock) = 0;

  ZoneStats stats_;
  NumaEvents numa_events_;
};

class Node {
 public:
  Node(MemorySystem& ms, int nid);
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  int nid() const { return nid_; }
  Zone& zone(ZoneType t) { return *zones_[t]; }
  const Zone& zone(ZoneType t) const { return *zones_[t]; }
  // The span, like the zones' (relaxed; changed by boot and hotplug).
  Pfn node_start_pfn() const { return Pfn(start_pfn_.load(std::memory_order_relaxed)); }
  uint64_t node_spanned_pages() const { return spanned_pages_.load(std::memory_order_relaxed); }
  void set_span(Pfn start, uint64_t spanned) {
    start_pfn_.store(start.value(), std::memory_order_relaxed);
    spanned_pages_.store(spanned, std::memory_order_relaxed);
  }
  // update_pgdat_span: the smallest span covering every zone's span.
  void update_span();
  uint64_t node_present_pages() const;
  // node_state(nid, N_MEMORY): the node has present memory.
  bool has_memory() const { return node_present_pages() != 0; }

  NodeStats& stats() { return stats_; }
  const NodeStats& stats() const { return stats_; }
  LruVec& lruvec() { return lruvec_; }
  const LruVec& lruvec() const { return lruvec_; }

  // Zones allocations from this node try, in order: this node's zones from
  // the highest down, then the other nodes' (ZONELIST_FALLBACK); or this
  // node's only (ZONELIST_NOFALLBACK, for __GFP_THISNODE).
  const std::vector<Zone*>& zonelist(bool fallback) const {
    return fallback ? zonelist_fallback_ : zonelist_nofallback_;
  }
  void set_zonelists(std::vector<Zone*> fallback, std::vector<Zone*> nofallback) {
    zonelist_fallback_ = std::move(fallback);
    zonelist_nofallback_ = std::move(nofallback);
  }

 private:
  const int nid_;
  std::atomic<uint64_t> start_pfn_{0};
  std::atomic<uint64_t> spanned_pages_{0};
  std::array<std::unique_ptr<Zone>, MAX_NR_ZONES> zones_;
  NodeStats stats_;
  LruVec lruvec_;
  std::vector<Zone*> zonelist_fallback_;
  std::vector<Zone*> zonelist_nofallback_;
};

}  // namespace pinmm
