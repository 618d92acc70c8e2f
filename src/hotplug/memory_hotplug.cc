#include "pinmm/hotplug/memory_hotplug.h"

#include <atomic>
#include <thread>

#include "pinmm/base/task.h"
#include "pinmm/migrate/blockers.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/hugetlb.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/page_isolation.h"
#include "pinmm/phys/pageblock.h"

namespace pinmm {

namespace {

constexpr PolicyInfo kOnlinePolicies[] = {
    {"contig-zones",
     "online picks the zone the range already touches (kernel zone if both or none, unless "
     "movable_node): the default"},
    {"auto-movable",
     "online picks ZONE_MOVABLE while MOVABLE:KERNEL_EARLY stays within auto_movable_ratio "
     "(301%), system-wide and per node"},
};

constexpr PolicyInfo kOfflineRetryPolicies[] = {
    {"forever", "offline_pages retries migration until a signal or the deadline (Linux)"},
    {"bounded", "offline_pages gives up with -EBUSY after max_attempts migration attempts"},
};

// The block state, read without the device lock (state_show may watch an
// offline in progress) and written under it.
MemoryBlockState load_state(const MemoryBlock& mb) {
  return std::atomic_ref<MemoryBlockState>(const_cast<MemoryBlockState&>(mb.state))
      .load(std::memory_order_relaxed);
}
void store_state(MemoryBlock& mb, MemoryBlockState s) {
  std::atomic_ref<MemoryBlockState>(mb.state).store(s, std::memory_order_relaxed);
}

bool signal_or_deadline(const OfflineOptions& options) {
  if (current().signal_pending()) return true;
  return options.deadline && std::chrono::steady_clock::now() >= *options.deadline;
}

void keep_attempt(OfflineResult* result, const OfflineAttempt& a) {
  if (result == nullptr) return;
  auto& v = result->attempts;
  if (v.size() < OfflineResult::kKeptAttempts) {
    v.push_back(a);
    return;
  }
  // Keep the first half as they were; the second half rolls.
  const size_t half = OfflineResult::kKeptAttempts / 2;
  v.erase(v.begin() + static_cast<std::ptrdiff_t>(half));
  v.push_back(a);
}

}  // namespace

std::span<const PolicyInfo> online_policies() { return kOnlinePolicies; }
std::span<const PolicyInfo> offline_retry_policies() { return kOfflineRetryPolicies; }

std::optional<OnlineType> online_type_from_str(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);  // sysfs_streq
  for (OnlineType t : {OnlineType::kOffline, OnlineType::kOnline, OnlineType::kOnlineKernel,
                       OnlineType::kOnlineMovable}) {
    if (s == online_type_name(t)) return t;
  }
  return std::nullopt;
}

MemoryHotplug::MemoryHotplug(MemorySystem& ms)
    : ms_(ms),
      online_policy_(ms.config().hotplug.online_policy),
      auto_movable_ratio_(ms.config().hotplug.auto_movable_ratio),
      auto_movable_numa_aware_(ms.config().hotplug.auto_movable_numa_aware),
      default_online_type_(ms.config().hotplug.default_online_type),
      movable_node_(ms.config().hotplug.movable_node) {}

// ---- zone selection (KERNEL-SPEC 7.3) ----

Zone& MemoryHotplug::default_kernel_zone_for_pfn(int nid, Pfn, PageCount) const {
  // pinmm's only kernel zone is ZONE_NORMAL (DMA/DMA32 are folded into it).
  return ms_.zone(nid, ZONE_NORMAL);
}

Zone& MemoryHotplug::default_zone_for_pfn(int nid, Pfn start, PageCount nr) const {
  Zone& kernel = default_kernel_zone_for_pfn(nid, start, nr);
  Zone& movable = ms_.zone(nid, ZONE_MOVABLE);
  const bool in_kernel = kernel.zone_intersects(start, nr);
  const bool in_movable = movable.zone_intersects(start, nr);
  if (in_kernel != in_movable) return in_kernel ? kernel : movable;
  return movable_node_ ? movable : kernel;
}

