// MemorySystem: the owner of everything in one simulated machine.
//
// Linux counterpart: the machine-wide state the kernel keeps in globals —
// NODE_DATA(), mem_map/vmemmap, memory sections and memory blocks
// (drivers/base/memory.c), vm_event_states, vm_node_stat — gathered in one
// object so that many machines can coexist in one process (tests build
// machines of a few MiB). Built from a MachineConfig by create(), which boots
// the machine: lays out nodes, zones, sections and memory blocks, reserves
// boot memory (page descriptor arrays, CMA areas, gigantic hugetlb pages),
// frees everything else to the buddy allocator, sets watermarks, and fills
// the hugetlb pools.
//
// Thread safety: the topology is fixed after create() except for what memory
// hotplug changes under its own lock; services (tracer, injector, counters,
// wait table) are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pinmm/base/counters.h"
#include "pinmm/base/errno.h"
#include "pinmm/base/inject.h"
#include "pinmm/base/locks.h"
#include "pinmm/base/trace.h"
#include "pinmm/base/validate.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/config.h"
#include "pinmm/phys/frame_store.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/page.h"
#include "pinmm/phys/pageblock.h"
#include "pinmm/phys/zone.h"

namespace pinmm {

class FolioWaitTable;
class HugetlbPools;
class PinOwners;

enum class MemoryBlockState : uint8_t { kOnline, kGoingOffline, kOffline };
const char* memory_block_state_name(MemoryBlockState s);  // "online", "going-offline", "offline"

// A memory group (struct memory_group): the blocks one memory device added,
// for the auto-movable online policy. Static groups (a DIMM) are onlined all
// movable or all kernel.
struct MemoryGroup {
  int nid = 0;
  uint64_t max_pages = 0;  // the device's whole size
  uint64_t present_kernel_pages = 0;
  uint64_t present_movable_pages = 0;
};
inline constexpr int kNoMemoryGroup = -1;

// A hot-pluggable memory block (drivers/base/memory.c): /sys/devices/system/memory/memoryN.
// Blocks exist for the whole PFN space; `present` says whether memory is
// there (boot memory, or hot-added). The hotplug layer changes state, zone
// and online_type under its device lock.
struct MemoryBlock {
  uint64_t id = 0;
  Pfn start_pfn;
  PageCount nr_pages;
  int nid = 0;
  bool present = false;
  bool early = false;  // boot memory (early_section())
  MemoryBlockState state = MemoryBlockState::kOffline;
  ZoneType zone = ZONE_NORMAL;  // meaningful while online
  int group = kNoMemoryGroup;
  // The kernel pages a hot-added block's page descriptors occupy (the memmap
  // sparse_add_section allocates), freed when the block is removed. pinmm
  // keeps descriptors in host memory; these pages model their cost.
  std::vector<Page*> memmap_pages;
};

// A boot-time CMA reservation (the range the cma/ layer manages).
struct CmaReservation {
  std::string name;
  int nid = 0;
  Pfn base_pfn;
  PageCount count;
  unsigned order_per_bit = 0;
};

class MemorySystem {
 public:
  // Boots a machine. EINVAL if config.check() reports problems (print those
  // to the user), ENOMEM if the host cannot reserve the memory.
  static Result<std::unique_ptr<MemorySystem>> create(const MachineConfig& config);
  ~MemorySystem();
  MemorySystem(const MemorySystem&) = delete;
  MemorySystem& operator=(const MemorySystem&) = delete;

  const MachineConfig& config() const { return config_; }

  // ---- PFN space ----
  // The end of the PFN space: boot memory, then the hot-add space.
  Pfn max_pfn() const { return Pfn(nr_pfns_); }
  // The end of boot memory (where the hot-add space starts).
  Pfn boot_end_pfn() const { return Pfn(boot_pfns_); }
  // Where the device space starts (the end of the hot-add space): memory
  // blocks exist below it, ZONE_DEVICE ranges above.
  Pfn device_start_pfn() const { return Pfn(device_start_pfns_); }
  // True if pfn lies in a present section (boot or hot-added memory).
  bool pfn_valid(Pfn pfn) const;
  Page* pfn_to_page(Pfn pfn) const { return mem_map_ + pfn.value(); }
  Pfn page_to_pfn(const Page* page) const { return Pfn(static_cast<uint64_t>(page - mem_map_)); }
  // The page if its section is online, else nullptr (a section goes offline
  // when offlining its block succeeds).
  Page* pfn_to_online_page(Pfn pfn) const;
  Page* mem_map() const { return mem_map_; }
  PageCount section_pages() const { return config_.section_size.pages(); }
  PageCount block_pages() const { return config_.block_size.pages(); }

