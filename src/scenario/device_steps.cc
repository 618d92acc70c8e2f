// Pin and device steps: pins through GUP, RDMA registrations and their
// DMA, O_DIRECT transfers and HMM mirrors (dmirror, gpu). Device writes
// store stamps the data oracle learns; device reads are checked against it.
#include <fmt/format.h>

#include <cstring>

#include "pinmm/base/task.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "reader.h"
#include "run.h"

namespace pinmm {

namespace {

// The first word of each page of a transfer buffer.
uint64_t first_word(const std::vector<std::byte>& buf, uint64_t page) {
  uint64_t v = 0;
  std::memcpy(&v, buf.data() + page * PAGE_SIZE, sizeof v);
  return v;
}

// A buffer of `pages` pages, each starting with a fresh stamp.
std::vector<std::byte> stamped_buffer(ScenarioRun& run, const Target& t) {
  std::vector<std::byte> buf(t.pages * PAGE_SIZE);
  for (uint64_t i = 0; i < t.pages; ++i) {
    const uint64_t v = run.stamps().next(t.first + i);
    std::memcpy(buf.data() + i * PAGE_SIZE, &v, sizeof v);
  }
  return buf;
}

}  // namespace

void unpin(const Pin& pin) {
  PinOwnerScope scope(pin.owner.kind, pin.owner.device, pin.owner.label);
  unpin_user_pages_dirty_lock(pin.pages, pin.write);
}

// ---- pin ----

PinStep PinStep::parse(StepReader& in) {
  in.allow({"mapping", "offset", "size", "as", "label", "longterm", "fast", "write", "device"},
           kName);
  PinStep st;
  st.range = in.range();
  st.as = in.define("pin");
  if (in["label"]) st.label = in.r.str(in["label"], "label");
  if (in["longterm"]) st.longterm = in.r.boolean(in["longterm"], "longterm");
  if (in["fast"]) st.fast = in.r.boolean(in["fast"], "fast");
  if (in["write"]) st.write = in.r.boolean(in["write"], "write");
  if (in["device"]) {
    st.device = in.r.str(in["device"], "device");
    if (!in.r.devices.contains(st.device))
      in.r.fail(in["device"], fmt::format("no device '{}'", st.device));
  }
  return st;
}

// pin_user_pages_remote (or _fast), owned by the process or the device.
StepResult PinStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  Pin pin;
  pin.write = write;
  if (!device.empty()) {
    pin.owner.kind = PinOwnerKind::kDevice;
    pin.owner.device = device;
  }
  pin.owner.label = label.empty() ? fmt::format("{} pin", t->proc->task->comm()) : label;
  pin.pages.assign(t->pages, nullptr);
  Foll flags = write ? FOLL_WRITE : FOLL_NONE;
  if (longterm) flags = flags | FOLL_LONGTERM;
  const uint64_t seq = run.blocker_seq();
  long got = 0;
  {
    CurrentTask current(*t->proc->task);
    PinOwnerScope scope(pin.owner.kind, pin.owner.device, pin.owner.label);
    if (fast) {
      got = pin_user_pages_fast(t->addr().value(), t->pages, flags, pin.pages.data());
    } else {
      ReadGuard g(t->proc->mm->mmap_lock);
      got = pin_user_pages_remote(*t->proc->mm, t->addr().value(), t->pages, flags,
                                  pin.pages.data(), nullptr);
    }
  }
  if (got < 0) {
    StepResult r = step_fail(static_cast<int>(-got), "pin_user_pages failed");
    r.blockers = run.blockers_since(seq);
    return r;
  }
  pin.pages.resize(static_cast<size_t>(got));
  uint64_t movable = 0;
  for (Page* p : pin.pages)
    movable += page_zone(p)->type() == ZONE_MOVABLE;
  run.tables().with([&](ScenarioTables& tables) { tables.pins[as] = std::move(pin); });
  return step_ok(got, fmt::format("{} pages pinned{} ({} in ZONE_MOVABLE)", got,
                                  longterm ? " long-term" : "", movable));
}

// ---- unpin ----

UnpinStep UnpinStep::parse(StepReader& in) {
  in.allow({"pin"}, kName);
  return UnpinStep{in.use("pin", "pin")};
}

StepResult UnpinStep::run(ScenarioRun& run, const std::string&) const {
  const std::optional<Pin> taken = run.take(&ScenarioTables::pins, pin);
  if (!taken) return step_fail(ENOENT, "not pinned (already unpinned)");
  unpin(*taken);
  return step_ok(static_cast<int64_t>(taken->pages.size()),
                 fmt::format("{} pages unpinned", taken->pages.size()));
}

// ---- register ----