bool MemoryHotplug::auto_movable_can_online_movable(int nid, int group, uint64_t nr_pages) const {
  uint64_t kernel_early = 0, movable = 0;
  auto account = [&](const Zone& z) {
    if (!z.populated()) return;
    if (z.type() == ZONE_MOVABLE) {
      movable += z.present_pages();
    } else {
      // CMA pages (never hot-added) behave like ZONE_MOVABLE.
      kernel_early += z.present_early_pages() - z.cma_pages();
      movable += z.cma_pages();
    }
  };
  for (int n = 0; n < ms_.nr_nodes(); ++n) {
    if (nid != NUMA_NO_NODE && n != nid) continue;
    for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE})
      account(ms_.zone(n, t));
  }
  // Only static groups exist in pinmm, so no dynamic group's kernel memory
  // raises or lowers the allowance (walk_dynamic_memory_groups adds 0).
  (void)group;
  if (kernel_early == 0) return false;
  movable += nr_pages;
  return movable <= static_cast<uint64_t>(auto_movable_ratio_.load(std::memory_order_relaxed)) *
                        kernel_early / 100;
}

Zone& MemoryHotplug::auto_movable_zone_for_pfn(int nid, int group, Pfn pfn, PageCount nr) const {
  if (auto_movable_ratio_.load(std::memory_order_relaxed) == 0)
    return default_kernel_zone_for_pfn(nid, pfn, nr);
  uint64_t max_pages = nr.value();
  uint64_t online_pages = 0;
  if (group != kNoMemoryGroup) {
    const MemoryGroup& g = ms_.memory_groups()[static_cast<size_t>(group)];
    // A static group is all movable or all kernel.
    if (g.present_kernel_pages != 0) return default_kernel_zone_for_pfn(nid, pfn, nr);
    max_pages = g.max_pages;
    online_pages = g.present_movable_pages;
  }
  // Movable if all that is left of the device could go movable now.
  const uint64_t remaining = max_pages - online_pages;
  if (!auto_movable_can_online_movable(NUMA_NO_NODE, group, remaining))
    return default_kernel_zone_for_pfn(nid, pfn, nr);
  if (auto_movable_numa_aware_.load(std::memory_order_relaxed) &&
      !auto_movable_can_online_movable(nid, group, remaining))
    return default_kernel_zone_for_pfn(nid, pfn, nr);
  return ms_.zone(nid, ZONE_MOVABLE);
}

Zone& MemoryHotplug::zone_for_pfn_range(OnlineType type, int nid, int group, Pfn start,
                                        PageCount nr) const {
  if (type == OnlineType::kOnlineKernel) return default_kernel_zone_for_pfn(nid, start, nr);
  if (type == OnlineType::kOnlineMovable) return ms_.zone(nid, ZONE_MOVABLE);
  if (online_policy_.load(std::memory_order_relaxed) == OnlinePolicy::kAutoMovable)
    return auto_movable_zone_for_pfn(nid, group, start, nr);
  return default_zone_for_pfn(nid, start, nr);
}

// ---- notifiers ----

int MemoryHotplug::register_memory_notifier(MemoryNotifier fn) {
  MutexGuard g(device_hotplug_lock_);
  const int id = next_notifier_id_++;
  notifiers_.emplace_back(id, std::move(fn));
  return id;
}

void MemoryHotplug::unregister_memory_notifier(int id) {
  MutexGuard g(device_hotplug_lock_);
  std::erase_if(notifiers_, [id](const auto& n) { return n.first == id; });
}

int MemoryHotplug::memory_notify(MemoryNotifyEvent event, const MemoryNotify& arg) {
  for (const auto& [id, fn] : notifiers_) {
    const int rc = fn(event, arg);
    // notifier_to_errno: only the MEM_GOING_* events may veto.
    if (rc != 0 && (event == MEM_GOING_ONLINE || event == MEM_GOING_OFFLINE)) return rc;
  }
  return 0;
}

// ---- online_pages ----

