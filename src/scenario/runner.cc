// The scenario runner (runner.h): boots the machine, creates the
// processes and devices, runs the steps (each kind's run(), groups on
// threads of their own), checks each step's expect:, then the file's
// expectations, the pins, and after teardown the audit.
#include "pinmm/scenario/runner.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "expectations.h"
#include "pinmm/base/rcu.h"
#include "pinmm/base/task.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/lru.h"
#include "pinmm/vm/mmap.h"
#include "run.h"

namespace pinmm {

StepResult step_ok(int64_t value, std::string detail) {
  return StepResult{0, value, std::move(detail), {}};
}

StepResult step_fail(int err, std::string detail) {
  return StepResult{err, 0, std::move(detail), {}};
}

// ---- ScenarioRun ----

namespace {

std::unique_ptr<Machine> boot(const Scenario& s) {
  auto booted = Machine::boot(s.machine);
  if (!booted.ok())
    throw ScenarioError(SourcePos{s.file, 0, 0},
                        fmt::format("the machine does not boot: {}", booted.error().name()));
  return std::move(*booted);
}

}  // namespace

ScenarioRun::ScenarioRun(const Scenario& scenario, uint64_t seed)
    : s_(scenario), machine_(boot(scenario)), stamps_(seed) {
  ms().injector().seed(seed);  // probability injections follow the run's seed
}

Process* ScenarioRun::process(const std::string& name) {
  return tables_.with([&](ScenarioTables& t) -> Process* {
    auto it = t.processes.find(name);
    return it == t.processes.end() ? nullptr : it->second.get();
  });
}

Result<Target> ScenarioRun::target(const RangeRef& r) {
  Target t;
  t.proc = process(r.process);
  if (t.proc == nullptr) return Errno(ESRCH);
  t.map = &t.proc->maps.at(r.mapping);
  t.first = r.offset / PAGE_SIZE;
  if (t.first >= t.map->pages) return Errno(EINVAL);
  t.pages = r.size ? *r.size / PAGE_SIZE : t.map->pages - t.first;
  if (t.first + t.pages > t.map->pages) return Errno(EINVAL);
  return t;
}

uint64_t ScenarioRun::blocker_seq() { return ms().blocker_log().last_seq(); }

std::vector<std::string> ScenarioRun::blockers_since(uint64_t since) {
  std::vector<std::string> out;
  for (const BlockedOperation& op : ms().blocker_log().since(since)) {
    for (std::string& line : op.lines())
      out.push_back(std::move(line));
  }
  return out;
}

std::vector<uint64_t> ScenarioRun::select(const BlockSelect& b) const {
  if (!b.ids.empty()) return b.ids;
  std::vector<uint64_t> out;
  for (const MemoryBlock& m : machine_->ms().memory_blocks()) {
    if (!m.present) continue;
    const bool online = m.state == MemoryBlockState::kOnline;
    if (b.zone == "offline" ? !online : online && (m.zone == ZONE_MOVABLE) == (b.zone == "movable"))
      out.push_back(m.id);
  }
  if (b.last && *b.last < out.size())
    out.erase(out.begin(), out.end() - static_cast<long>(*b.last));
  return out;
}

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::vector<int64_t> levels(const VmStat& v) {
  std::vector<int64_t> out;
  for (const char* name : kChartCounters)
    out.push_back(v.by_name(name, HPAGE_PMD_NR).value_or(0));
  return out;
}

std::vector<CounterChange> counter_changes(const VmStat& before, const VmStat& after) {
  std::vector<CounterChange> out;
  const auto b = before.lines(HPAGE_PMD_NR);
  const auto a = after.lines(HPAGE_PMD_NR);
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].second != b[i].second)
      out.push_back(CounterChange{std::string(a[i].first), b[i].second, a[i].second});
  }
  return out;
}

// Maps one mapping of a new process.
Result<VirtAddr> map_one(ScenarioRun& run, Mm& mm, const MappingSpec& m) {
  const int prot = PROT_READ | PROT_WRITE;
  switch (m.kind) {
    case MappingKind::kAnon: {
      // 2 MiB aligned, so THPs are possible.
      const VirtAddr raw =
          TRY(vm_mmap(mm, VirtAddr(0), m.size + HPAGE_PMD_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS));
      const VirtAddr a((raw.value() + HPAGE_PMD_SIZE - 1) & HPAGE_PMD_MASK);
      if (a > raw) TRY(vm_munmap(mm, raw, a - raw));
      TRY(vm_munmap(mm, a + m.size, raw + (m.size + HPAGE_PMD_SIZE) - (a + m.size)));
      TRY(do_madvise(mm, a, m.size, m.thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE));
      return a;
    }
    case MappingKind::kSharedAnon:
      return vm_mmap(mm, VirtAddr(0), m.size, prot, MAP_SHARED | MAP_ANONYMOUS);
    case MappingKind::kHugetlb:
      return vm_mmap(mm, VirtAddr(0), m.size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB);
    case MappingKind::kShmem:
    case MappingKind::kFile:
    case MappingKind::kFilePrivate: {
      auto file = File::create(
          run.vm(), m.kind == MappingKind::kShmem ? FsType::kTmpfs : FsType::kExt4, m.name, m.size);
      run.tables().with([&](ScenarioTables& t) { t.files.push_back(file); });
      return vm_mmap(mm, VirtAddr(0), m.size, prot,
                     m.kind == MappingKind::kFilePrivate ? MAP_PRIVATE : MAP_SHARED, file);
    }
  }
  return Errno(EINVAL);
}

