// Memory steps: what a process does to its own memory (write, read, fork,
// exit, munmap, mprotect, madvise) and move_pages(2). The data oracle
// follows each of them (oracle.h).
#include <fmt/format.h>

#include <algorithm>

#include "pinmm/base/task.h"
#include "pinmm/migrate/move_pages.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/mmap.h"
#include "reader.h"
#include "run.h"

namespace pinmm {

namespace {

std::string process_name(const StepReader& in, const char* key) {
  const YAML::Node p = in.need(key);
  std::string name = in.r.str(p, key);
  if (!in.r.processes.contains(name)) in.r.fail(p, fmt::format("no process '{}'", name));
  return name;
}

}  // namespace

// ---- write ----

WriteStep WriteStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size"}, kName);
  return WriteStep{in.range()};
}

StepResult WriteStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  CurrentTask current(*t->proc->task);
  for (uint64_t i = 0; i < t->pages; ++i) {
    const uint64_t v = run.stamps().next(t->first + i);
    if (auto w = write_user<uint64_t>(*t->proc->mm, t->addr() + i * PAGE_SIZE, v); !w.ok())
      return step_fail(w.error().code(), fmt::format("writing page {}", t->first + i));
    (*t->map->expect)[t->first + i] = v;
  }
  return step_ok(static_cast<int64_t>(t->pages), fmt::format("{} pages written", t->pages));
}

// ---- read ----

ReadStep ReadStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size"}, kName);
  return ReadStep{in.range()};
}

// Every page of the range is read, so an unmapped one fails the step with
// EFAULT as a CPU access would.
StepResult ReadStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  return verify(*t, Unmapped::kFault);
}

// ---- fork ----

ForkStep ForkStep::parse(StepReader& in) {
  in.allow({"process", "child"}, kName);
  ForkStep st;
  st.process = process_name(in, "process");
  const YAML::Node c = in.need("child");
  st.child = in.r.name_of(c, "process");
  if (in.r.processes.contains(st.child))
    in.r.fail(c, fmt::format("process '{}' already exists", st.child));
  in.r.processes[st.child] = in.r.processes[st.process];  // the parent's mappings
  return st;
}

StepResult ForkStep::run(ScenarioRun& run, const std::string&) const {
  Process* parent = run.process(process);
  if (parent == nullptr) return step_fail(ESRCH, "the parent has exited");
  Result<MmHandle> child_mm = [&] {
    CurrentTask current(*parent->task);
    return dup_mm(*parent->mm);
  }();
  if (!child_mm.ok()) return step_fail(child_mm.error().code(), "fork failed");
  auto proc = std::make_unique<Process>();
  proc->task = std::make_unique<Task>(run.next_pid(), child);
  proc->mm = std::move(*child_mm);
  proc->task->set_mm(proc->mm.get());
  for (const auto& [name, m] : parent->maps)
    proc->maps.emplace(name, m.fork());
  const int pid = proc->task->pid();
  run.tables().with([&](ScenarioTables& t) { t.processes[child] = std::move(proc); });
  return step_ok(pid, fmt::format("{} forked {} (pid {})", process, child, pid));
}

// ---- exit ----

ExitStep ExitStep::parse(StepReader& in) {
  in.allow({"process"}, kName);
  return ExitStep{process_name(in, "process")};
}

// The process's mirrors go with it, then its mm.
StepResult ExitStep::run(ScenarioRun& run, const std::string&) const {
  std::unique_ptr<Process> p = run.tables().with([&](ScenarioTables& t) {
    std::unique_ptr<Process> gone;
    auto it = t.processes.find(process);
    if (it == t.processes.end()) return gone;
    gone = std::move(it->second);
    t.processes.erase(it);
    std::erase_if(t.mirrors, [&](const auto& kv) { return kv.first.second == process; });
    std::erase_if(t.gpus, [&](const auto& kv) { return kv.first.second == process; });
    return gone;
  });
  if (p == nullptr) return step_fail(ESRCH, "already exited");
  CurrentTask current(*p->task);
  p->mm.reset();
  return step_ok(0, fmt::format("{} exited", process));
}

// ---- munmap ----

MunmapStep MunmapStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size"}, kName);
  return MunmapStep{in.range()};
}

StepResult MunmapStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  CurrentTask current(*t->proc->task);
  if (auto r = vm_munmap(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE); !r.ok())
    return step_fail(r.error().code(), "munmap failed");
  for (uint64_t i = 0; i < t->pages; ++i)
    t->map->mapped[t->first + i] = false;
  return step_ok(static_cast<int64_t>(t->pages), fmt::format("{} pages unmapped", t->pages));
}

// ---- mprotect ----

MprotectStep MprotectStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size", "prot"}, kName);
  MprotectStep st;
  st.range = in.range();
  st.prot = in.r.one_of(in.need("prot"), "prot", {"none", "r", "rw"});
  return st;
}

StepResult MprotectStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  const int bits = prot == "none" ? PROT_NONE : prot == "r" ? PROT_READ : PROT_READ | PROT_WRITE;
  CurrentTask current(*t->proc->task);
  if (auto r = do_mprotect(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE, bits); !r.ok())
    return step_fail(r.error().code(), "mprotect failed");
  return step_ok(0, fmt::format("prot {}", prot));
}

// ---- madvise ----

MadviseStep MadviseStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size", "advice"}, kName);
  MadviseStep st;
  st.range = in.range();
  st.advice = in.r.one_of(in.need("advice"), "advice",
                          {"dontneed", "hugepage", "nohugepage", "populate_write"});
  return st;
}

StepResult MadviseStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  const int behavior = advice == "dontneed"     ? MADV_DONTNEED
                       : advice == "hugepage"   ? MADV_HUGEPAGE
                       : advice == "nohugepage" ? MADV_NOHUGEPAGE
                                                : MADV_POPULATE_WRITE;
  CurrentTask current(*t->proc->task);
  if (auto r = do_madvise(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE, behavior); !r.ok())
    return step_fail(r.error().code(), "madvise failed");
  // Private memory reads as zeros after MADV_DONTNEED; shared memory keeps its data.
  if (behavior == MADV_DONTNEED && !t->map->shared()) {
    for (uint64_t i = 0; i < t->pages; ++i)
      (*t->map->expect)[t->first + i] = 0;
  }
  return step_ok(0, fmt::format("MADV_{}", advice));
}

// ---- move_pages ----

MovePagesStep MovePagesStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size", "node"}, kName);
  MovePagesStep st;
  st.range = in.range();
  st.node = in.node();
  return st;
}

// move_pages(2) with MPOL_MF_MOVE; the value is the pages on the node
// afterwards, and pages that did not move bring the blocker log's lines.
StepResult MovePagesStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  std::vector<VirtAddr> pages;
  for (uint64_t i = 0; i < t->pages; ++i)
    pages.push_back(t->addr() + i * PAGE_SIZE);
  std::vector<int> nodes(pages.size(), node), status(pages.size(), 0);
  const uint64_t seq = run.blocker_seq();
  CurrentTask current(*t->proc->task);
  auto r = move_pages(*t->proc->mm, pages, nodes, status, MPOL_MF_MOVE);
  if (!r.ok()) return step_fail(r.error().code(), "move_pages failed");
  const auto on_node = std::count(status.begin(), status.end(), node);
  StepResult res = step_ok(on_node, fmt::format("{} of {} pages on node {} ({} not migrated)",
                                                on_node, pages.size(), node, *r));
  if (*r > 0) res.blockers = run.blockers_since(seq);
  return res;
}

}  // namespace pinmm