int MemoryHotplug::online_pages(Pfn pfn, PageCount nr, Zone& zone, int group) {
  const PageCount section = ms_.section_pages();
  if (nr.value() == 0 || !pfn.is_aligned(kPageblockOrder) ||
      (pfn + nr).value() % section.value() != 0)
    return -EINVAL;
  WriteGuard hotplug(mem_hotplug_lock_);
  ms_.move_pfn_range_to_zone(zone, pfn, nr, MIGRATE_ISOLATE);

  MemoryNotify arg{pfn, nr};
  const int nid = zone.nid();
  if (!ms_.node(nid).has_memory()) arg.status_change_nid = nid;
  if (zone.type() == ZONE_NORMAL && !ms_.zone(nid, ZONE_NORMAL).populated())
    arg.status_change_nid_normal = nid;
  if (const int rc = memory_notify(MEM_GOING_ONLINE, arg); rc != 0) {
    memory_notify(MEM_CANCEL_ONLINE, arg);
    ms_.remove_pfn_range_from_zone(zone, pfn, nr);
    return rc;
  }
  // The blocks are isolated until the pages are in the buddy allocator.
  zone.adjust_nr_isolate_pageblock(static_cast<int64_t>(nr.value() / pageblock_nr_pages));
  ms_.online_pages_range(pfn, nr);
  ms_.adjust_present_page_count(zone, pfn, static_cast<int64_t>(nr.value()), group);
  undo_isolate_page_range(ms_, pfn, pfn + nr, MIGRATE_MOVABLE);
  ms_.init_per_zone_wmark_min();
  memory_notify(MEM_ONLINE, arg);
  return 0;
}

// ---- offline_pages (KERNEL-SPEC 7.2) ----

namespace {

// scan_movable_pages: the first PFN in [start, end) that migration could
// move, or -ENOENT; -EBUSY for a referenced PageOffline page.
int scan_movable_pages(MemorySystem& ms, Pfn start, Pfn end, Pfn* movable) {
  for (Pfn pfn = start; pfn < end; ++pfn) {
    if (!ms.pfn_valid(pfn)) continue;
    const Page* page = ms.pfn_to_page(pfn);
    const Folio* folio = page_folio(page);
    if (folio_test_lru(folio) || __folio_test_movable(folio)) {
      *movable = pfn;
      return 0;
    }
    if (PageOffline(page) && page->refcount() != 0) return -EBUSY;
    if (!folio_test_hugetlb(folio)) continue;
    if (folio_test_hugetlb_migratable(folio)) {
      *movable = pfn;
      return 0;
    }
    pfn = folio_pfn(folio) + PageCount(folio_nr_pages(folio) - 1);
  }
  return -ENOENT;
}

struct MigrateRangeOutcome {
  uint64_t isolated = 0;
  uint64_t failed = 0;
  uint64_t migrated_pages = 0;
  int err = 0;
};

// do_migrate_range: isolates what it can of [start, end) and migrates it
// to the other nodes with memory; what failed is described into `blocked`.
MigrateRangeOutcome do_migrate_range(MemorySystem& ms, Pfn start, Pfn end,
                                     BlockedOperation* blocked) {
  MigrateRangeOutcome out;
  ListHead source;
  init_list_head(&source);
  for (Pfn pfn = start; pfn < end; ++pfn) {
    if (!ms.pfn_valid(pfn)) continue;
    Page* page = ms.pfn_to_page(pfn);
    Folio* folio = page_folio(page);
    // No reference yet: the size may be stale; a split folio is revisited.
    if (folio_test_large(folio)) pfn = folio_pfn(folio) + PageCount(folio_nr_pages(folio) - 1);
    if (!folio_try_get(folio)) continue;
    if (page_folio(page) != folio) {
      folio_put(folio);
      continue;
    }
    // pinmm does not unmap hwpoisoned folios; they are left in place.
    if (!folio_test_hwpoison(folio)) {
      if (isolate_folio_to_list(folio, &source)) {
        ++out.isolated;
      } else if (blocked != nullptr) {
        blocked->add(describe_blocker(ms, folio_pfn(folio), BlockReason::kIsolationFailed));
      }
    }
    folio_put(folio);
  }
  if (list_empty(&source)) return out;
  const int nid = folio_nid(folio_of_lru(source.load_next()));
  MigrationTargetControl mtc;
  NodeMask nmask;
  for (int n = 0; n < ms.nr_nodes(); ++n) {
    if (n != nid && ms.node(n).has_memory()) nmask.set(static_cast<size_t>(n));
  }
  if (nmask.none()) nmask.set(static_cast<size_t>(nid));
  mtc.nid = nid;
  mtc.nmask = nmask;
  mtc.gfp_mask = GFP_USER | __GFP_MOVABLE | __GFP_RETRY_MAYFAIL;
  mtc.reason = MR_MEMORY_HOTPLUG;
  MigratePagesStats stats;
  out.err = migrate_pages(ms, &source, migration_target(ms, mtc), MIGRATE_SYNC, MR_MEMORY_HOTPLUG,
                          nullptr, &stats);
  out.migrated_pages = stats.nr_succeeded;
  if (out.err != 0) {
    std::vector<PageBlocker> failed = describe_migration_list(ms, &source, out.err);
    out.failed = failed.size();
    if (blocked != nullptr) {
      for (PageBlocker& b : failed)
        blocked->add(std::move(b));
    }
    putback_movable_pages(&source);
  }
  return out;
}

}  // namespace