void create_process(ScenarioRun& run, const ProcessSpec& p) {
  auto proc = std::make_unique<Process>();
  proc->task = std::make_unique<Task>(run.next_pid(), p.name);
  proc->mm = Mm::create(run.vm());
  proc->task->set_mm(proc->mm.get());
  CurrentTask current(*proc->task);
  for (const MappingSpec& m : p.mappings) {
    auto addr = map_one(run, *proc->mm, m);
    if (!addr.ok())
      throw ScenarioError(
          m.pos, fmt::format("cannot map '{}.{}': {}", p.name, m.name, addr.error().name()));
    proc->maps.emplace(m.name, Mapping(m.kind, *addr, m.size / PAGE_SIZE));
  }
  run.tables().with([&](ScenarioTables& t) { t.processes[p.name] = std::move(proc); });
}

// A gpu binds to a process at its first access; the others exist from boot.
void create_devices(ScenarioRun& run) {
  run.tables().with([&](ScenarioTables& t) {
    for (const DeviceSpec& d : run.scenario().devices) {
      switch (d.type) {
        case DeviceType::kRdmaNic:
          t.nics[d.name] = std::make_unique<RdmaNic>(run.ms(), d.name);
          break;
        case DeviceType::kDmirror:
          t.dmirrors[d.name] = std::make_unique<DmirrorDevice>(
              run.ms(), d.coherent ? DmirrorMemory::kCoherent : DmirrorMemory::kPrivate,
              static_cast<int>(t.dmirrors.size()));
          break;
        case DeviceType::kGpu:
        case DeviceType::kDirectIo:
          break;
      }
      t.devices[d.name] = &d;
    }
  });
}

// Every step is expected to succeed unless its expect: says otherwise;
// its checks (o.checks, already made) must hold too.
void check_step(const Step& st, StepOutcome& o) {
  const int want = st.expect ? st.expect->err : 0;
  std::string expected = want == 0 ? "ok" : Errno(want).name();
  bool ok = o.err == want;
  if (st.expect && st.expect->value) {
    expected += fmt::format(", value {}", *st.expect->value);
    ok = ok && o.value == *st.expect->value;
  }
  for (const ExpectationOutcome& c : o.checks) {
    if (!c.ok) expected += fmt::format(", {} (found {})", c.what, c.detail);
    ok = ok && c.ok;
  }
  o.expectation_ok = ok;
  if (st.expect || !ok) o.expectation = expected;
}

class Runner {
 public:
  Runner(const Scenario& s, const RunOptions& o) : opts_(o), run_(s, o.seed.value_or(s.seed)) {}

  RunReport run() {
    const Scenario& s = run_.scenario();
    MemorySystem& ms = run_.ms();
    RunReport r;
    r.scenario = s.name;
    r.description = s.description;
    r.file = s.file;
    r.seed = opts_.seed.value_or(s.seed);
    r.machine = s.machine;
    used_at_boot_ = run_.machine().used_pages();
    if (opts_.trace) ms.tracer().enable_all();
    const VmStat start = ms.vmstat();
    r.start_levels = levels(start);
    const uint64_t t0 = now_ns();
    create_devices(run_);
    for (const ProcessSpec& p : s.processes)
      create_process(run_, p);
    for (size_t i = 0; i < s.steps.size(); ++i)
      run_step(s.steps[i], std::to_string(i + 1), r);
    r.total_ns = now_ns() - t0;
    r.counters = counter_changes(start, ms.vmstat());
    r.expectations = check_expectations(run_, s.expect, start);
    check_pins_accounted(r);
    teardown();
    audit(r);
    if (opts_.trace) r.trace_text = ms.tracer().to_ftrace_text();
    r.passed = std::all_of(r.steps.begin(), r.steps.end(),
                           [](const StepOutcome& o) { return o.expectation_ok; }) &&
               std::all_of(r.expectations.begin(), r.expectations.end(),
                           [](const ExpectationOutcome& e) { return e.ok; });
    return r;
  }

 private:
  void run_step(const Step& st, const std::string& id, RunReport& r) {
    if (const auto* group = std::get_if<ConcurrentStep>(&st.op)) return run_group(*group, id, r);
    report(carry_out(st, id), r);
  }

  void report(StepOutcome o, RunReport& r) {
    if (opts_.on_step) opts_.on_step(o);
    r.steps.push_back(std::move(o));
  }