RegisterStep RegisterStep::parse(StepReader& in) {
  in.allow({"device", "mapping", "offset", "size", "as", "label"}, kName);
  RegisterStep st;
  st.device = in.device({DeviceType::kRdmaNic});
  st.range = in.range();
  st.as = in.define("region");
  st.label = in["label"] ? in.r.str(in["label"], "label") : st.as;
  return st;
}

// ib_umem_get: FOLL_LONGTERM | FOLL_WRITE pins the NIC holds.
StepResult RegisterStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  RdmaNic& nic =
      *run.tables().with([&](ScenarioTables& tables) { return tables.nics.at(device).get(); });
  const uint64_t seq = run.blocker_seq();
  Result<uint32_t> key = [&] {
    CurrentTask current(*t->proc->task);
    return nic.reg_mr(*t->proc->mm, t->addr(), t->pages * PAGE_SIZE, label);
  }();
  if (!key.ok()) {
    StepResult r = step_fail(key.error().code(), "ib_umem_get failed");
    r.blockers = run.blockers_since(seq);
    return r;
  }
  run.tables().with([&](ScenarioTables& tables) {
    tables.regions[as] =
        Region{&nic, *key, range.process, range.mapping, t->first, t->pages, label};
  });
  return step_ok(
      static_cast<int64_t>(t->pages),
      fmt::format("{} registered {} pages as '{}' (long-term pinned)", device, t->pages, label));
}

// ---- deregister ----

DeregisterStep DeregisterStep::parse(StepReader& in) {
  in.allow({"region"}, kName);
  return DeregisterStep{in.use("region", "region")};
}

StepResult DeregisterStep::run(ScenarioRun& run, const std::string&) const {
  const std::optional<Region> reg = run.take(&ScenarioTables::regions, region);
  if (!reg) return step_fail(ENOENT, "not registered");
  if (auto r = reg->nic->dereg_mr(reg->key); !r.ok())
    return step_fail(r.error().code(), "dereg failed");
  return step_ok(static_cast<int64_t>(reg->pages), fmt::format("'{}' deregistered", reg->label));
}

// ---- dma ----

DmaStep DmaStep::parse(StepReader& in) {
  in.allow({"region", "rounds"}, kName);
  DmaStep st;
  st.region = in.use("region", "region");
  if (in["rounds"])
    st.rounds = static_cast<unsigned>(in.r.small_int(in["rounds"], "rounds", 1, 1000000));
  return st;
}

// The NIC DMA-writes a stamp into every page of the region per round and
// reads it back through the pins; the oracle learns the stamps.
StepResult DmaStep::run(ScenarioRun& run, const std::string&) const {
  const std::optional<Region> reg = run.tables().with([&](ScenarioTables& t) {
    auto it = t.regions.find(region);
    return it == t.regions.end() ? std::nullopt : std::optional<Region>(it->second);
  });
  if (!reg) return step_fail(ENOENT, "not registered");
  Process* p = run.process(reg->process);
  Mapping* map = p != nullptr ? &p->maps.at(reg->mapping) : nullptr;
  uint64_t bad = 0;
  for (unsigned round = 0; round < rounds; ++round) {
    for (uint64_t i = 0; i < reg->pages; ++i) {
      const uint64_t v = run.stamps().next(reg->first_page + i);
      uint64_t back = 0;
      if (auto w = reg->nic->dma_write(reg->key, i * PAGE_SIZE, std::as_bytes(std::span(&v, 1)));
          !w.ok())
        return step_fail(w.error().code(), "DMA write failed");
      (void)reg->nic->dma_read(reg->key, i * PAGE_SIZE,
                               std::as_writable_bytes(std::span(&back, 1)));
      bad += back != v;
      if (map != nullptr) (*map->expect)[reg->first_page + i] = v;
    }
  }
  if (bad != 0) return step_fail(EIO, fmt::format("{} DMA reads did not see the write", bad));
  return step_ok(static_cast<int64_t>(reg->pages * rounds),
                 fmt::format("{} rounds of DMA over {} pages", rounds, reg->pages));
}

// ---- direct_io ----

DirectIoStep DirectIoStep::parse(StepReader& in) {
  in.allow({"device", "mapping", "offset", "size", "direction"}, kName);
  DirectIoStep st;
  st.device = in.device({DeviceType::kDirectIo});
  st.range = in.range();
  st.to_memory =
      !in["direction"] || in.r.one_of(in["direction"], "direction", {"read", "write"}) == "read";
  return st;
}

