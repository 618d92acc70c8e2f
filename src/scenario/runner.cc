// The scenario runner: the machine, processes, devices, steps and the data
// oracle of runner.h.
#include "pinmm/scenario/runner.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "pinmm/base/rcu.h"
#include "pinmm/base/task.h"
#include "pinmm/cma/cma.h"
#include "pinmm/devices/dmirror.h"
#include "pinmm/devices/gpu.h"
#include "pinmm/devices/rdma_nic.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/hotplug/memory_hotplug.h"
#include "pinmm/migrate/move_pages.h"
#include "pinmm/phys/blockers.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/memory_system.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/filemap.h"
#include "pinmm/vm/mmap.h"
#include "pinmm/vm/validate.h"
#include "pinmm/vm/vm_context.h"

namespace pinmm {

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// splitmix64: the stamps of the data oracle.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
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

bool compare(int64_t found, CompareOp op, int64_t want) {
  switch (op) {
    case CompareOp::kEq:
      return found == want;
    case CompareOp::kNe:
      return found != want;
    case CompareOp::kLt:
      return found < want;
    case CompareOp::kLe:
      return found <= want;
    case CompareOp::kGt:
      return found > want;
    case CompareOp::kGe:
      return found >= want;
  }
  return false;
}

// One mapping of one process, and what the oracle expects of each page.
struct Mapping {
  MappingKind kind = MappingKind::kAnon;
  VirtAddr addr;
  uint64_t pages = 0;
  // Expected first word per page (0: never written). Shared between the
  // processes of a fork for shared kinds; each process's own otherwise.
  std::shared_ptr<std::vector<uint64_t>> expect;
  std::vector<bool> mapped;  // this process's view (munmap)
  bool shared() const {
    return kind == MappingKind::kSharedAnon || kind == MappingKind::kShmem ||
           kind == MappingKind::kFile;
  }
};

struct Process {
  std::unique_ptr<Task> task;
  MmHandle mm;
  std::map<std::string, Mapping> maps;
};

struct Pin {
  std::vector<Page*> pages;
  bool write = false;
  PinOwnerTag owner;
};

struct Region {
  RdmaNic* nic = nullptr;
  uint32_t key = 0;
  std::string process, mapping;
  uint64_t first_page = 0, pages = 0;
  std::string label;
};

struct CmaAlloc {
  Cma* area = nullptr;
  Page* pages = nullptr;
  uint64_t count = 0;
};

// The result of carrying out one step.
struct Done {
  int err = 0;
  int64_t value = 0;
  std::string detail;
  std::vector<std::string> blockers;
};

Done fail(int err, std::string detail) { return Done{err, 0, std::move(detail), {}}; }

class Runner {
 public:
  Runner(const Scenario& s, const RunOptions& o)
      : s_(s), opts_(o), seed_(o.seed.value_or(s.seed)) {}

  RunReport run() {
    RunReport r;
    r.scenario = s_.name;
    r.description = s_.description;
    r.file = s_.file;
    r.seed = seed_;
    r.machine = s_.machine;
    auto booted = MemorySystem::create(s_.machine);
    if (!booted.ok())
      throw ScenarioError(SourcePos{s_.file, 0, 0},
                          fmt::format("the machine does not boot: {}", booted.error().name()));
    ms_ = std::move(*booted);
    vm_ = std::make_unique<VmContext>(*ms_);
    hp_ = std::make_unique<MemoryHotplug>(*ms_);
    cma_ = std::make_unique<CmaAreas>(*ms_);
    ms_->injector().seed(seed_);  // probability injections follow the run's seed
    used_at_boot_ = used_pages();
    if (opts_.trace) ms_->tracer().enable_all();
    const VmStat start = ms_->vmstat();
    r.start_levels = levels(start);
    const uint64_t t0 = now_ns();
    create_devices();
    for (const ProcessSpec& p : s_.processes)
      create_process(p);
    for (size_t i = 0; i < s_.steps.size(); ++i)
      run_step(s_.steps[i], std::to_string(i + 1), r);
    r.total_ns = now_ns() - t0;
    r.counters = counter_changes(start, ms_->vmstat());
    check_final(start, r);
    if (opts_.trace) r.trace_text = ms_->tracer().to_ftrace_text();
    r.passed = std::all_of(r.steps.begin(), r.steps.end(),
                           [](const StepOutcome& o) { return o.expectation_ok; }) &&
               std::all_of(r.expectations.begin(), r.expectations.end(),
                           [](const ExpectationOutcome& e) { return e.ok; });
    return r;
  }

 private:
  // ---- set-up ----

  void create_devices() {
    for (const DeviceSpec& d : s_.devices) {
      switch (d.type) {
        case DeviceType::kRdmaNic:
          nics_[d.name] = std::make_unique<RdmaNic>(*ms_, d.name);
          break;
        case DeviceType::kDmirror:
          dmirrors_[d.name] = std::make_unique<DmirrorDevice>(
              *ms_, d.coherent ? DmirrorMemory::kCoherent : DmirrorMemory::kPrivate,
              static_cast<int>(dmirrors_.size()));
          break;
        case DeviceType::kGpu:
        case DeviceType::kDirectIo:
          break;  // a GPU binds to a process at its first access
      }
      devices_[d.name] = &d;
    }
  }

  void create_process(const ProcessSpec& p) {
    auto proc = std::make_unique<Process>();
    proc->task = std::make_unique<Task>(next_pid_++, p.name);
    proc->mm = Mm::create(*vm_);
    proc->task->set_mm(proc->mm.get());
    CurrentTask as(*proc->task);
    for (const MappingSpec& m : p.mappings) {
      Mapping map;
      map.kind = m.kind;
      map.pages = m.size / PAGE_SIZE;
      auto addr = map_one(*proc->mm, m);
      if (!addr.ok())
        throw ScenarioError(
            m.pos, fmt::format("cannot map '{}.{}': {}", p.name, m.name, addr.error().name()));
      map.addr = *addr;
      map.expect = std::make_shared<std::vector<uint64_t>>(map.pages, 0);
      map.mapped.assign(map.pages, true);
      proc->maps[m.name] = std::move(map);
    }
    processes_[p.name] = std::move(proc);
  }