  // ---- topology ----
  int nr_nodes() const { return static_cast<int>(nodes_.size()); }
  Node& node(int nid) { return *nodes_[nid]; }
  const Node& node(int nid) const { return *nodes_[nid]; }
  Zone& zone(int nid, ZoneType t) { return nodes_[nid]->zone(t); }
  const Zone& zone(int nid, ZoneType t) const { return nodes_[nid]->zone(t); }
  // Every block of the PFN space, present or not, indexed by id.
  std::span<MemoryBlock> memory_blocks() { return blocks_; }
  std::span<const MemoryBlock> memory_blocks() const { return blocks_; }
  MemoryBlock& memory_block_of(Pfn pfn) { return blocks_[pfn.value() / block_pages().value()]; }
  const MemoryBlock& memory_block_of(Pfn pfn) const {
    return blocks_[pfn.value() / block_pages().value()];
  }
  // Memory groups registered by hot-add (index = group id).
  std::vector<MemoryGroup>& memory_groups() { return groups_; }
  const std::vector<MemoryGroup>& memory_groups() const { return groups_; }
  std::span<const CmaReservation> cma_reservations() const { return cma_; }
  // The node a simulated CPU belongs to (CPUs are spread evenly over nodes).
  int cpu_to_node(int cpu) const;

  // ---- services ----
  const FrameStore& frames() const { return frames_; }
  PageblockFlags& pageblock_flags() { return pageblock_flags_; }
  const PageblockFlags& pageblock_flags() const { return pageblock_flags_; }
  Tracer& tracer() { return tracer_; }
  Injector& injector() { return injector_; }
  VmEvents& events() { return events_; }
  FolioWaitTable& wait_table() { return *wait_table_; }
  HugetlbPools& hugetlb() { return *hugetlb_; }
  const HugetlbPools& hugetlb() const { return *hugetlb_; }
  // Who pins each folio (phys/pin_owners.h).
  PinOwners& pin_owners() { return *pin_owners_; }
  const PinOwners& pin_owners() const { return *pin_owners_; }
  // The latest operations that failed because memory would not move, and
  // what blocked them (phys/blockers.h).
  BlockerLog& blocker_log() { return blocker_log_; }
  const BlockerLog& blocker_log() const { return blocker_log_; }
  LruAddBatch& lru_add_batch(int cpu) { return lru_batches_[cpu]; }
  const LruAddBatch& lru_add_batch(int cpu) const { return lru_batches_[cpu]; }
  std::atomic<int>& lru_disable_count() { return lru_disable_count_; }
  bool lru_cache_disabled() const { return lru_disable_count_.load(std::memory_order_acquire) > 0; }

  // The shared zero page (empty_zero_page): mapped read-only wherever
  // anonymous memory is read before it is written. Its frame lies just past
  // the end of RAM (pfn max_pfn()), so it is outside every zone's counts.
  Page* zero_page() const { return pfn_to_page(zero_pfn_); }
  Pfn zero_pfn() const { return zero_pfn_; }
  bool is_zero_pfn(Pfn pfn) const { return pfn == zero_pfn_; }

  // The long-term pin policy in effect (from the config; tests and scenarios
  // may switch it at run time).
  // FIXME(#17): gup's policy does not belong to phys. It moves with the
  // other families (migration targets, online policy, offline retries) into
  // the policy registry, selected per Machine; designing that store twice
  // is what #15 leaves to #17.
  LongtermPinPolicy longterm_pin_policy() const {
    return longterm_pin_policy_.load(std::memory_order_relaxed);
  }
  void set_longterm_pin_policy(LongtermPinPolicy p) {
    longterm_pin_policy_.store(p, std::memory_order_relaxed);
  }

  // vm.min_free_kbytes in effect.
  uint64_t min_free_kbytes() const { return min_free_kbytes_.load(std::memory_order_relaxed); }
  // Recomputes watermarks and lowmem reserves from managed pages (boot, and
  // whenever memory is onlined or offlined).
  void setup_per_zone_wmarks();
  // init_per_zone_wmark_min after memory hotplug: min_free_kbytes from the
  // new lowmem size (unless the user set it), khugepaged's recommendation,
  // then the watermarks.
  void init_per_zone_wmark_min();

  // ---- memory hotplug mechanism (the hotplug layer drives these) ----
  // arch_add_memory/sparse_add_section: makes [start, start+nr) present as
  // offline blocks of `nid` (optionally in memory group `group`),
  // allocating their page descriptors from kernel memory when the machine
  // reserves memmap. E2BIG: outside the hot-add space; EEXIST: overlaps
  // present memory; EINVAL: not whole blocks, or no such node; ENOMEM: no
  // memory for the descriptors.
  Result<void> add_memory_blocks(int nid, Pfn start, PageCount nr, int group);
  // The reverse for offline blocks (arch_remove_memory). EBUSY if a block is
  // online, EINVAL if a block is not present or is boot memory.
  Result<void> remove_memory_blocks(Pfn start, PageCount nr);
  // move_pfn_range_to_zone: the range joins `zone` (span, descriptors
  // reinitialised as PageOffline in that zone, pageblocks of `mt`).
  void move_pfn_range_to_zone(Zone& zone, Pfn start, PageCount nr, MigrateType mt);
  // online_pages_range: frees the range to the buddy allocator in the
  // largest aligned chunks and marks its sections online.
  void online_pages_range(Pfn start, PageCount nr);
  // The range's sections go offline (offline_mem_sections), and its free
  // isolated pages leave the buddy allocator (__offline_isolated_pages).
  // Returns the managed pages removed.
  uint64_t offline_isolated_pages(Pfn start, Pfn end);
  // remove_pfn_range_from_zone: resets the descriptors to the offline state
  // and shrinks the zone's and the node's span.
  void remove_pfn_range_from_zone(Zone& zone, Pfn start, PageCount nr);
  // adjust_present_page_count for a whole range of one memory block kind.
  void adjust_present_page_count(Zone& zone, Pfn start, int64_t nr, int group);

