// A running scenario: the booted machine, the scenario's named things
// (processes, devices, handles) and the data oracle, as the step kinds'
// run() functions see them.
//
// Steps run one after another, except a concurrent group's members, which
// run at once: everything a step looks up or records by name goes through
// tables() (one lock, held only for the lookup). The objects a table holds
// stay where they are until a step removes them or the run ends.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "oracle.h"
#include "pinmm/base/errno.h"
#include "pinmm/base/locks.h"
#include "pinmm/devices/dmirror.h"
#include "pinmm/devices/gpu.h"
#include "pinmm/devices/rdma_nic.h"
#include "pinmm/machine/machine.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/scenario/runner.h"
#include "pinmm/vm/filemap.h"

namespace pinmm {

// The result of carrying out one step (StepOutcome's err, value, detail
// and blockers).
struct StepResult {
  int err = 0;  // 0 or a positive errno
  int64_t value = 0;
  std::string detail;
  std::vector<std::string> blockers;
};
StepResult step_ok(int64_t value, std::string detail);
StepResult step_fail(int err, std::string detail);

// ---- the handles steps define with "as:" ----

struct Pin {
  std::vector<Page*> pages;
  bool write = false;
  PinOwnerTag owner;
};
// Releases the pin's pages as its owner (unpin_user_pages_dirty_lock).
void unpin(const Pin& pin);

struct Region {  // an RDMA memory registration
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

// Every named thing of a run.
struct ScenarioTables {
  std::map<std::string, std::unique_ptr<Process>> processes;
  std::map<std::string, const DeviceSpec*> devices;
  std::map<std::string, std::unique_ptr<RdmaNic>> nics;
  std::map<std::string, std::unique_ptr<DmirrorDevice>> dmirrors;
  // (device, process) → the device's view of the process, made at first use.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Dmirror>> mirrors;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Gpu>> gpus;
  std::map<std::string, Pin> pins;
  std::map<std::string, Region> regions;
  std::map<std::string, CmaAlloc> cma_allocs;
  std::map<std::string, Page*> kernel_allocs;
  std::vector<std::shared_ptr<File>> files;
  std::vector<SnapshotRecord> snapshots;
};

class ScenarioRun {
 public:
  // Boots the scenario's machine; a machine that does not boot is a
  // ScenarioError at the file.
  ScenarioRun(const Scenario& scenario, uint64_t seed);

  const Scenario& scenario() const { return s_; }
  Machine& machine() { return *machine_; }
  MemorySystem& ms() { return machine_->ms(); }
  VmContext& vm() { return machine_->vm(); }
  MemoryHotplug& hotplug() { return machine_->hotplug(); }
  CmaAreas& cma() { return machine_->cma(); }
  Stamps& stamps() { return stamps_; }
  Guarded<ScenarioTables>& tables() { return tables_; }

  // The process a step acts for, or nullptr if it has exited.
  Process* process(const std::string& name);
  // The range a step names; ESRCH if its process has exited, EINVAL if it
  // runs past the mapping.
  Result<Target> target(const RangeRef& r);
  // Removes and returns the handle `key` of the table `table` (nullopt:
  // not defined, or already released).
  template <typename T>
  std::optional<T> take(std::map<std::string, T> ScenarioTables::*table, const std::string& key) {
    return tables_.with([&](ScenarioTables& t) -> std::optional<T> {
      auto it = (t.*table).find(key);
      if (it == (t.*table).end()) return std::nullopt;
      T value = std::move(it->second);
      (t.*table).erase(it);
      return value;
    });
  }
  int next_pid() { return next_pid_++; }

  // The machine's blocker log: its position now, and the who-pins lines
  // of the operations blocked since `since`.
  uint64_t blocker_seq();
  std::vector<std::string> blockers_since(uint64_t since);

  // The blocks a selection names, in id order.
  std::vector<uint64_t> select(const BlockSelect& b) const;

  // Pages hot-added so far (hot_add steps place DIMMs one after another).
  std::atomic<uint64_t> hot_added{0};

 private:
  const Scenario& s_;
  std::unique_ptr<Machine> machine_;
  Stamps stamps_;
  std::atomic<int> next_pid_{100};
  Guarded<ScenarioTables> tables_{LockRank::kScenario};
};

}  // namespace pinmm