  Result<VirtAddr> map_one(Mm& mm, const MappingSpec& m) {
    const int prot = PROT_READ | PROT_WRITE;
    switch (m.kind) {
      case MappingKind::kAnon: {
        // 2 MiB aligned, so THPs are possible.
        const VirtAddr raw = TRY(
            vm_mmap(mm, VirtAddr(0), m.size + HPAGE_PMD_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS));
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
            *vm_, m.kind == MappingKind::kShmem ? FsType::kTmpfs : FsType::kExt4, m.name, m.size);
        files_.push_back(file);
        return vm_mmap(mm, VirtAddr(0), m.size, prot,
                       m.kind == MappingKind::kFilePrivate ? MAP_PRIVATE : MAP_SHARED, file);
      }
    }
    return Errno(EINVAL);
  }

  // ---- steps ----

  void run_step(const Step& st, const std::string& id, RunReport& r) {
    if (st.kind == StepKind::kConcurrent) return run_group(st, id, r);
    StepOutcome o = carry_out(st, id);
    report(std::move(o), r);
  }

  void report(StepOutcome o, RunReport& r) {
    if (opts_.on_step) opts_.on_step(o);
    r.steps.push_back(std::move(o));
  }

  StepOutcome carry_out(const Step& st, const std::string& id) {
    StepOutcome o;
    o.id = id;
    o.kind = st.kind;
    o.title = st.title;
    if (opts_.on_step_start) opts_.on_step_start(id, st.title);
    const VmStat before = ms_->vmstat();
    const uint64_t t0 = now_ns();
    Done d = execute(st, id);
    o.elapsed_ns = now_ns() - t0;
    // Page tables an unmap or exit freed go back through RCU: wait for
    // them, so a step's counters do not depend on when a grace period
    // ended (one seed, one report).
    rcu::barrier();
    const VmStat after = ms_->vmstat();
    o.counters = counter_changes(before, after);
    o.levels = levels(after);
    o.err = d.err;
    o.value = d.value;
    o.detail = std::move(d.detail);
    o.blockers = std::move(d.blockers);
    check_step(st, o);
    return o;
  }

  // Every step is expected to succeed unless its expect: says otherwise.
  static void check_step(const Step& st, StepOutcome& o) {
    const int want = st.expect ? st.expect->err : 0;
    std::string expected = want == 0 ? "ok" : Errno(want).name();
    bool ok = o.err == want;
    if (st.expect && st.expect->value) {
      expected += fmt::format(", value {}", *st.expect->value);
      ok = ok && o.value == *st.expect->value;
    }
    o.expectation_ok = ok;
    if (st.expect || !ok) o.expectation = expected;
  }

  void run_group(const Step& st, const std::string& id, RunReport& r) {
    std::vector<StepOutcome> outs(st.group.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < st.group.size(); ++i) {
      threads.emplace_back(
          [&, i] { outs[i] = carry_out(st.group[i], fmt::format("{}.{}", id, i + 1)); });
    }
    for (std::thread& t : threads)
      t.join();
    for (StepOutcome& o : outs)
      report(std::move(o), r);
  }

  Done execute(const Step& st, const std::string& id) {
    switch (st.kind) {
      case StepKind::kWrite:
        return step_write(st);
      case StepKind::kRead:
        return step_read(st);
      case StepKind::kFork:
        return step_fork(st);
      case StepKind::kExit:
        return step_exit(st);
      case StepKind::kMunmap:
        return step_munmap(st);
      case StepKind::kMprotect:
        return step_mprotect(st);
      case StepKind::kMadvise:
        return step_madvise(st);
      case StepKind::kPin:
        return step_pin(st);
      case StepKind::kUnpin:
        return step_unpin(st);
      case StepKind::kRegister:
        return step_register(st);
      case StepKind::kDeregister:
        return step_deregister(st);
      case StepKind::kDma:
        return step_dma(st);
      case StepKind::kDirectIo:
        return step_direct_io(st);
      case StepKind::kMirror:
        return step_mirror(st);
      case StepKind::kMovePages:
        return step_move_pages(st);
      case StepKind::kOffline:
        return step_offline(st);
      case StepKind::kOnline:
        return step_online(st);
      case StepKind::kHotAdd:
        return step_hot_add(st);
      case StepKind::kCmaAlloc:
        return step_cma_alloc(st);
      case StepKind::kCmaRelease:
        return step_cma_release(st);
      case StepKind::kKernelAlloc:
        return step_kernel_alloc(st);
      case StepKind::kKernelFree:
        return step_kernel_free(st);
      case StepKind::kSnapshot:
        return step_snapshot(st, id);
      case StepKind::kInject:
        return step_inject(st);
      case StepKind::kConcurrent:
        break;
    }
    return fail(EINVAL, "not a step");
  }

  // Removes and returns the handle `key` of `table` (nullopt: not defined
  // or already released).
  template <typename T>
  std::optional<T> take(std::map<std::string, T>& table, const std::string& key) {
    std::lock_guard<std::mutex> g(lock_);
    auto it = table.find(key);
    if (it == table.end()) return std::nullopt;
    T value = std::move(it->second);
    table.erase(it);
    return value;
  }

  // The process a step acts for, or nullptr if it has exited.
  Process* process(const std::string& name) {
    std::lock_guard<std::mutex> g(lock_);
    auto it = processes_.find(name);
    return it == processes_.end() ? nullptr : it->second.get();
  }