// One O_DIRECT transfer: a read fills memory with stamps (whole pages, so
// each page's first word is its stamp); a write checks what reaches the disk.
StepResult DirectIoStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  CurrentTask current(*t->proc->task);
  std::vector<std::byte> buf =
      to_memory ? stamped_buffer(run, *t) : std::vector<std::byte>(t->pages * PAGE_SIZE);
  auto r = direct_io(run.ms(), t->addr(), buf, to_memory, fmt::format("{} O_DIRECT", device));
  if (!r.ok()) return step_fail(r.error().code(), "direct I/O failed");
  for (uint64_t i = 0; i < t->pages; ++i) {
    uint64_t& want = (*t->map->expect)[t->first + i];
    if (to_memory) {
      want = first_word(buf, i);
    } else if (first_word(buf, i) != want) {
      return step_fail(EIO,
                       fmt::format("page {} reached the disk with the wrong data", t->first + i));
    }
  }
  return step_ok(static_cast<int64_t>(*r / PAGE_SIZE),
                 fmt::format("{} {} bytes", to_memory ? "read" : "wrote", *r));
}

// ---- mirror ----

MirrorStep MirrorStep::parse(StepReader& in) {
  in.allow({"device", "mapping", "offset", "size", "op"}, kName);
  MirrorStep st;
  st.device = in.device({DeviceType::kDmirror, DeviceType::kGpu});
  st.range = in.range();
  st.op = in.r.one_of(in.need("op"), "op",
                      {"read", "write", "migrate_to_device", "migrate_to_system", "snapshot"});
  if (in.r.devices.at(st.device) == DeviceType::kGpu && st.op != "read" && st.op != "write")
    in.r.fail(in["op"], "a gpu only reads and writes (it migrates on its own)");
  return st;
}

namespace {

// The device's view of the process, made at its first use.
Dmirror& mirror_for(ScenarioRun& run, const std::string& device, const std::string& proc,
                    Process& p) {
  return run.tables().with([&](ScenarioTables& t) -> Dmirror& {
    auto key = std::make_pair(device, proc);
    auto it = t.mirrors.find(key);
    if (it == t.mirrors.end())
      it = t.mirrors.emplace(key, std::make_unique<Dmirror>(*t.dmirrors.at(device), *p.mm)).first;
    return *it->second;
  });
}

Gpu& gpu_for(ScenarioRun& run, const DeviceSpec& dev, const std::string& proc, Process& p) {
  return run.tables().with([&](ScenarioTables& t) -> Gpu& {
    auto key = std::make_pair(dev.name, proc);
    auto it = t.gpus.find(key);
    if (it == t.gpus.end()) {
      GpuOptions opt;
      opt.hot_threshold = dev.hot_threshold;
      it = t.gpus.emplace(key, std::make_unique<Gpu>(run.ms(), *p.mm, dev.name, opt)).first;
    }
    return *it->second;
  });
}

}  // namespace

// A gpu reads or writes (value: its resident pages); a dmirror runs the
// test_hmm ioctl (value: cmd.cpages). What the device read is checked
// against the oracle; what it wrote is recorded.
StepResult MirrorStep::run(ScenarioRun& run, const std::string&) const {
  auto t = run.target(range);
  if (!t.ok()) return step_fail(t.error().code(), "no such range");
  const DeviceSpec& dev =
      *run.tables().with([&](ScenarioTables& tables) { return tables.devices.at(device); });
  const bool writing = op == "write";
  std::vector<std::byte> buf =
      writing ? stamped_buffer(run, *t) : std::vector<std::byte>(t->pages * PAGE_SIZE);
  CurrentTask current(*t->proc->task);
  int rc = 0;
  int64_t value = 0;
  if (dev.type == DeviceType::kGpu) {
    Gpu& gpu = gpu_for(run, dev, range.process, *t->proc);
    rc = writing ? gpu.write(t->addr(), buf) : gpu.read(t->addr(), buf);
    value = static_cast<int64_t>(gpu.resident_pages());
  } else {
    Dmirror& fd = mirror_for(run, device, range.process, *t->proc);
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
    rc = fd.ioctl(kOps.at(op), &cmd);
    value = static_cast<int64_t>(cmd.cpages);
  }
  if (rc != 0) return step_fail(-rc, fmt::format("{} {} failed", device, op));
  if (writing || op == "read" || op == "migrate_to_device") {
    for (uint64_t i = 0; i < t->pages; ++i) {
      uint64_t& want = (*t->map->expect)[t->first + i];
      const uint64_t v = first_word(buf, i);
      if (writing) {
        want = v;
      } else if (v != want) {
        return step_fail(EIO, fmt::format("the device read page {}: expected {:#x}, found {:#x}",
                                          t->first + i, want, v));
      }
    }
  }
  return step_ok(value, fmt::format("{} {}: {} pages", device, op, t->pages));
}

}  // namespace pinmm