int MemoryHotplug::offline_pages(Pfn start, PageCount nr, Zone& zone, int group,
                                 const OfflineOptions& options, OfflineResult* result) {
  OfflineResult local;
  OfflineResult& res = result != nullptr ? *result : local;
  res = OfflineResult{};
  res.blocked.operation = "offline_pages";
  res.blocked.start = start;
  res.blocked.end = start + nr;
  const Pfn end = start + nr;
  auto fail = [&](int err, const char* reason) {
    device_hotplug_lock_.assert_held();  // the analysis does not follow lambdas
    res.err = err;
    res.reason = reason;
    res.blocked.err = err;
    res.blocked.detail = reason;
    ms_.blocker_log().add(res.blocked);
    ++stats_.offline_failures;
    return err;
  };

  if (nr.value() == 0 || !start.is_aligned(kPageblockOrder) ||
      end.value() % ms_.section_pages().value() != 0) {
    res.err = -EINVAL;
    return -EINVAL;  // the kernel WARNs: a caller bug, not a failed offline
  }
  for (Pfn pfn = start; pfn < end; pfn += ms_.section_pages()) {
    if (!ms_.pfn_valid(pfn)) return fail(-EINVAL, "memory holes");
  }
  if (page_zone(ms_.pfn_to_page(start)) != &zone ||
      page_zone(ms_.pfn_to_page(end - PageCount(1))) != &zone)
    return fail(-EINVAL, "multizone range");

  WriteGuard hotplug(mem_hotplug_lock_);
  lru_cache_disable(ms_);
  Pfn refused{0};
  if (start_isolate_page_range(ms_, start, end, MIGRATE_MOVABLE, MEMORY_OFFLINE | REPORT_FAILURE,
                               &refused) != 0) {
    lru_cache_enable(ms_);
    res.blocked.add(describe_blocker(ms_, refused, BlockReason::kUnmovable));
    return fail(-EBUSY, "failure to isolate range");
  }

  // node_states_check_changes_offline.
  MemoryNotify arg{start, nr};
  const int nid = zone.nid();
  const Zone& normal = ms_.zone(nid, ZONE_NORMAL);
  if (zone.type() == ZONE_NORMAL && nr.value() >= normal.present_pages())
    arg.status_change_nid_normal = nid;
  if (nr.value() >= ms_.node(nid).node_present_pages()) arg.status_change_nid = nid;

  auto undo = [&](int err, const char* reason) {
    device_hotplug_lock_.assert_held();
    undo_isolate_page_range(ms_, start, end, MIGRATE_MOVABLE);
    memory_notify(MEM_CANCEL_OFFLINE, arg);
    lru_cache_enable(ms_);
    return fail(err, reason);
  };
  if (const int rc = memory_notify(MEM_GOING_OFFLINE, arg); rc != 0)
    return undo(rc, "notifier failure");

  for (;;) {
    Pfn pfn = start;
    int ret = 0;
    do {
      // Any signal, not only a fatal one (the kernel keeps that for
      // compatibility); the deadline counts as one.
      if (signal_or_deadline(options)) return undo(-EINTR, "signal backoff");
      if (options.retry == OfflineRetryPolicy::kBounded &&
          res.migrate_attempts >= options.max_attempts)
        return undo(-EBUSY, "retry limit");
      ret = scan_movable_pages(ms_, pfn, end, &pfn);
      if (ret == 0) {
        // The blockers of the latest attempt are the ones to report.
        res.blocked.clear_blockers();
        const MigrateRangeOutcome o = do_migrate_range(ms_, pfn, end, &res.blocked);
        ++res.migrate_attempts;
        res.pages_migrated += o.migrated_pages;
        stats_.pages_migrated += o.migrated_pages;
        if (o.err != 0 || res.blocked.nr_blockers != 0) {
          keep_attempt(&res, {res.migrate_attempts, pfn, o.isolated, o.failed, o.err});
          std::this_thread::yield();  // cond_resched: let the holders run
        }
      }
    } while (ret == 0);
    if (ret != -ENOENT) {
      res.blocked.add(describe_blocker(ms_, pfn, BlockReason::kBusy));
      return undo(ret, "unmovable page");
    }
    // Free hugetlb folios go back to the buddy allocator first, so that
    // hugetlb's counts stay right.
    if (ms_.hugetlb().dissolve_free_hugetlb_folios(start, end) != 0)
      return undo(-EBUSY, "failure to dissolve huge pages");
    ++res.isolation_checks;
    Pfn busy{0};
    if (test_pages_isolated(ms_, start, end, MEMORY_OFFLINE, &busy) == 0) break;
    // Someone freed or allocated behind our back, or a folio is in flight:
    // describe it and go round again.
    res.blocked.clear_blockers();
    res.blocked.add(describe_blocker(ms_, busy, BlockReason::kBusy));
    std::this_thread::yield();
  }

  // Success: the pages leave the buddy allocator and the zone.
  const uint64_t managed = ms_.offline_isolated_pages(start, end);
  zone.adjust_nr_isolate_pageblock(-static_cast<int64_t>(nr.value() / pageblock_nr_pages));
  lru_cache_enable(ms_);
  zone.add_managed_pages(-static_cast<int64_t>(managed));
  ms_.adjust_present_page_count(zone, start, -static_cast<int64_t>(nr.value()), group);
  ms_.init_per_zone_wmark_min();
  memory_notify(MEM_OFFLINE, arg);
  ms_.remove_pfn_range_from_zone(zone, start, nr);
  res.blocked.clear_blockers();
  return 0;
}