  struct Target {
    Process* proc = nullptr;
    Mapping* map = nullptr;
    uint64_t first = 0;  // page index in the mapping
    uint64_t pages = 0;
    VirtAddr addr() const { return map->addr + first * PAGE_SIZE; }
  };
  // The range a step names; ESRCH if its process has exited, EINVAL if it
  // runs past the mapping.
  Result<Target> target(const RangeRef& r) {
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

  uint64_t next_stamp(uint64_t page) {
    const uint64_t v = ++writes_;
    return mix(seed_ ^ mix(v) ^ (page << 20)) | 1;
  }

  Done step_write(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    CurrentTask as(*t->proc->task);
    for (uint64_t i = 0; i < t->pages; ++i) {
      const uint64_t v = next_stamp(t->first + i);
      if (auto w = write_user<uint64_t>(*t->proc->mm, t->addr() + i * PAGE_SIZE, v); !w.ok())
        return fail(w.error().code(), fmt::format("writing page {}", t->first + i));
      (*t->map->expect)[t->first + i] = v;
    }
    return Done{0, static_cast<int64_t>(t->pages), fmt::format("{} pages written", t->pages), {}};
  }

  // Compares what the CPU reads with the oracle; EIO on a mismatch. A
  // `read` step reads every page of its range, so an unmapped page fails
  // it with EFAULT as a CPU access would; the final no_data_lost check
  // looks only at what each process still maps.
  enum class Unmapped : uint8_t { kFault, kSkip };
  Done verify(Target& t, Unmapped unmapped) {
    CurrentTask as(*t.proc->task);
    uint64_t bad = 0, verified = 0;
    std::string first_bad;
    for (uint64_t i = 0; i < t.pages; ++i) {
      const uint64_t page = t.first + i;
      if (!t.map->mapped[page] && unmapped == Unmapped::kSkip) continue;
      auto v = read_user<uint64_t>(*t.proc->mm, t.addr() + i * PAGE_SIZE);
      if (!v.ok()) {
        Done d = fail(v.error().code(),
                      fmt::format("reading page {} ({} pages verified before it)", page, verified));
        d.value = static_cast<int64_t>(verified);
        return d;
      }
      ++verified;
      const uint64_t want = (*t.map->expect)[page];
      if (*v != want && bad++ == 0)
        first_bad = fmt::format("page {}: expected {:#x}, found {:#x}", page, want, *v);
    }
    if (bad != 0) return fail(EIO, fmt::format("{} pages lost their data; {}", bad, first_bad));
    return Done{
        0, static_cast<int64_t>(verified), fmt::format("{} pages read and verified", verified), {}};
  }

  Done step_read(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    return verify(*t, Unmapped::kFault);
  }

  Done step_fork(const Step& st) {
    Process* parent = process(st.process);
    if (parent == nullptr) return fail(ESRCH, "the parent has exited");
    Result<MmHandle> child_mm = [&] {
      CurrentTask as(*parent->task);
      return dup_mm(*parent->mm);
    }();
    if (!child_mm.ok()) return fail(child_mm.error().code(), "fork failed");
    auto child = std::make_unique<Process>();
    child->task = std::make_unique<Task>(next_pid_++, st.child);
    child->mm = std::move(*child_mm);
    child->task->set_mm(child->mm.get());
    for (const auto& [name, m] : parent->maps) {
      Mapping c = m;
      if (!m.shared()) c.expect = std::make_shared<std::vector<uint64_t>>(*m.expect);
      child->maps[name] = std::move(c);
    }
    const int pid = child->task->pid();
    std::lock_guard<std::mutex> g(lock_);
    processes_[st.child] = std::move(child);
    return Done{0, pid, fmt::format("{} forked {} (pid {})", st.process, st.child, pid), {}};
  }

  Done step_exit(const Step& st) {
    std::unique_ptr<Process> p;
    {
      std::lock_guard<std::mutex> g(lock_);
      auto it = processes_.find(st.process);
      if (it == processes_.end()) return fail(ESRCH, "already exited");
      p = std::move(it->second);
      processes_.erase(it);
    }
    // Mirrors of the process go with it.
    for (auto it = mirrors_.begin(); it != mirrors_.end();) {
      it = it->first.second == st.process ? mirrors_.erase(it) : std::next(it);
    }
    for (auto it = gpus_.begin(); it != gpus_.end();) {
      it = it->first.second == st.process ? gpus_.erase(it) : std::next(it);
    }
    CurrentTask as(*p->task);
    p->mm.reset();
    return Done{0, 0, fmt::format("{} exited", st.process), {}};
  }

  Done step_munmap(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    CurrentTask as(*t->proc->task);
    if (auto r = vm_munmap(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE); !r.ok())
      return fail(r.error().code(), "munmap failed");
    for (uint64_t i = 0; i < t->pages; ++i)
      t->map->mapped[t->first + i] = false;
    return Done{0, static_cast<int64_t>(t->pages), fmt::format("{} pages unmapped", t->pages), {}};
  }

  Done step_mprotect(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    const int prot = st.op == "none" ? PROT_NONE
                     : st.op == "r"  ? PROT_READ
                                     : PROT_READ | PROT_WRITE;
    CurrentTask as(*t->proc->task);
    if (auto r = do_mprotect(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE, prot); !r.ok())
      return fail(r.error().code(), "mprotect failed");
    return Done{0, 0, fmt::format("prot {}", st.op), {}};
  }

  Done step_madvise(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    const int advice = st.op == "dontneed"     ? MADV_DONTNEED
                       : st.op == "hugepage"   ? MADV_HUGEPAGE
                       : st.op == "nohugepage" ? MADV_NOHUGEPAGE
                                               : MADV_POPULATE_WRITE;
    CurrentTask as(*t->proc->task);
    if (auto r = do_madvise(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE, advice); !r.ok())
      return fail(r.error().code(), "madvise failed");
    // Private memory reads as zeros after MADV_DONTNEED; shared memory keeps its data.
    if (advice == MADV_DONTNEED && !t->map->shared()) {
      for (uint64_t i = 0; i < t->pages; ++i)
        (*t->map->expect)[t->first + i] = 0;
    }
    return Done{0, 0, fmt::format("MADV_{}", st.op), {}};
  }

  PinOwnerTag owner_for(const Step& st, const Process& p) {
    PinOwnerTag tag;
    if (!st.device.empty()) {
      tag.kind = PinOwnerKind::kDevice;
      tag.device = st.device;
    }
    tag.label = st.label.empty() ? fmt::format("{} pin", p.task->comm()) : st.label;
    return tag;
  }

  // The who-pins lines of the machine's latest blocked operation.
  std::vector<std::string> latest_blockers(uint64_t since) {
    std::vector<std::string> out;
    for (const BlockedOperation& op : ms_->blocker_log().recent()) {
      if (op.seq <= since) continue;
      out.push_back(fmt::format("{}: {} ({}), {} blocking folio(s)", op.operation, op.detail,
                                Errno(op.err < 0 ? -op.err : op.err).name(), op.nr_blockers));
      for (const PageBlocker& b : op.blockers)
        out.push_back("  " + format_blocker(b));
    }
    return out;
  }
  uint64_t blocker_seq() {
    uint64_t seq = 0;
    for (const BlockedOperation& op : ms_->blocker_log().recent())
      seq = std::max(seq, op.seq);
    return seq;
  }

  Done step_pin(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    Pin pin;
    pin.write = st.write;
    pin.owner = owner_for(st, *t->proc);
    pin.pages.assign(t->pages, nullptr);
    Foll flags = st.write ? FOLL_WRITE : FOLL_NONE;
    if (st.longterm) flags = flags | FOLL_LONGTERM;
    const uint64_t seq = blocker_seq();
    long got = 0;
    {
      CurrentTask as(*t->proc->task);
      PinOwnerScope scope(pin.owner.kind, pin.owner.device, pin.owner.label);
      if (st.fast) {
        got = pin_user_pages_fast(t->addr().value(), t->pages, flags, pin.pages.data());
      } else {
        ReadGuard g(t->proc->mm->mmap_lock);
        got = pin_user_pages_remote(*t->proc->mm, t->addr().value(), t->pages, flags,
                                    pin.pages.data(), nullptr);
      }
    }
    if (got < 0) {
      Done d = fail(static_cast<int>(-got), "pin_user_pages failed");
      d.blockers = latest_blockers(seq);
      return d;
    }
    pin.pages.resize(static_cast<size_t>(got));
    uint64_t movable = 0;
    for (Page* p : pin.pages)
      movable += page_zone(p)->type() == ZONE_MOVABLE;
    std::lock_guard<std::mutex> g(lock_);
    pins_[st.handle] = std::move(pin);
    return Done{0,
                got,
                fmt::format("{} pages pinned{} ({} in ZONE_MOVABLE)", got,
                            st.longterm ? " long-term" : "", movable),
                {}};
  }

  Done step_unpin(const Step& st) {
    std::optional<Pin> taken = take(pins_, st.ref);
    if (!taken) return fail(ENOENT, "not pinned (already unpinned)");
    const Pin& pin = *taken;
    release(pin);
    return Done{0,
                static_cast<int64_t>(pin.pages.size()),
                fmt::format("{} pages unpinned", pin.pages.size()),
                {}};
  }

  static void release(const Pin& pin) {
    PinOwnerScope scope(pin.owner.kind, pin.owner.device, pin.owner.label);
    unpin_user_pages_dirty_lock(pin.pages, pin.write);
  }

  Done step_register(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    RdmaNic& nic = *nics_.at(st.device);
    const uint64_t seq = blocker_seq();
    Result<uint32_t> key = [&] {
      CurrentTask as(*t->proc->task);
      return nic.reg_mr(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE, st.label);
    }();
    if (!key.ok()) {
      Done d = fail(key.error().code(), "ib_umem_get failed");
      d.blockers = latest_blockers(seq);
      return d;
    }
    std::lock_guard<std::mutex> g(lock_);
    regions_[st.handle] =
        Region{&nic, *key, st.range.process, st.range.mapping, t->first, t->pages, st.label};
    return Done{0,
                static_cast<int64_t>(t->pages),
                fmt::format("{} registered {} pages as '{}' (long-term pinned)", st.device,
                            t->pages, st.label),
                {}};
  }

  Done step_deregister(const Step& st) {
    std::optional<Region> taken = take(regions_, st.ref);
    if (!taken) return fail(ENOENT, "not registered");
    const Region& reg = *taken;
    if (auto r = reg.nic->dereg_mr(reg.key); !r.ok()) return fail(r.error().code(), "dereg failed");
    return Done{
        0, static_cast<int64_t>(reg.pages), fmt::format("'{}' deregistered", reg.label), {}};
  }

  // The NIC DMA-writes a stamp into every page of the region per round and
  // reads it back through the pins; the CPU-side oracle learns the stamps.
  Done step_dma(const Step& st) {
    Region reg;
    {
      std::lock_guard<std::mutex> g(lock_);
      auto it = regions_.find(st.ref);
      if (it == regions_.end()) return fail(ENOENT, "not registered");
      reg = it->second;
    }
    Process* p = process(reg.process);
    Mapping* map = p != nullptr ? &p->maps.at(reg.mapping) : nullptr;
    uint64_t bad = 0;
    for (unsigned round = 0; round < st.rounds; ++round) {
      for (uint64_t i = 0; i < reg.pages; ++i) {
        const uint64_t v = next_stamp(reg.first_page + i);
        uint64_t back = 0;
        if (auto w = reg.nic->dma_write(reg.key, i * PAGE_SIZE, std::as_bytes(std::span(&v, 1)));
            !w.ok())
          return fail(w.error().code(), "DMA write failed");
        (void)reg.nic->dma_read(reg.key, i * PAGE_SIZE,
                                std::as_writable_bytes(std::span(&back, 1)));
        bad += back != v;
        if (map != nullptr) (*map->expect)[reg.first_page + i] = v;
      }
    }
    if (bad != 0) return fail(EIO, fmt::format("{} DMA reads did not see the write", bad));
    return Done{0,
                static_cast<int64_t>(reg.pages * st.rounds),
                fmt::format("{} rounds of DMA over {} pages", st.rounds, reg.pages),
                {}};
  }

  Done step_direct_io(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    CurrentTask as(*t->proc->task);
    const bool to_memory = st.op == "read";
    std::vector<std::byte> buf(t->pages * PAGE_SIZE);
    if (to_memory) {
      for (uint64_t i = 0; i < t->pages; ++i) {
        const uint64_t v = next_stamp(t->first + i);
        std::memcpy(buf.data() + i * PAGE_SIZE, &v, sizeof v);
      }
    }
    auto r = direct_io(*ms_, t->addr(), buf, to_memory, fmt::format("{} O_DIRECT", st.device));
    if (!r.ok()) return fail(r.error().code(), "direct I/O failed");
    for (uint64_t i = 0; i < t->pages; ++i) {
      uint64_t v = 0;
      std::memcpy(&v, buf.data() + i * PAGE_SIZE, sizeof v);
      if (to_memory) {
        // The whole page was transferred: its first word is the stamp.
        (*t->map->expect)[t->first + i] = v;
      } else if (v != (*t->map->expect)[t->first + i]) {
        return fail(EIO, fmt::format("page {} reached the disk with the wrong data", t->first + i));
      }
    }
    return Done{0,
                static_cast<int64_t>(*r / PAGE_SIZE),
                fmt::format("{} {} bytes", to_memory ? "read" : "wrote", *r),
                {}};
  }

  Done step_mirror(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    const DeviceSpec& dev = *devices_.at(st.device);
    std::vector<std::byte> buf(t->pages * PAGE_SIZE);
    const bool writing = st.op == "write";
    if (writing) {
      for (uint64_t i = 0; i < t->pages; ++i) {
        const uint64_t v = next_stamp(t->first + i);
        std::memcpy(buf.data() + i * PAGE_SIZE, &v, sizeof v);
      }
    }
    CurrentTask as(*t->proc->task);
    int rc = 0;
    int64_t value = 0;
    if (dev.type == DeviceType::kGpu) {
      Gpu& gpu = gpu_for(dev, st.range.process, *t->proc);
      rc = writing ? gpu.write(t->addr(), buf) : gpu.read(t->addr(), buf);
      value = static_cast<int64_t>(gpu.resident_pages());
    } else {
      Dmirror& fd = mirror_for(st.device, st.range.process, *t->proc);
      static const std::map<std::string, unsigned> kOps = {
          {"read", HMM_DMIRROR_READ},
          {"write", HMM_DMIRROR_WRITE},
          {"migrate_to_device", HMM_DMIRROR_MIGRATE_TO_DEV},
          {"migrate_to_system", HMM_DMIRROR_MIGRATE_TO_SYS},
          {"snapshot", HMM_DMIRROR_SNAPSHOT}};
      HmmDmirrorCmd cmd;
      cmd.addr = t->addr().value();
      cmd.ptr = buf.data();
      cmd.npages = t->pages;
      rc = fd.ioctl(kOps.at(st.op), &cmd);
      value = static_cast<int64_t>(cmd.cpages);
    }
    if (rc != 0) return fail(-rc, fmt::format("{} {} failed", st.device, st.op));
    if (writing || st.op == "read" || st.op == "migrate_to_device") {
      for (uint64_t i = 0; i < t->pages; ++i) {
        uint64_t v = 0;
        std::memcpy(&v, buf.data() + i * PAGE_SIZE, sizeof v);
        uint64_t& want = (*t->map->expect)[t->first + i];
        if (writing) {
          want = v;
        } else if (v != want) {
          return fail(EIO, fmt::format("the device read page {}: expected {:#x}, found {:#x}",
                                       t->first + i, want, v));
        }
      }
    }
    return Done{0, value, fmt::format("{} {}: {} pages", st.device, st.op, t->pages), {}};
  }

  Dmirror& mirror_for(const std::string& device, const std::string& proc, Process& p) {
    auto key = std::make_pair(device, proc);
    std::lock_guard<std::mutex> g(lock_);
    auto it = mirrors_.find(key);
    if (it == mirrors_.end())
      it = mirrors_.emplace(key, std::make_unique<Dmirror>(*dmirrors_.at(device), *p.mm)).first;
    return *it->second;
  }
  Gpu& gpu_for(const DeviceSpec& dev, const std::string& proc, Process& p) {
    auto key = std::make_pair(dev.name, proc);
    std::lock_guard<std::mutex> g(lock_);
    auto it = gpus_.find(key);
    if (it == gpus_.end()) {
      GpuOptions opt;
      opt.hot_threshold = dev.hot_threshold;
      it = gpus_.emplace(key, std::make_unique<Gpu>(*ms_, *p.mm, dev.name, opt)).first;
    }
    return *it->second;
  }

  Done step_move_pages(const Step& st) {
    auto t = target(st.range);
    if (!t.ok()) return fail(t.error().code(), "no such range");
    std::vector<VirtAddr> pages;
    for (uint64_t i = 0; i < t->pages; ++i)
      pages.push_back(t->addr() + i * PAGE_SIZE);
    std::vector<int> nodes(pages.size(), st.node), status(pages.size(), 0);
    const uint64_t seq = blocker_seq();
    CurrentTask as(*t->proc->task);
    auto r = move_pages(*t->proc->mm, pages, nodes, status, MPOL_MF_MOVE);
    if (!r.ok()) return fail(r.error().code(), "move_pages failed");
    const auto on_node = std::count(status.begin(), status.end(), st.node);
    Done d{0,
           on_node,
           fmt::format("{} of {} pages on node {} ({} not migrated)", on_node, pages.size(),
                       st.node, *r),
           {}};
    if (*r > 0) d.blockers = latest_blockers(seq);
    return d;
  }

  // The blocks a selection names, in id order.
  std::vector<uint64_t> select(const BlockSelect& b) const {
    if (!b.ids.empty()) return b.ids;
    std::vector<uint64_t> out;
    for (const MemoryBlock& m : ms_->memory_blocks()) {
      if (!m.present) continue;
      const bool online = m.state == MemoryBlockState::kOnline;
      if (b.zone == "offline" ? !online
                              : online && (m.zone == ZONE_MOVABLE) == (b.zone == "movable"))
        out.push_back(m.id);
    }
    if (b.last && *b.last < out.size())
      out.erase(out.begin(), out.end() - static_cast<long>(*b.last));
    return out;
  }

  // Explicit ids must exist; a zone's blocks may be none (nothing to do).
  static Done no_blocks(const BlockSelect& b) {
    if (!b.ids.empty()) return fail(ENOENT, "no such memory block");
    return Done{0, 0, fmt::format("no {} blocks", b.zone), {}};
  }

  Done step_offline(const Step& st) {
    const std::vector<uint64_t> ids = select(st.blocks);
    if (ids.empty()) return no_blocks(st.blocks);
    int64_t done = 0;
    uint64_t migrated = 0;
    for (uint64_t id : ids) {
      OfflineOptions opt;
      if (st.timeout_ms > 0)
        opt.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(st.timeout_ms);
      if (st.retries > 0) {
        opt.retry = OfflineRetryPolicy::kBounded;
        opt.max_attempts = st.retries;
      }
      OfflineResult res;
      const uint64_t seq = blocker_seq();
      const int rc = hp_->state_store(id, "offline", opt, &res);
      migrated += res.pages_migrated;
      if (rc != 0) {
        Done d =
            fail(-rc, fmt::format("memory{}: {} after {} migration attempts ({} blocks offlined "
                                  "before it)",
                                  id, res.reason, res.migrate_attempts, done));
        d.value = done;
        d.blockers = latest_blockers(seq);
        return d;
      }
      ++done;
    }
    return Done{0, done, fmt::format("{} blocks offline, {} pages migrated", done, migrated), {}};
  }

  Done step_online(const Step& st) {
    const std::vector<uint64_t> ids = select(st.blocks);
    if (ids.empty()) return no_blocks(st.blocks);
    int64_t done = 0;
    for (uint64_t id : ids) {
      if (const int rc = hp_->state_store(id, st.op); rc != 0)
        return Done{-rc, done, fmt::format("memory{}: {}", id, Errno(-rc).name()), {}};
      ++done;
    }
    return Done{0, done, fmt::format("{} blocks {}", done, st.op), {}};
  }

  Done step_hot_add(const Step& st) {
    const PageCount nr(st.count / PAGE_SIZE);
    const Pfn start = ms_->boot_end_pfn() + PageCount(hot_added_);
    auto group = hp_->add_memory(st.node, start, nr, /*as_group=*/true);
    if (!group.ok()) return fail(group.error().code(), "add_memory failed");
    hot_added_ += nr.value();
    return Done{0,
                static_cast<int64_t>(nr.value()),
                fmt::format("{} added at pfn {:#x} (group {})", Bytes(st.count).to_string(),
                            start.value(), *group),
                {}};
  }

  Done step_cma_alloc(const Step& st) {
    Cma* area = cma_->find(st.area);
    const uint64_t count = st.count != 0 ? st.count : area->count();
    CmaAllocResult res;
    Page* pages = cma_->cma_alloc(area, count, 0, true, &res);
    if (pages == nullptr) {
      Done d = fail(ENOMEM, fmt::format("cma_alloc('{}', {} pages) failed after {} slots ({})",
                                        st.area, count, res.slots_tried,
                                        Errno(res.err < 0 ? -res.err : ENOMEM).name()));
      for (const PageBlocker& b : res.blocked.blockers)
        d.blockers.push_back(format_blocker(b));
      return d;
    }
    std::lock_guard<std::mutex> g(lock_);
    cma_allocs_[st.handle] = CmaAlloc{area, pages, count};
    return Done{
        0,
        static_cast<int64_t>(count),
        fmt::format("{} pages of '{}' at pfn {:#x}", count, st.area, page_to_pfn(pages).value()),
        {}};
  }

  Done step_cma_release(const Step& st) {
    std::optional<CmaAlloc> taken = take(cma_allocs_, st.ref);
    if (!taken) return fail(ENOENT, "not allocated");
    const CmaAlloc& a = *taken;
    if (!cma_->cma_release(a.area, a.pages, a.count)) return fail(EINVAL, "cma_release refused");
    return Done{0, static_cast<int64_t>(a.count), fmt::format("{} pages released", a.count), {}};
  }

  Done step_kernel_alloc(const Step& st) {
    const unsigned order = static_cast<unsigned>(std::countr_zero(st.count / PAGE_SIZE));
    Page* p = kmalloc_pages(*ms_, Order(order), st.label, GFP_KERNEL, st.node);
    if (p == nullptr) return fail(ENOMEM, "kmalloc_pages failed");
    std::lock_guard<std::mutex> g(lock_);
    kernel_allocs_[st.handle] = p;
    return Done{0,
                int64_t{1} << order,
                fmt::format("{} unmovable pages at pfn {:#x} ('{}')", 1u << order,
                            page_to_pfn(p).value(), st.label),
                {}};
  }

  Done step_kernel_free(const Step& st) {
    const std::optional<Page*> p = take(kernel_allocs_, st.ref);
    if (!p) return fail(ENOENT, "not allocated");
    kfree_pages(*p);
    return Done{0, 0, "freed", {}};
  }

  // Who pins the pages of each pageblock of `map`.
  std::vector<std::string> pinners(const PhysMemoryMap& map) const {
    std::vector<std::string> out(map.blocks.size());
    for (size_t i = 0; i < map.blocks.size(); ++i) {
      if (map.blocks[i].pinned == 0) continue;
      std::set<std::string> who;
      const Pfn start = map.blocks[i].start;
      for (uint64_t off = 0; off < pageblock_nr_pages;) {
        const Page* page = ms_->pfn_to_page(start + PageCount(off));
        const Folio* folio = page_folio(page);
        uint64_t step = 1;
        if (&folio->page == page && folio_ref_count(folio) > 0) {
          step = folio_nr_pages(folio);
          for (const PinOwner& o : ms_->pin_owners().owners_of(folio)) {
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

  Done step_snapshot(const Step& st, const std::string& id) {
    SnapshotRecord rec{st.label, id, snapshot_memory_map(*ms_), {}};
    rec.pinners = pinners(rec.map);
    const std::string text = fmt::format(
        "'{}': {} long-term pinned, {} pinned, {} unmovable, {} movable, {} free, {} offline "
        "pageblocks",
        st.label, rec.map.count(PageblockState::kLongtermPinned),
        rec.map.count(PageblockState::kPinned), rec.map.count(PageblockState::kUnmovable),
        rec.map.count(PageblockState::kMovable), rec.map.count(PageblockState::kFree),
        rec.map.count(PageblockState::kOffline));
    std::lock_guard<std::mutex> g(lock_);
    snapshots_.push_back(std::move(rec));
    return Done{0, 0, text, {}};
  }

  // Arms or clears one injection point. Clearing reports, as its value,
  // the failures a failure point injected or the hits a window point had
  // while armed, so a scenario can assert on them.
  Done step_inject(const Step& st) {
    const InjectSpec& in = st.inject;
    Injector& inj = ms_->injector();
    switch (in.mode) {
      case InjectSpec::Mode::kEvery:
        inj.fail_every(in.point, in.n);
        return Done{0, 0, fmt::format("{}: every {} hit(s) fail", in.point, in.n), {}};
      case InjectSpec::Mode::kNth:
        inj.fail_nth(in.point, in.n);
        return Done{0, 0, fmt::format("{}: hit {} from now fails", in.point, in.n), {}};
      case InjectSpec::Mode::kProbability:
        inj.fail_random(in.point, in.probability);
        return Done{
            0, 0, fmt::format("{}: each hit fails with p={}", in.point, in.probability), {}};
      case InjectSpec::Mode::kDelay:
        inj.delay(in.point, std::chrono::microseconds(in.n));
        return Done{0, 0, fmt::format("{}: each hit waits {} us", in.point, in.n), {}};
      case InjectSpec::Mode::kClear: {
        const uint64_t hits = inj.hits(in.point), failures = inj.failures(in.point);
        inj.clear(in.point);
        const bool window = find_inject_point(in.point)->kind == InjectKind::kWindow;
        return Done{0,
                    static_cast<int64_t>(window ? hits : failures),
                    fmt::format("{}: cleared after {} hits, {} injected failures", in.point, hits,
                                failures),
                    {}};
      }
    }
    return fail(EINVAL, "not an injection mode");
  }

  // ---- the end ----

  // Pages in use by anything (managed minus free), less hot-add memmaps.
  int64_t used_pages() const {
    int64_t managed = 0;
    for (int nid = 0; nid < ms_->nr_nodes(); ++nid) {
      for (ZoneType t : {ZONE_NORMAL, ZONE_MOVABLE})
        managed += static_cast<int64_t>(ms_->zone(nid, t).managed_pages());
    }
    const VmStat v = ms_->vmstat();
    return managed - v[NR_FREE_PAGES] - v[NR_MEMMAP_PAGES];
  }

  // Everything the scenario still holds goes, in the order a kernel would
  // tear it down: devices' pins, pins, mirrors, processes, kernel and CMA
  // allocations.
  void teardown() {
    for (auto& [name, nic] : nics_)
      nic.reset();
    for (auto& [name, pin] : pins_)
      release(pin);
    pins_.clear();
    regions_.clear();
    gpus_.clear();
    mirrors_.clear();
    for (auto& [name, p] : processes_) {
      CurrentTask as(*p->task);
      p->mm.reset();
    }
    processes_.clear();
    dmirrors_.clear();
    for (auto& [name, p] : kernel_allocs_)
      kfree_pages(p);
    kernel_allocs_.clear();
    for (auto& [name, a] : cma_allocs_)
      (void)cma_->cma_release(a.area, a.pages, a.count);
    cma_allocs_.clear();
    files_.clear();
    lru_add_drain_all(*ms_);
    // The huge zero folio is a cache: drop it as the shrinker would, now
    // that no process maps it.
    rcu::barrier();
    (void)vm_->shrink_huge_zero_folio();
  }

  // Every pin the machine holds at the end belongs to a handle the
  // scenario still holds (a pin or a registration); with validate()'s
  // per-folio check that pins match their records, a pin some path took
  // and never released fails the run here.
  void check_pins_accounted(RunReport& r) {
    uint64_t held = 0;
    for (const auto& [name, pin] : pins_) {
      held += static_cast<uint64_t>(std::count_if(pin.pages.begin(), pin.pages.end(), [](Page* p) {
        return p != nullptr && !is_zero_page(p);
      }));
    }
    for (const auto& [name, region] : regions_)
      held += region.pages;
    const uint64_t recorded = ms_->pin_owners().total_pins();
    r.expectations.push_back(ExpectationOutcome{
        "no pins leaked", SourcePos{s_.file, 0, 0}, held == recorded,
        fmt::format("{} pins held by the scenario's pins and registrations, {} recorded", held,
                    recorded)});
  }

  void check_final(const VmStat& start, RunReport& r) {
    auto add = [&r](std::string what, SourcePos pos, bool ok, std::string detail) {
      r.expectations.push_back(
          ExpectationOutcome{std::move(what), std::move(pos), ok, std::move(detail)});
    };
    const Expectations& e = s_.expect;
    const VmStat now = ms_->vmstat();
    for (const CounterExpect& c : e.counters) {
      const bool delta = c.counter.starts_with("delta:");
      const std::string name = delta ? c.counter.substr(6) : c.counter;
      const int64_t found =
          *now.by_name(name, HPAGE_PMD_NR) - (delta ? *start.by_name(name, HPAGE_PMD_NR) : 0);
      add(fmt::format("{} {} {}", c.counter, compare_op_name(c.op), c.value), c.pos,
          compare(found, c.op, c.value), fmt::format("{}", found));
    }
    for (const ZoneExpect& z : e.zones) {
      const Zone& zone = ms_->zone(z.node, z.movable ? ZONE_MOVABLE : ZONE_NORMAL);
      for (const ZoneExpect::Check& c : z.checks) {
        const int64_t found = c.field == "free"      ? zone.stats().get(NR_FREE_PAGES)
                              : c.field == "managed" ? static_cast<int64_t>(zone.managed_pages())
                                                     : static_cast<int64_t>(zone.present_pages());
        add(fmt::format("node {} {} {} {} {}", z.node, z.movable ? "Movable" : "Normal", c.field,
                        compare_op_name(c.op), c.value),
            z.pos, compare(found, c.op, c.value), fmt::format("{}", found));
      }
    }
    for (const BlockStateExpect& b : e.blocks) {
      std::string wrong;
      const std::vector<uint64_t> ids = select(b.blocks);
      for (uint64_t id : ids) {
        const std::string state = hp_->state_show(id);
        if (state != b.state)
          wrong += fmt::format("{}memory{} is {}", wrong.empty() ? "" : ", ", id, state);
      }
      add(fmt::format("blocks {} {}", b.blocks.zone.empty() ? "(listed)" : b.blocks.zone, b.state),
          b.pos, wrong.empty() && !ids.empty(),
          ids.empty()     ? "no such blocks"
          : wrong.empty() ? fmt::format("{} blocks", ids.size())
                          : wrong);
    }
    if (e.no_data_lost) {
      std::string lost;
      std::vector<std::string> names;
      for (const auto& [name, p] : processes_)
        names.push_back(name);
      for (const std::string& name : names) {
        Process* p = process(name);
        for (auto& [mname, m] : p->maps) {
          Target t{p, &m, 0, m.pages};
          Done d = verify(t, Unmapped::kSkip);
          if (d.err != 0 && lost.empty()) lost = fmt::format("{}.{}: {}", name, mname, d.detail);
        }
      }
      add("no data lost", SourcePos{s_.file, 0, 0}, lost.empty(),
          lost.empty() ? "every mapped page holds what was last written" : lost);
    }
    check_pins_accounted(r);
    teardown();
    // validate_vm first: it waits for the RCU-deferred page-table frees.
    const ValidationReport vm = validate_vm(*vm_);
    const ValidationReport phys = ms_->validate();
    if (e.no_pages_leaked) {
      const int64_t leaked = used_pages() - used_at_boot_;
      add("no pages leaked", SourcePos{s_.file, 0, 0}, leaked == 0,
          fmt::format("{} pages in use beyond boot after teardown", leaked));
    }
    add("audit (validate)", SourcePos{s_.file, 0, 0}, vm.ok() && phys.ok(),
        vm.ok() && phys.ok() ? "every layer's invariants hold" : vm.to_string() + phys.to_string());
    r.snapshots = std::move(snapshots_);
  }

  const Scenario& s_;
  const RunOptions& opts_;
  const uint64_t seed_;
  std::unique_ptr<MemorySystem> ms_;
  std::unique_ptr<VmContext> vm_;
  std::unique_ptr<MemoryHotplug> hp_;
  std::unique_ptr<CmaAreas> cma_;
  int64_t used_at_boot_ = 0;
  uint64_t hot_added_ = 0;
  int next_pid_ = 100;
  std::atomic<uint64_t> writes_{0};

  std::mutex lock_;  // the tables below, when a concurrent group runs
  std::map<std::string, std::unique_ptr<Process>> processes_;
  std::map<std::string, const DeviceSpec*> devices_;
  std::map<std::string, std::unique_ptr<RdmaNic>> nics_;
  std::map<std::string, std::unique_ptr<DmirrorDevice>> dmirrors_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Dmirror>> mirrors_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Gpu>> gpus_;
  std::map<std::string, Pin> pins_;
  std::map<std::string, Region> regions_;
  std::map<std::string, CmaAlloc> cma_allocs_;
  std::map<std::string, Page*> kernel_allocs_;
  std::vector<std::shared_ptr<File>> files_;
  std::vector<SnapshotRecord> snapshots_;
};

}  // namespace

RunReport run_scenario(const Scenario& scenario, const RunOptions& options) {
  return Runner(scenario, options).run();
}

}  // namespace pinmm
