// Memory hot(un)plug: memory blocks online and offline, hot-add, and the
// offline_pages loop that empties a range by migration.
//
// Linux counterpart: mm/memory_hotplug.c (online_pages, offline_pages,
// scan_movable_pages, do_migrate_range, zone_for_pfn_range and the
// auto-movable online policy, add_memory) and drivers/base/memory.c (the
// memoryN/state and valid_zones files, memory_block_change_state,
// memory notifiers). KERNEL-SPEC 7 is the reference.
//
// Block states: online --offline--> going-offline --> offline (or back to
// online on failure); offline --online*--> online. Writing the state a
// block already has is -EINVAL, as state_store makes of device_online()'s
// "already online".
//
// offline_pages (KERNEL-SPEC 7.2): range checks, lru_cache_disable,
// isolation (start_isolate_page_range with MEMORY_OFFLINE), MEM_GOING_OFFLINE,
// then the kernel's loop: scan for movable pages and migrate them
// (MR_MEMORY_HOTPLUG, MIGRATE_SYNC, to every node with memory but the
// source's), dissolve free hugetlb folios, test_pages_isolated, repeat.
// Migration failures are not errors: a pinned page makes the loop spin
// until the task gets a signal (-EINTR, "signal backoff"). OfflineOptions
// adds what a user would wrap around the write: a deadline (as `timeout`
// sends SIGTERM) and pinmm's "bounded" retry policy for comparison. Every
// failure names what blocked it (OfflineResult::blocked, also added to the
// machine's blocker log).
//
// pinmm has no per-CPU page lists, so zone_pcp_disable has nothing to do;
// hwpoisoned pages are skipped rather than unmapped.
//
// Thread safety: block state changes take device_hotplug_lock (one at a
// time, like lock_device_hotplug) and mem_hotplug_lock for writing
// (mem_hotplug_begin); readers of the layout (valid_zones, validate) take
// device_hotplug_lock. Faults, GUP and migration run concurrently with
// offlining: isolation keeps the allocator out of the range, and folio
// locks and migration entries do the rest.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pinmm/base/errno.h"
#include "pinmm/base/locks.h"
#include "pinmm/base/policy.h"
#include "pinmm/base/validate.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/memory_system.h"

namespace pinmm {

// Memory notifier events (include/linux/memory.h).
enum MemoryNotifyEvent : unsigned {
  MEM_ONLINE = 1u << 0,
  MEM_GOING_OFFLINE = 1u << 1,
  MEM_OFFLINE = 1u << 2,
  MEM_GOING_ONLINE = 1u << 3,
  MEM_CANCEL_ONLINE = 1u << 4,
  MEM_CANCEL_OFFLINE = 1u << 5,
};

// struct memory_notify.
struct MemoryNotify {
  Pfn start_pfn;
  PageCount nr_pages;
  int status_change_nid = NUMA_NO_NODE;         // the node gains/loses N_MEMORY
  int status_change_nid_normal = NUMA_NO_NODE;  // … N_NORMAL_MEMORY
};

// A notifier: 0 to let the operation go on, -errno to veto a MEM_GOING_*
// event (ignored for the others).
using MemoryNotifier = std::function<int(MemoryNotifyEvent, const MemoryNotify&)>;

// How long offline_pages keeps trying while pages fail to migrate.
enum class OfflineRetryPolicy : uint8_t {
  kForever,  // Linux: until a signal (or the deadline) stops it
  kBounded,  // pinmm: -EBUSY after max_attempts migration attempts
};
std::span<const PolicyInfo> offline_retry_policies();
std::span<const PolicyInfo> online_policies();

struct OfflineOptions {
  // Acts as a signal arriving at this time (timeout(1) around the write).
  std::optional<std::chrono::steady_clock::time_point> deadline;
  OfflineRetryPolicy retry = OfflineRetryPolicy::kForever;
  uint64_t max_attempts = 100;  // kBounded only
};

// One pass of offline_pages' loop that did not finish the job.
struct OfflineAttempt {
  uint64_t attempt = 0;   // 1-based migration attempt number
  Pfn first_movable;      // where scan_movable_pages found work
  uint64_t isolated = 0;  // folios taken for migration
  uint64_t failed = 0;    // folios that did not migrate
  int err = 0;            // migrate_pages' result
};

struct OfflineResult {
  int err = 0;
  // The kernel's reason string when err != 0 ("memory holes", "multizone
  // range", "failure to isolate range", "notifier failure", "signal
  // backoff", "unmovable page", "failure to dissolve huge pages"), or
  // pinmm's "retry limit" (bounded policy).
  std::string reason;
  uint64_t migrate_attempts = 0;  // do_migrate_range calls
  uint64_t isolation_checks = 0;  // test_pages_isolated calls
  uint64_t pages_migrated = 0;
  // The first and the latest attempts that left folios behind.
  std::vector<OfflineAttempt> attempts;
  static constexpr size_t kKeptAttempts = 16;
  // What blocked it: filled when err != 0.
  BlockedOperation blocked;
};

// Counters of the hotplug layer (pinmm's; /proc/vmstat has none for hotplug).
struct HotplugStats {
  uint64_t blocks_onlined = 0;
  uint64_t blocks_offlined = 0;
  uint64_t offline_failures = 0;
  uint64_t online_failures = 0;
  uint64_t blocks_added = 0;
  uint64_t blocks_removed = 0;
  uint64_t pages_migrated = 0;
  bool operator==(const HotplugStats&) const = default;
};

class MemoryHotplug {
 public:
  // The hotplug layer of `ms` (one per machine), with the parameters of
  // ms.config().hotplug.
  explicit MemoryHotplug(MemorySystem& ms);
  MemoryHotplug(const MemoryHotplug&) = delete;
  MemoryHotplug& operator=(const MemoryHotplug&) = delete;