// ---- memory blocks ----

int MemoryHotplug::memory_block_online(MemoryBlock& mb, OnlineType type) {
  if (load_state(mb) != MemoryBlockState::kOffline) return -EINVAL;
  const OnlineType t = type == OnlineType::kOffline ? OnlineType::kOnline : type;
  Zone& zone = zone_for_pfn_range(t, mb.nid, mb.group, mb.start_pfn, mb.nr_pages);
  const int rc = online_pages(mb.start_pfn, mb.nr_pages, zone, mb.group);
  if (rc != 0) {
    ++stats_.online_failures;
    return rc;
  }
  mb.zone = zone.type();
  store_state(mb, MemoryBlockState::kOnline);
  ++stats_.blocks_onlined;
  return 0;
}

int MemoryHotplug::memory_block_offline(MemoryBlock& mb, const OfflineOptions& options,
                                        OfflineResult* result) {
  if (load_state(mb) != MemoryBlockState::kOnline) return -EINVAL;
  Zone& zone = ms_.zone(mb.nid, mb.zone);
  store_state(mb, MemoryBlockState::kGoingOffline);
  const int rc = offline_pages(mb.start_pfn, mb.nr_pages, zone, mb.group, options, result);
  store_state(mb, rc == 0 ? MemoryBlockState::kOffline : MemoryBlockState::kOnline);
  if (rc == 0) ++stats_.blocks_offlined;
  return rc;
}

int MemoryHotplug::state_store(uint64_t block, std::string_view value,
                               const OfflineOptions& options, OfflineResult* result) {
  const std::optional<OnlineType> type = online_type_from_str(value);
  if (!type) return -EINVAL;
  MutexGuard g(device_hotplug_lock_);
  auto blocks = ms_.memory_blocks();
  if (block >= blocks.size() || !blocks[block].present) return -ENOENT;  // no such file
  MemoryBlock& mb = blocks[block];
  const MemoryBlockState state = load_state(mb);
  // device_online/device_offline say "already there" (1), which
  // state_store turns into -EINVAL.
  if (*type == OnlineType::kOffline) {
    if (state == MemoryBlockState::kOffline) return -EINVAL;
    return memory_block_offline(mb, options, result);
  }
  if (state == MemoryBlockState::kOnline) return -EINVAL;
  return memory_block_online(mb, *type);
}