  // ---- device space (memremap_pages' physical ranges) ----
  // A free, section-aligned range of `nr` pages (rounded up to sections) in
  // the device space, now present, its descriptors reset and in node
  // `nid`'s ZONE_DEVICE span; ENOMEM if none is free.
  Result<Pfn> reserve_device_range(int nid, PageCount nr) EXCLUDES(device_lock_);
  // Gives a range from reserve_device_range back (sections absent again).
  void release_device_range(Pfn start, PageCount nr) EXCLUDES(device_lock_);

  // Kernel-allocation owner tags (kmalloc_pages): interned names.
  uint32_t intern_owner(std::string_view owner) EXCLUDES(owners_lock_);
  std::string owner_name(uint32_t id) const EXCLUDES(owners_lock_);

  // Host bytes of bookkeeping for the simulated memory: page descriptors,
  // pageblock bitmap, nodes, zones and memory blocks (not frame contents).
  uint64_t metadata_bytes() const;

  // A snapshot of every counter, summed over zones and nodes (/proc/vmstat).
  VmStat vmstat() const;
  // Checks the invariants of the physical layer: every PFN is in exactly one
  // state, free lists and counters agree, free buddies have merged, pageblock
  // types follow the CMA and isolation rules. Call at a quiescent point.
  ValidationReport validate() const;

 private:
  MemorySystem(const MachineConfig& config, uint64_t boot_pfns, uint64_t nr_pfns, Page* mem_map,
               FrameStore frames);

  void build_topology();
  void init_memmap();
  void init_zero_page();
  std::optional<Pfn> reserve_top_down(int nid, PageCount nr, Order align, Pfn below) const;
  void reserve_boot_memory();
  void release_boot_memory();
  void build_zonelists();
  void calculate_min_free_kbytes();

  void set_recommended_min_free_kbytes();
  // Sections of the PFN space: present, online, early (boot memory).
  enum SectionFlag : uint8_t { kSectionPresent = 1, kSectionOnline = 2, kSectionEarly = 4 };
  void set_section_flags(Pfn start, Pfn end, uint8_t set, uint8_t clear);
  uint8_t section_flags(Pfn pfn) const {
    return section_flags_[pfn.value() / section_pages().value()].load(std::memory_order_acquire);
  }

  const MachineConfig config_;
  const uint64_t boot_pfns_;
  const uint64_t device_start_pfns_;
  const uint64_t nr_pfns_;
  Page* const mem_map_;  // host mapping of nr_pfns_ descriptors
  FrameStore frames_;
  PageblockFlags pageblock_flags_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<MemoryBlock> blocks_;
  std::vector<MemoryGroup> groups_;
  std::unique_ptr<std::atomic<uint8_t>[]> section_flags_;
  std::vector<CmaReservation> cma_;
  // Boot reservations: [start, end) ranges that stay PG_reserved (memmap) or
  // become gigantic hugetlb pages.
  struct BootRange {
    Pfn start;
    PageCount nr;
    bool gigantic;
  };
  std::vector<BootRange> boot_ranges_;
  std::atomic<uint64_t> min_free_kbytes_{0};
  std::atomic<LongtermPinPolicy> longterm_pin_policy_;
  Pfn zero_pfn_{0};
  std::unique_ptr<LruAddBatch[]> lru_batches_;
  std::atomic<int> lru_disable_count_{0};

  Tracer tracer_;
  Injector injector_;
  VmEvents events_;
  VmStats vm_stats_;
  std::unique_ptr<FolioWaitTable> wait_table_;
  std::unique_ptr<HugetlbPools> hugetlb_;
  std::unique_ptr<PinOwners> pin_owners_;
  BlockerLog blocker_log_;

  mutable Mutex device_lock_{LockRank::kLeaf};
  std::vector<bool> device_sections_used_ GUARDED_BY(device_lock_);
  mutable Mutex owners_lock_{LockRank::kLeaf};
  std::vector<std::string> owners_ GUARDED_BY(owners_lock_);
};

}  // namespace pinmm