  MemorySystem& ms() const { return ms_; }

  // ---- the sysfs interface (drivers/base/memory.c) ----
  // memoryN/state: "online", "online_kernel", "online_movable" or
  // "offline". 0 or -errno: -EINVAL for another string, an absent block,
  // the state it already has, or a block spanning zones; otherwise what
  // onlining or offlining returned. `result` (optional) gets offlining's
  // details.
  int state_store(uint64_t block, std::string_view value, const OfflineOptions& options = {},
                  OfflineResult* result = nullptr) EXCLUDES(device_hotplug_lock_);
  // memoryN/state as read: "online", "going-offline" or "offline".
  std::string state_show(uint64_t block) const EXCLUDES(device_hotplug_lock_);
  // memoryN/valid_zones: the zone of an online block; for an offline one
  // the default zone first, then the others onlining could choose.
  std::string valid_zones(uint64_t block) const EXCLUDES(device_hotplug_lock_);

  // ---- hot-add (add_memory / add_memory_driver_managed) ----
  // Makes [start, start+nr) present on `nid` in the hot-add space, as one
  // static memory group (a DIMM) when `as_group`, and onlines the new
  // blocks as memhp_default_state says. Returns the group id (or
  // kNoMemoryGroup). E2BIG, EEXIST, EINVAL, ENOMEM as MemorySystem::add_memory_blocks;
  // an onlining failure leaves the blocks offline and is not an error.
  Result<int> add_memory(int nid, Pfn start, PageCount nr, bool as_group)
      EXCLUDES(device_hotplug_lock_);
  // remove_memory: every block must be offline (EBUSY otherwise).
  Result<void> remove_memory(Pfn start, PageCount nr) EXCLUDES(device_hotplug_lock_);

  // ---- the mm side, for callers that hold the hotplug locks' place ----
  // zone_for_pfn_range (KERNEL-SPEC 7.3).
  Zone& zone_for_pfn_range(OnlineType type, int nid, int group, Pfn start, PageCount nr) const;

  // ---- parameters (memory_hotplug module parameters) ----
  void set_auto_movable_ratio(unsigned percent) EXCLUDES(device_hotplug_lock_);
  void set_auto_movable_numa_aware(bool on) EXCLUDES(device_hotplug_lock_);

  // ---- notifiers ----
  int register_memory_notifier(MemoryNotifier fn) EXCLUDES(device_hotplug_lock_);
  void unregister_memory_notifier(int id) EXCLUDES(device_hotplug_lock_);

  HotplugStats stats() const EXCLUDES(device_hotplug_lock_);
  // Block states agree with sections and zones (MemorySystem::validate
  // covers pages), group counts match their blocks, and no block is left
  // going-offline. At a quiescent point.
  ValidationReport validate() const EXCLUDES(device_hotplug_lock_);

 private:
  int memory_block_online(MemoryBlock& mb, OnlineType type) REQUIRES(device_hotplug_lock_);
  int memory_block_offline(MemoryBlock& mb, const OfflineOptions& options, OfflineResult* result)
      REQUIRES(device_hotplug_lock_);
  int online_pages(Pfn pfn, PageCount nr, Zone& zone, int group) REQUIRES(device_hotplug_lock_);
  int offline_pages(Pfn start, PageCount nr, Zone& zone, int group, const OfflineOptions& options,
                    OfflineResult* result) REQUIRES(device_hotplug_lock_);
  int memory_notify(MemoryNotifyEvent event, const MemoryNotify& arg)
      REQUIRES(device_hotplug_lock_);
  bool auto_movable_can_online_movable(int nid, int group, uint64_t nr_pages) const;
  Zone& auto_movable_zone_for_pfn(int nid, int group, Pfn pfn, PageCount nr) const;
  Zone& default_kernel_zone_for_pfn(int nid, Pfn start, PageCount nr) const;
  Zone& default_zone_for_pfn(int nid, Pfn start, PageCount nr) const;

  MemorySystem& ms_;
  mutable Mutex device_hotplug_lock_{LockRank::kDeviceHotplug};
  // mem_hotplug_lock: held for writing while a block changes state.
  RwSem mem_hotplug_lock_{LockRank::kMemHotplug};
  // Parameters: written under device_hotplug_lock_; relaxed reads, since
  // zone_for_pfn_range may be asked without it.
  std::atomic<OnlinePolicy> online_policy_;
  std::atomic<unsigned> auto_movable_ratio_;
  std::atomic<bool> auto_movable_numa_aware_;
  std::atomic<OnlineType> default_online_type_;
  const bool movable_node_;
  std::vector<std::pair<int, MemoryNotifier>> notifiers_ GUARDED_BY(device_hotplug_lock_);
  int next_notifier_id_ GUARDED_BY(device_hotplug_lock_) = 1;
  HotplugStats stats_ GUARDED_BY(device_hotplug_lock_);
};

// Parses a memoryN/state write (mhp_online_type_from_str): the four
// strings, with an optional trailing newline.
std::optional<OnlineType> online_type_from_str(std::string_view s);

}  // namespace pinmm
