// Machine steps: memory blocks offline and online, hot-added DIMMs, CMA
// and unmovable kernel allocations, snapshots of physical memory and
// fault injection.
#include <fmt/format.h>

#include <bit>
#include <chrono>
#include <set>

#include "pinmm/base/inject.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/memory_map.h"
#include "reader.h"
#include "run.h"

namespace pinmm {

namespace {

// A zone with no blocks to offline or online: nothing to do.
StepResult no_blocks(const BlockSelect& b) {
  return step_ok(0, fmt::format("no {} blocks", b.zone));
}

}  // namespace

// ---- offline ----

OfflineStep OfflineStep::parse(StepReader& in) {
  in.allow({"blocks", "last", "timeout_ms", "retries"}, kName);
  OfflineStep st;
  st.blocks = in.blocks();
  if (in["timeout_ms"]) st.timeout_ms = in.r.small_int(in["timeout_ms"], "timeout_ms", 1, 3600000);
  if (in["retries"])
    st.retries = static_cast<unsigned>(in.r.small_int(in["retries"], "retries", 1, 1000000));
  return st;
}

// memoryN/state = offline for each block; the first failure ends the step
// with the blocks offlined before it as the value, and who blocked it.
StepResult OfflineStep::run(ScenarioRun& run, const std::string&) const {
  const std::vector<uint64_t> ids = run.select(blocks);
  if (ids.empty()) return no_blocks(blocks);
  int64_t done = 0;
  uint64_t migrated = 0;
  for (uint64_t id : ids) {
    OfflineOptions opt;
    if (timeout_ms > 0)
      opt.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    if (retries > 0) {
      opt.retry = OfflineRetryPolicy::kBounded;
      opt.max_attempts = retries;
    }
    OfflineResult res;
    const uint64_t seq = run.blocker_seq();
    const int rc = run.hotplug().state_store(id, "offline", opt, &res);
    migrated += res.pages_migrated;
    if (rc != 0) {
      const std::string why = res.reason.empty() ? Errno(-rc).name()
                                                 : fmt::format("{} after {} migration attempts",
                                                               res.reason, res.migrate_attempts);
      StepResult r =
          step_fail(-rc, fmt::format("memory{}: {} ({} blocks offlined before it)", id, why, done));
      r.value = done;
      r.blockers = run.blockers_since(seq);
      return r;
    }
    ++done;
  }
  return step_ok(done, fmt::format("{} blocks offline, {} pages migrated", done, migrated));
}

// ---- online ----

OnlineStep OnlineStep::parse(StepReader& in) {
  in.allow({"blocks", "last", "zone"}, kName);
  OnlineStep st;
  st.blocks = in.blocks();
  if (in["zone"])
    st.zone = in.r.one_of(in["zone"], "zone", {"online", "online_movable", "online_kernel"});
  return st;
}

StepResult OnlineStep::run(ScenarioRun& run, const std::string&) const {
  const std::vector<uint64_t> ids = run.select(blocks);
  if (ids.empty()) return no_blocks(blocks);
  int64_t done = 0;
  for (uint64_t id : ids) {
    if (const int rc = run.hotplug().state_store(id, zone); rc != 0) {
      StepResult r = step_fail(-rc, fmt::format("memory{}: {}", id, Errno(-rc).name()));
      r.value = done;
      return r;
    }
    ++done;
  }
  return step_ok(done, fmt::format("{} blocks {}", done, zone));
}

// ---- hot_add ----

HotAddStep HotAddStep::parse(StepReader& in) {
  in.allow({"size", "node"}, kName);
  HotAddStep st;
  st.bytes = in.r.size(in.need("size"), "size");
  if (in["node"]) st.node = in.node();
  return st;
}

// add_memory of a DIMM right after the last one (or boot memory).
StepResult HotAddStep::run(ScenarioRun& run, const std::string&) const {
  const PageCount nr(bytes / PAGE_SIZE);
  const Pfn start = run.ms().boot_end_pfn() + PageCount(run.hot_added.load());
  auto group = run.hotplug().add_memory(node, start, nr, /*as_group=*/true);
  if (!group.ok()) return step_fail(group.error().code(), "add_memory failed");
  run.hot_added += nr.value();
  return step_ok(static_cast<int64_t>(nr.value()),
                 fmt::format("{} added at pfn {:#x} (group {})", Bytes(bytes).to_string(),
                             start.value(), *group));
}

// ---- cma_alloc ----

CmaAllocStep CmaAllocStep::parse(StepReader& in) {
  in.allow({"area", "count", "as"}, kName);
  CmaAllocStep st;
  st.area = in.r.str(in.need("area"), "area");
  if (!in.r.cma_areas.contains(st.area))
    in.r.fail(in["area"], fmt::format("no CMA area '{}'", st.area));
  if (in["count"] && !(in["count"].IsScalar() && in["count"].Scalar() == "all")) {
    st.count = in.r.unsigned_int(in["count"], "count");
    if (st.count == 0) in.r.fail(in["count"], "'count' is a number of pages, or 'all'");
  }
  st.as = in.define("cma allocation");
  return st;
}

// cma_alloc with no_warn; a failure is ENOMEM with who blocked it.
StepResult CmaAllocStep::run(ScenarioRun& run, const std::string&) const {
  Cma* cma = run.cma().find(area);
  const uint64_t pages = count != 0 ? count : cma->count();
  CmaAllocResult res;
  Page* got = run.cma().cma_alloc(cma, pages, 0, true, &res);
  if (got == nullptr) {
    StepResult r = step_fail(
        ENOMEM, fmt::format("cma_alloc('{}', {} pages) failed after {} slots ({})", area, pages,
                            res.slots_tried, Errno(res.err < 0 ? -res.err : ENOMEM).name()));
    for (const PageBlocker& b : res.blocked.blockers)
      r.blockers.push_back(format_blocker(b));
    return r;
  }
  run.tables().with([&](ScenarioTables& t) { t.cma_allocs[as] = CmaAlloc{cma, got, pages}; });
  return step_ok(static_cast<int64_t>(pages), fmt::format("{} pages of '{}' at pfn {:#x}", pages,
                                                          area, page_to_pfn(got).value()));
}

// ---- cma_release ----

CmaReleaseStep CmaReleaseStep::parse(StepReader& in) {
  in.allow({"alloc"}, kName);
  return CmaReleaseStep{in.use("alloc", "cma allocation")};
}

StepResult CmaReleaseStep::run(ScenarioRun& run, const std::string&) const {
  const std::optional<CmaAlloc> a = run.take(&ScenarioTables::cma_allocs, alloc);
  if (!a) return step_fail(ENOENT, "not allocated");
  if (!run.cma().cma_release(a->area, a->pages, a->count))
    return step_fail(EINVAL, "cma_release refused");
  return step_ok(static_cast<int64_t>(a->count), fmt::format("{} pages released", a->count));
}

// ---- kernel_alloc ----

KernelAllocStep KernelAllocStep::parse(StepReader& in) {
  in.allow({"size", "node", "as", "label"}, kName);
  KernelAllocStep st;
  st.bytes = in.r.page_size(in.need("size"), "size");
  if (st.bytes == 0 || (st.bytes & (st.bytes - 1)) != 0 || st.bytes > (4ull << 20))
    in.r.fail(in["size"], "a kernel allocation is a power of two between 4KiB and 4MiB");
  if (in["node"]) st.node = in.node();
  if (in["label"]) st.label = in.r.str(in["label"], "label");
  st.as = in.define("kernel allocation");
  return st;
}

StepResult KernelAllocStep::run(ScenarioRun& run, const std::string&) const {
  const unsigned order = static_cast<unsigned>(std::countr_zero(bytes / PAGE_SIZE));
  Page* p = kmalloc_pages(run.ms(), Order(order), label, GFP_KERNEL, node);
  if (p == nullptr) return step_fail(ENOMEM, "kmalloc_pages failed");
  run.tables().with([&](ScenarioTables& t) { t.kernel_allocs[as] = p; });
  return step_ok(int64_t{1} << order, fmt::format("{} unmovable pages at pfn {:#x} ('{}')",
                                                  1u << order, page_to_pfn(p).value(), label));
}

// ---- kernel_free ----

KernelFreeStep KernelFreeStep::parse(StepReader& in) {
  in.allow({"alloc"}, kName);
  return KernelFreeStep{in.use("alloc", "kernel allocation")};
}

StepResult KernelFreeStep::run(ScenarioRun& run, const std::string&) const {
  const std::optional<Page*> p = run.take(&ScenarioTables::kernel_allocs, alloc);
  if (!p) return step_fail(ENOENT, "not allocated");
  kfree_pages(*p);
  return step_ok(0, "freed");
}

// ---- snapshot ----

SnapshotStep SnapshotStep::parse(StepReader& in) {
  in.allow({"label"}, kName);
  return SnapshotStep{in["label"] ? in.r.str(in["label"], "label")
                                  : fmt::format("snapshot {}", ++in.r.snapshots)};
}

namespace {

// Who pins the pages of each pageblock of `map`.
std::vector<std::string> pinners(MemorySystem& ms, const PhysMemoryMap& map) {
  std::vector<std::string> out(map.blocks.size());
  for (size_t i = 0; i < map.blocks.size(); ++i) {
    if (map.blocks[i].pinned == 0) continue;
    std::set<std::string> who;
    const Pfn start = map.blocks[i].start;
    for (uint64_t off = 0; off < pageblock_nr_pages;) {
      const Page* page = ms.pfn_to_page(start + PageCount(off));
      const Folio* folio = page_folio(page);
      uint64_t step = 1;
      if (&folio->page == page && folio_ref_count(folio) > 0) {
        step = folio_nr_pages(folio);
        for (const PinOwner& o : ms.pin_owners().owners_of(folio)) {
          who.insert(o.kind == PinOwnerKind::kDevice
                         ? fmt::format("device '{}' [{}]", o.name, o.label)
                         : fmt::format("task {} '{}' [{}]", o.pid, o.name, o.label));
        }
      }
      off += step;
    }
    for (const std::string& w : who)
      out[i] += (out[i].empty() ? "" : "; ") + w;
  }
  return out;
}

}  // namespace

StepResult SnapshotStep::run(ScenarioRun& run, const std::string& step_id) const {
  SnapshotRecord rec{label, step_id, snapshot_memory_map(run.ms()), {}};
  rec.pinners = pinners(run.ms(), rec.map);
  std::string text = fmt::format(
      "'{}': {} long-term pinned, {} pinned, {} unmovable, {} movable, {} free, {} offline "
      "pageblocks",
      label, rec.map.count(PageblockState::kLongtermPinned), rec.map.count(PageblockState::kPinned),
      rec.map.count(PageblockState::kUnmovable), rec.map.count(PageblockState::kMovable),
      rec.map.count(PageblockState::kFree), rec.map.count(PageblockState::kOffline));
  run.tables().with([&](ScenarioTables& t) { t.snapshots.push_back(std::move(rec)); });
  return step_ok(0, std::move(text));
}

// ---- inject ----

// One point of the catalogue, and exactly one way to arm (or clear) it
// that fits the point's kind.
InjectStep InjectStep::parse(StepReader& in) {
  in.allow({"point", "every", "nth", "probability", "delay_us", "clear"}, kName);
  InjectStep st;
  const YAML::Node p = in.need("point");
  st.point = in.r.str(p, "point");
  const InjectPointInfo* info = find_inject_point(st.point);
  if (info == nullptr) {
    std::string names;
    for (const InjectPointInfo& i : inject_points())
      names += fmt::format("{}{}", names.empty() ? "" : ", ", i.name);
    in.r.fail(p, fmt::format("no injection point '{}' (there are: {})", st.point, names));
  }
  int modes = 0;
  for (const char* k : {"every", "nth", "probability", "delay_us", "clear"})
    modes += in[k] ? 1 : 0;
  if (modes != 1) in.fail("an inject step takes one of every, nth, probability, delay_us, clear");
  const bool window = info->kind == InjectKind::kWindow;
  auto need_kind = [&](const char* key, bool for_window) {
    if (window != for_window)
      in.r.fail(in[key],
                fmt::format("'{}' is a {} point: {}", st.point, window ? "window" : "failure",
                            window ? "it takes delay_us" : "it takes every, nth or probability"));
  };
  if (in["every"]) {
    need_kind("every", false);
    st.mode = Mode::kEvery;
    st.n = static_cast<uint64_t>(in.r.small_int(in["every"], "every", 1, 1000000000));
  } else if (in["nth"]) {
    need_kind("nth", false);
    st.mode = Mode::kNth;
    st.n = static_cast<uint64_t>(in.r.small_int(in["nth"], "nth", 1, 1000000000));
  } else if (in["probability"]) {
    need_kind("probability", false);
    st.mode = Mode::kProbability;
    st.probability = in.r.probability(in["probability"], "probability");
  } else if (in["delay_us"]) {
    need_kind("delay_us", true);
    st.mode = Mode::kDelay;
    st.n = static_cast<uint64_t>(in.r.small_int(in["delay_us"], "delay_us", 1, 10000000));
  } else {
    if (!in.r.boolean(in["clear"], "clear")) in.r.fail(in["clear"], "'clear' is only ever true");
    st.mode = Mode::kClear;
  }
  return st;
}

// Clearing reports, as its value, the failures a failure point injected or
// the hits a window point had while armed, so a scenario can assert on them.
StepResult InjectStep::run(ScenarioRun& run, const std::string&) const {
  Injector& inj = run.ms().injector();
  switch (mode) {
    case Mode::kEvery:
      inj.fail_every(point, n);
      return step_ok(0, fmt::format("{}: every {} hit(s) fail", point, n));
    case Mode::kNth:
      inj.fail_nth(point, n);
      return step_ok(0, fmt::format("{}: hit {} from now fails", point, n));
    case Mode::kProbability:
      inj.fail_random(point, probability);
      return step_ok(0, fmt::format("{}: each hit fails with p={}", point, probability));
    case Mode::kDelay:
      inj.delay(point, std::chrono::microseconds(n));
      return step_ok(0, fmt::format("{}: each hit waits {} us", point, n));
    case Mode::kClear: {
      const uint64_t hits = inj.hits(point), failures = inj.failures(point);
      inj.clear(point);
      const bool window = find_inject_point(point)->kind == InjectKind::kWindow;
      return step_ok(
          static_cast<int64_t>(window ? hits : failures),
          fmt::format("{}: cleared after {} hits, {} injected failures", point, hits, failures));
    }
  }
  return step_fail(EINVAL, "not an injection mode");
}

}  // namespace pinmm