  StepOutcome carry_out(const Step& st, const std::string& id) {
    StepOutcome o;
    o.id = id;
    o.kind = st.kind();
    o.title = st.title;
    if (opts_.on_step_start) opts_.on_step_start(id, st.title);
    const VmStat before = run_.ms().vmstat();
    const uint64_t t0 = now_ns();
    StepResult d = std::visit(
        [&](const auto& kind) {
          if constexpr (std::is_same_v<std::decay_t<decltype(kind)>, ConcurrentStep>) {
            return step_fail(EINVAL, "concurrent groups do not nest");
          } else {
            return kind.run(run_, id);
          }
        },
        st.op);
    o.elapsed_ns = now_ns() - t0;
    // Page tables an unmap or exit freed go back through RCU: wait for
    // them, so a step's counters do not depend on when a grace period
    // ended (one seed, one report).
    rcu::barrier();
    const VmStat after = run_.ms().vmstat();
    o.counters = counter_changes(before, after);
    o.levels = levels(after);
    o.err = d.err;
    o.value = d.value;
    o.detail = std::move(d.detail);
    o.blockers = std::move(d.blockers);
    if (st.expect) o.checks = check_expectations(run_, st.expect->checks, before);
    check_step(st, o);
    return o;
  }

  // The members run at once, each on its own thread; their outcomes are
  // reported in order after the last one ends.
  void run_group(const ConcurrentStep& group, const std::string& id, RunReport& r) {
    std::vector<StepOutcome> outs(group.group.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < group.group.size(); ++i) {
      threads.emplace_back(
          [&, i] { outs[i] = carry_out(group.group[i], fmt::format("{}.{}", id, i + 1)); });
    }
    for (std::thread& t : threads)
      t.join();
    for (StepOutcome& o : outs)
      report(std::move(o), r);
  }

  // Every pin the machine holds at the end belongs to a handle the
  // scenario still holds (a pin or a registration); with validate()'s
  // per-folio check that pins match their records, a pin some path took
  // and never released fails the run here.
  void check_pins_accounted(RunReport& r) {
    const uint64_t held = run_.tables().with([](ScenarioTables& t) {
      uint64_t n = 0;
      for (const auto& [name, pin] : t.pins) {
        n += static_cast<uint64_t>(std::count_if(pin.pages.begin(), pin.pages.end(), [](Page* p) {
          return p != nullptr && !is_zero_page(p);
        }));
      }
      for (const auto& [name, region] : t.regions)
        n += region.pages;
      return n;
    });
    const uint64_t recorded = run_.ms().pin_owners().total_pins();
    r.expectations.push_back(ExpectationOutcome{
        "no pins leaked", SourcePos{run_.scenario().file, 0, 0}, held == recorded,
        fmt::format("{} pins held by the scenario's pins and registrations, {} recorded", held,
                    recorded)});
  }

  // Everything the scenario still holds goes, in the order a kernel would
  // tear it down: devices' pins, pins, mirrors, processes, kernel and CMA
  // allocations. The tables are emptied under their lock and torn down
  // outside it.
  void teardown() {
    ScenarioTables t = run_.tables().with([](ScenarioTables& tables) {
      ScenarioTables out = std::move(tables);
      tables = ScenarioTables{};
      return out;
    });
    t.nics.clear();
    for (auto& [name, pin] : t.pins)
      unpin(pin);
    t.pins.clear();
    t.regions.clear();
    t.gpus.clear();
    t.mirrors.clear();
    for (auto& [name, p] : t.processes) {
      CurrentTask current(*p->task);
      p->mm.reset();
    }
    t.processes.clear();
    t.dmirrors.clear();
    for (auto& [name, p] : t.kernel_allocs)
      kfree_pages(p);
    t.kernel_allocs.clear();
    for (auto& [name, a] : t.cma_allocs)
      (void)run_.cma().cma_release(a.area, a.pages, a.count);
    t.cma_allocs.clear();
    t.files.clear();
    snapshots_ = std::move(t.snapshots);
    lru_add_drain_all(run_.ms());
    // The huge zero folio is a cache: drop it as the shrinker would, now
    // that no process maps it.
    rcu::barrier();
    (void)run_.vm().shrink_huge_zero_folio();
  }

  // After teardown: no pages leaked (if the file asks) and every layer's
  // validate() (Machine::validate).
  void audit(RunReport& r) {
    const SourcePos at{run_.scenario().file, 0, 0};
    const ValidationReport audit = run_.machine().validate();
    if (run_.scenario().expect.no_pages_leaked) {
      const int64_t leaked = run_.machine().used_pages() - used_at_boot_;
      r.expectations.push_back(
          ExpectationOutcome{"no pages leaked", at, leaked == 0,
                             fmt::format("{} pages in use beyond boot after teardown", leaked)});
    }
    r.expectations.push_back(
        ExpectationOutcome{"audit (validate)", at, audit.ok(),
                           audit.ok() ? "every layer's invariants hold" : audit.to_string()});
    r.snapshots = std::move(snapshots_);
  }

  const RunOptions& opts_;
  ScenarioRun run_;
  int64_t used_at_boot_ = 0;
  std::vector<SnapshotRecord> snapshots_;
};

}  // namespace

RunReport run_scenario(const Scenario& scenario, const RunOptions& options) {
  return Runner(scenario, options).run();
}

}  // namespace pinmm