std::string MemoryHotplug::state_show(uint64_t block) const {
  auto blocks = ms_.memory_blocks();
  if (block >= blocks.size() || !blocks[block].present) return {};
  return memory_block_state_name(load_state(blocks[block]));
}

std::string MemoryHotplug::valid_zones(uint64_t block) const {
  MutexGuard g(device_hotplug_lock_);
  auto blocks = ms_.memory_blocks();
  if (block >= blocks.size() || !blocks[block].present) return {};
  const MemoryBlock& mb = blocks[block];
  if (load_state(mb) == MemoryBlockState::kOnline) return zone_type_name(mb.zone);
  const Zone& def =
      zone_for_pfn_range(OnlineType::kOnline, mb.nid, mb.group, mb.start_pfn, mb.nr_pages);
  std::string out = def.name();
  for (OnlineType t : {OnlineType::kOnlineKernel, OnlineType::kOnlineMovable}) {
    const Zone& z = zone_for_pfn_range(t, mb.nid, mb.group, mb.start_pfn, mb.nr_pages);
    if (&z != &def) {
      out += ' ';
      out += z.name();
    }
  }
  return out;
}

// ---- hot-add and remove ----

Result<int> MemoryHotplug::add_memory(int nid, Pfn start, PageCount nr, bool as_group) {
  MutexGuard g(device_hotplug_lock_);
  int group = kNoMemoryGroup;
  auto& groups = ms_.memory_groups();
  if (as_group) {
    groups.push_back({nid, nr.value(), 0, 0});
    group = static_cast<int>(groups.size() - 1);
  }
  if (auto r = ms_.add_memory_blocks(nid, start, nr, group); !r.ok()) {
    if (as_group) groups.pop_back();
    return r.error();
  }
  stats_.blocks_added += nr.value() / ms_.block_pages().value();
  if (default_online_type_.load(std::memory_order_relaxed) != OnlineType::kOffline) {
    for (Pfn b = start; b < start + nr; b += ms_.block_pages()) {
      // A failure leaves the block offline, as online_memory_block's
      // caller only logs it.
      (void)memory_block_online(ms_.memory_block_of(b), default_online_type_.load());
    }
  }
  return group;
}

Result<void> MemoryHotplug::remove_memory(Pfn start, PageCount nr) {
  MutexGuard g(device_hotplug_lock_);
  TRY(ms_.remove_memory_blocks(start, nr));
  stats_.blocks_removed += nr.value() / ms_.block_pages().value();
  return {};
}

// ---- parameters, stats, validation ----

void MemoryHotplug::set_auto_movable_ratio(unsigned percent) {
  MutexGuard g(device_hotplug_lock_);
  auto_movable_ratio_.store(percent, std::memory_order_relaxed);
}
void MemoryHotplug::set_auto_movable_numa_aware(bool on) {
  MutexGuard g(device_hotplug_lock_);
  auto_movable_numa_aware_.store(on, std::memory_order_relaxed);
}

HotplugStats MemoryHotplug::stats() const {
  MutexGuard g(device_hotplug_lock_);
  return stats_;
}

ValidationReport MemoryHotplug::validate() const {
  ValidationReport r;
  MutexGuard g(device_hotplug_lock_);
  const auto& groups = ms_.memory_groups();
  std::vector<uint64_t> kernel(groups.size(), 0), movable(groups.size(), 0);
  for (const MemoryBlock& mb : ms_.memory_blocks()) {
    if (!mb.present) continue;
    const MemoryBlockState s = load_state(mb);
    if (s == MemoryBlockState::kGoingOffline) r.fail("memory{} is left going-offline", mb.id);
    if (mb.group == kNoMemoryGroup || s != MemoryBlockState::kOnline) continue;
    if (static_cast<size_t>(mb.group) >= groups.size()) {
      r.fail("memory{} is in group {}, which does not exist", mb.id, mb.group);
      continue;
    }
    (mb.zone == ZONE_MOVABLE ? movable : kernel)[static_cast<size_t>(mb.group)] +=
        mb.nr_pages.value();
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].present_kernel_pages != kernel[i] ||
        groups[i].present_movable_pages != movable[i]) {
      r.fail("memory group {}: counts kernel {} movable {}, its online blocks hold {} and {}", i,
             groups[i].present_kernel_pages, groups[i].present_movable_pages, kernel[i],
             movable[i]);
    }
  }
  return r;
}

}  // namespace pinmm
