// The stress actor (actor.h): its operations and their checks.
#include "actor.h"

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include "pinmm/base/inject.h"
#include "pinmm/base/locks.h"
#include "pinmm/gup/gup.h"
#include "pinmm/gup/pin.h"
#include "pinmm/migrate/migrate.h"
#include "pinmm/migrate/move_pages.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/kernel_pages.h"
#include "pinmm/phys/lru.h"
#include "pinmm/phys/pin_owners.h"
#include "pinmm/vm/access.h"
#include "pinmm/vm/mmap.h"

namespace pinmm::stress {

namespace {

// What one actor may hold at once: enough to mix, small enough that a
// 2-core host under ASan does hundreds of operations a second.
constexpr size_t kMaxProcesses = 4;
constexpr size_t kMaxMappings = 4;
constexpr size_t kMaxPins = 6;
constexpr size_t kMaxRegions = 2;
constexpr size_t kMaxCmaAllocs = 2;
constexpr size_t kMaxKernelAllocs = 4;
constexpr uint64_t kMaxRangePages = 64;
// Blocks all actors together keep offline at once.
constexpr size_t kMaxOfflineBlocks = 2;

// splitmix64: the stamps of the data oracle.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A DMA write straight into a pinned frame, as a device does.
void frame_write(MemorySystem& ms, const Page* page, uint64_t value) {
  std::memcpy(ms.frames().frame(ms.page_to_pfn(page)), &value, sizeof value);
}

}  // namespace

uint64_t ByteChoices::below(uint64_t n) {
  if (n <= 1) return 0;
  uint64_t v = 0;
  for (uint64_t range = 1; range < n && pos_ < bytes_.size(); range <<= 8)
    v = (v << 8) | bytes_[pos_++];
  return v % n;
}

Shared::Shared(Machine& m, bool is_threaded)
    : machine(m), ms(m.ms()), vm(m.vm()), hp(m.hotplug()), cma(m.cma()), threaded(is_threaded) {
  for (const MemoryBlock& b : ms.memory_blocks()) {
    if (b.present && b.state == MemoryBlockState::kOnline && b.zone == ZONE_MOVABLE)
      movable_blocks.push_back(b.id);
  }
}

void Tally::problem(std::string what) {
  if (problems.size() < 20) problems.push_back(std::move(what));
}

Actor::Actor(Shared& shared, int id) : s_(shared), id_(id) {}

Actor::~Actor() { teardown(); }

// ---- the mix ----

bool Actor::step(Choices& c) {
  // An operation returns whether it did something (a pin with no pages to
  // pin, say, did not); only those count.
  using Op = bool (Actor::*)(Choices&);
  struct Kind {
    const char* name;
    unsigned weight;
    Op op;
  };
  static constexpr std::array kKinds{
      Kind{"map", 4, &Actor::op_map},
      Kind{"write", 10, &Actor::op_write},
      Kind{"read", 8, &Actor::op_read},
      Kind{"fork", 2, &Actor::op_fork},
      Kind{"exit", 1, &Actor::op_exit},
      Kind{"munmap", 2, &Actor::op_munmap},
      Kind{"mprotect", 2, &Actor::op_mprotect},
      Kind{"madvise", 2, &Actor::op_madvise},
      Kind{"gup", 3, &Actor::op_gup},
      Kind{"pin", 4, &Actor::op_pin},
      Kind{"unpin", 3, &Actor::op_unpin},
      Kind{"pin_dma", 4, &Actor::op_pin_dma},
      Kind{"register", 1, &Actor::op_register},
      Kind{"deregister", 1, &Actor::op_deregister},
      Kind{"nic_dma", 2, &Actor::op_nic_dma},
      Kind{"direct_io", 2, &Actor::op_direct_io},
      Kind{"move_pages", 3, &Actor::op_move_pages},
      Kind{"migrate_pages", 2, &Actor::op_migrate_pages},
      Kind{"offline", 1, &Actor::op_offline},
      Kind{"online", 1, &Actor::op_online},
      Kind{"hot_add", 1, &Actor::op_hot_add},
      Kind{"cma_alloc", 1, &Actor::op_cma_alloc},
      Kind{"cma_release", 1, &Actor::op_cma_release},
      Kind{"kernel_alloc", 1, &Actor::op_kernel_alloc},
      Kind{"kernel_free", 1, &Actor::op_kernel_free},
      Kind{"mirror", 3, &Actor::op_mirror},
      Kind{"inject", 1, &Actor::op_inject},
  };
  static constexpr unsigned kTotal = [] {
    unsigned t = 0;
    for (const Kind& k : kKinds)
      t += k.weight;
    return t;
  }();
  uint64_t pick = c.below(kTotal);
  for (const Kind& k : kKinds) {
    if (pick < k.weight) {
      if (!(this->*k.op)(c)) return false;
      ++tally_.ops;
      ++tally_.ops_by_kind[k.name];
      return true;
    }
    pick -= k.weight;
  }
  return false;
}

// ---- helpers ----

// Every actor starts (and restarts after exits) with one process; nullptr
// if it cannot be created (an injected allocation failure).
uint64_t Actor::next_stamp() { return mix((static_cast<uint64_t>(id_) << 48) ^ ++stamps_) | 1; }

Actor::Process* Actor::pick_process(Choices& c) {
  if (procs_.empty()) {
    auto p = std::make_unique<Process>();
    int pid = 0;
    {
      MutexGuard g(s_.lock);
      pid = s_.next_pid++;
    }
    p->task = std::make_unique<Task>(pid, fmt::format("stress{}", id_));
    p->mm = Mm::create(s_.vm);
    if (!p->mm) return nullptr;  // no page for its page-table root
    p->task->set_mm(p->mm.get());
    procs_.push_back(std::move(p));
  }
  return procs_[c.below(procs_.size())].get();
}

std::optional<Actor::Range> Actor::pick_range(Choices& c, uint64_t max_pages) {
  Process* p = pick_process(c);
  if (p == nullptr || p->maps.empty()) return std::nullopt;
  Mapping& m = p->maps[c.below(p->maps.size())];
  Range r;
  r.proc = p;
  r.map = &m;
  r.first = c.below(m.pages);
  r.pages = 1 + c.below(std::min(max_pages, m.pages - r.first));
  // Shrink to a run of mapped pages from the start.
  if (!m.mapped[r.first]) return std::nullopt;
  uint64_t n = 1;
  while (n < r.pages && m.mapped[r.first + n])
    ++n;
  r.pages = n;
  return r;
}

void Actor::check(const Mapping& map, uint64_t i, uint64_t found, const char* how) {
  const uint64_t want = (*map.expect)[i];
  if (found == want) return;
  ++tally_.lost_writes;
  tally_.problem(
      fmt::format("actor {}: {} of page {} of mapping {} at {:#x}: expected {:#x}, found "
                  "{:#x}",
                  id_, how, i, map.id, (map.addr + i * PAGE_SIZE).value(), want, found));
}

void Actor::unbind(int pid, uint64_t map_id, uint64_t first, uint64_t pages) {
  for (std::vector<Pinned>* list : {&pins_, &regions_}) {
    for (Pinned& p : *list) {
      if (p.pid != pid || p.map_id != map_id || p.shared) continue;
      for (uint64_t i = 0; i < p.pages.size(); ++i) {
        if (p.first + i >= first && p.first + i < first + pages) p.bound[i] = false;
      }
    }
  }
}

void Actor::release(Pinned& p) {
  if (p.key != 0) {
    if (auto r = nic_->dereg_mr(p.key); !r.ok())
      tally_.problem(fmt::format("actor {}: dereg_mr failed: {}", id_, r.error().name()));
    return;
  }
  PinOwnerScope owner(PinOwnerKind::kDevice, fmt::format("stress{}", id_), "pin");
  unpin_user_pages_dirty_lock(p.pages, p.write);
}

Dmirror* Actor::mirror_of(Process& p) {
  if (s_.ms.config().device_space.value() == 0) return nullptr;
  if (dmirror_ == nullptr)
    dmirror_ = std::make_unique<DmirrorDevice>(s_.ms, DmirrorMemory::kPrivate, id_);
  if (p.mirror == nullptr) p.mirror = std::make_unique<Dmirror>(*dmirror_, *p.mm);
  return p.mirror.get();
}

void Actor::exit_process(size_t index) {
  Process& p = *procs_[index];
  for (std::vector<Pinned>* list : {&pins_, &regions_}) {
    for (Pinned& pin : *list) {
      if (pin.pid == p.task->pid() && !pin.shared)
        std::fill(pin.bound.begin(), pin.bound.end(), false);
    }
  }
  {
    CurrentTask as(*p.task);
    p.mirror.reset();
    p.mm.reset();
  }
  procs_.erase(procs_.begin() + static_cast<long>(index));
}

uint64_t Actor::pins_held() const {
  uint64_t n = 0;
  for (const std::vector<Pinned>* list : {&pins_, &regions_}) {
    for (const Pinned& p : *list) {
      n += static_cast<uint64_t>(std::count_if(p.pages.begin(), p.pages.end(),
                                               [](Page* pg) { return !is_zero_page(pg); }));
    }
  }
  return n;
}

void Actor::verify_all() {
  for (auto& p : procs_) {
    CurrentTask as(*p->task);
    for (const Mapping& m : p->maps) {
      for (uint64_t i = 0; i < m.pages; ++i) {
        if (!m.mapped[i]) continue;
        auto v = read_user<uint64_t>(*p->mm, m.addr + i * PAGE_SIZE);
        if (!v.ok()) {
          if (v.error().code() == ENOMEM) continue;  // a full machine
          ++tally_.violations;
          tally_.problem(fmt::format("actor {}: reading mapped page {} of mapping {}: {}", id_, i,
                                     m.id, v.error().name()));
          continue;
        }
        check(m, i, *v, "final read");
      }
    }
  }
}

void Actor::teardown() {
  for (Pinned& p : pins_)
    release(p);
  pins_.clear();
  for (Pinned& p : regions_)
    release(p);
  regions_.clear();
  nic_.reset();
  while (!procs_.empty())
    exit_process(procs_.size() - 1);
  dmirror_.reset();
  for (const CmaAlloc& a : cma_allocs_)
    (void)s_.cma.cma_release(a.area, a.pages, a.count);
  cma_allocs_.clear();
  for (Page* p : kernel_allocs_)
    kfree_pages(p);
  kernel_allocs_.clear();
  for (uint64_t id : my_offline_) {
    if (const int rc = s_.hp.state_store(id, "online_movable"); rc != 0) {
      ++tally_.violations;
      tally_.problem(fmt::format("actor {}: memory{} does not come back online: {}", id_, id, rc));
    }
    MutexGuard g(s_.lock);
    s_.offline_blocks.erase(id);
  }
  my_offline_.clear();
  for (std::string_view w : windows_open_)
    s_.ms.injector().clear(w);
  windows_open_.clear();
}

void Actor::validate_devices(std::vector<std::string>& out) const {
  if (nic_ != nullptr) {
    if (auto r = nic_->validate(); !r.ok()) out.push_back(r.to_string());
  }
  if (dmirror_ != nullptr) {
    if (auto r = dmirror_->validate(); !r.ok()) out.push_back(r.to_string());
  }
}

// ---- process and memory operations ----

bool Actor::op_map(Choices& c) {
  Process* p = pick_process(c);
  if (p == nullptr || p->maps.size() >= kMaxMappings) return false;
  static constexpr std::array<uint64_t, 4> kSizes{1, 16, 64, 1024};
  Mapping m;
  m.id = next_map_id_++;
  m.pages = kSizes[c.below(kSizes.size())];
  m.shared = c.below(4) == 0;
  const bool thp = c.below(2) == 0;
  CurrentTask as(*p->task);
  const int flags = (m.shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
  auto a = vm_mmap(*p->mm, VirtAddr(0), m.pages * PAGE_SIZE, PROT_READ | PROT_WRITE, flags);
  if (!a.ok()) return false;
  m.addr = *a;
  (void)do_madvise(*p->mm, m.addr, m.pages * PAGE_SIZE, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  m.expect = std::make_shared<std::vector<uint64_t>>(m.pages, 0);
  m.mapped.assign(m.pages, true);
  p->maps.push_back(std::move(m));
  return true;
}

bool Actor::op_write(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  for (uint64_t i = 0; i < r->pages; ++i) {
    const uint64_t v = next_stamp();
    if (!write_user<uint64_t>(*r->proc->mm, r->addr() + i * PAGE_SIZE, v).ok()) return true;
    (*r->map->expect)[r->first + i] = v;
  }
  return true;
}

bool Actor::op_read(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  for (uint64_t i = 0; i < r->pages; ++i) {
    auto v = read_user<uint64_t>(*r->proc->mm, r->addr() + i * PAGE_SIZE);
    if (!v.ok()) return true;  // ENOMEM on a full machine
    check(*r->map, r->first + i, *v, "read");
  }
  return true;
}

bool Actor::op_fork(Choices& c) {
  if (procs_.size() >= kMaxProcesses) return false;
  Process* parent = pick_process(c);
  if (parent == nullptr) return false;
  Result<MmHandle> mm = [&] {
    CurrentTask as(*parent->task);
    return dup_mm(*parent->mm);
  }();
  if (!mm.ok()) return false;
  auto child = std::make_unique<Process>();
  int pid = 0;
  {
    MutexGuard g(s_.lock);
    pid = s_.next_pid++;
  }
  child->task = std::make_unique<Task>(pid, fmt::format("stress{}", id_));
  child->mm = std::move(*mm);
  child->task->set_mm(child->mm.get());
  for (const Mapping& m : parent->maps) {
    Mapping cm = m;
    cm.id = next_map_id_++;
    if (!m.shared) cm.expect = std::make_shared<std::vector<uint64_t>>(*m.expect);
    child->maps.push_back(std::move(cm));
  }
  procs_.push_back(std::move(child));
  return true;
}

bool Actor::op_exit(Choices& c) {
  if (procs_.size() < 2) return false;
  exit_process(c.below(procs_.size()));
  return true;
}

bool Actor::op_munmap(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  if (!vm_munmap(*r->proc->mm, r->addr(), r->pages * PAGE_SIZE).ok()) return false;
  for (uint64_t i = 0; i < r->pages; ++i)
    r->map->mapped[r->first + i] = false;
  unbind(r->proc->task->pid(), r->map->id, r->first, r->pages);
  // A mapping with nothing left mapped makes room for a new one.
  if (std::none_of(r->map->mapped.begin(), r->map->mapped.end(), [](bool m) { return m; })) {
    auto& maps = r->proc->maps;
    maps.erase(maps.begin() + (r->map - maps.data()));
  }
  return true;
}

bool Actor::op_mprotect(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  // Read-only and back: every mirror and GUP-fast walker sees the
  // invalidation; the data must not change.
  const uint64_t len = r->pages * PAGE_SIZE;
  if (!do_mprotect(*r->proc->mm, r->addr(), len, c.below(2) == 0 ? PROT_READ : PROT_NONE).ok())
    return true;
  if (!do_mprotect(*r->proc->mm, r->addr(), len, PROT_READ | PROT_WRITE).ok()) {
    ++tally_.violations;
    tally_.problem(fmt::format("actor {}: mprotect back to RW failed", id_));
  }
  return true;
}

bool Actor::op_madvise(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  static constexpr std::array kAdvice{MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE};
  const int advice = kAdvice[c.below(kAdvice.size())];
  if (!do_madvise(*r->proc->mm, r->addr(), r->pages * PAGE_SIZE, advice).ok()) return false;
  if (advice != MADV_DONTNEED) return true;
  // Private memory reads as zero afterwards; shared memory keeps its data
  // in the page cache.
  if (!r->map->shared) {
    for (uint64_t i = 0; i < r->pages; ++i)
      (*r->map->expect)[r->first + i] = 0;
  }
  unbind(r->proc->task->pid(), r->map->id, r->first, r->pages);
  return true;
}

// ---- GUP and pins ----

bool Actor::op_gup(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  std::vector<Page*> pages(r->pages);
  const Foll flags = c.below(2) == 0 ? FOLL_WRITE : FOLL_NONE;
  long n = 0;
  if (c.below(2) == 0) {
    n = get_user_pages_fast(r->addr().value(), r->pages, flags, pages.data());
  } else {
    ReadGuard g(r->proc->mm->mmap_lock);
    n = get_user_pages_remote(*r->proc->mm, r->addr().value(), r->pages, flags, pages.data(),
                              nullptr);
  }
  for (long i = 0; i < n; ++i)
    put_page(pages[static_cast<size_t>(i)]);
  return true;
}

bool Actor::op_pin(Choices& c) {
  if (pins_.size() >= kMaxPins) return false;
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  PinOwnerScope owner(PinOwnerKind::kDevice, fmt::format("stress{}", id_), "pin");
  Pinned p;
  p.pid = r->proc->task->pid();
  p.map_id = r->map->id;
  p.shared = r->map->shared;
  p.expect = r->map->expect;
  p.first = r->first;
  p.write = c.below(4) != 0;
  p.pages.assign(r->pages, nullptr);
  Foll flags = p.write ? FOLL_WRITE : FOLL_NONE;
  if (c.below(3) == 0) flags = flags | FOLL_LONGTERM;
  long n = 0;
  if (c.below(2) == 0) {
    n = pin_user_pages_fast(r->addr().value(), r->pages, flags, p.pages.data());
  } else {
    ReadGuard g(r->proc->mm->mmap_lock);
    n = pin_user_pages_remote(*r->proc->mm, r->addr().value(), r->pages, flags, p.pages.data(),
                              nullptr);
  }
  if (n <= 0) return false;
  p.pages.resize(static_cast<size_t>(n));
  // A read pin of never-written private memory holds the zero page: not
  // that page's future contents.
  p.bound.assign(p.pages.size(), p.write);
  pins_.push_back(std::move(p));
  return true;
}

bool Actor::op_unpin(Choices& c) {
  if (pins_.empty()) return false;
  const size_t i = c.below(pins_.size());
  release(pins_[i]);
  pins_.erase(pins_.begin() + static_cast<long>(i));
  return true;
}

// The device writes through each bound pinned page; the CPU must see it
// where the process maps the page (a pin that did not hold the page in
// place, through migration, offlining or COW, loses the write).
bool Actor::op_pin_dma(Choices& c) {
  if (pins_.empty()) return false;
  Pinned& p = pins_[c.below(pins_.size())];
  if (!p.write) return false;
  for (size_t i = 0; i < p.pages.size(); ++i) {
    const uint64_t v = next_stamp();
    frame_write(s_.ms, p.pages[i], v);
    if (p.bound[i]) (*p.expect)[p.first + i] = v;
  }
  cpu_check(p, "CPU read after a DMA write through a pin");
  return true;
}

// Where the pinning process still maps a bound page, the CPU must read
// what the device wrote.
void Actor::cpu_check(const Pinned& p, const char* how) {
  Process* proc = nullptr;
  for (auto& q : procs_)
    if (q->task->pid() == p.pid) proc = q.get();
  if (proc == nullptr) return;
  const Mapping* map = nullptr;
  for (const Mapping& m : proc->maps)
    if (m.id == p.map_id) map = &m;
  if (map == nullptr) return;
  CurrentTask as(*proc->task);
  for (size_t i = 0; i < p.pages.size(); ++i) {
    if (!p.bound[i] || !map->mapped[p.first + i]) continue;
    auto back = read_user<uint64_t>(*proc->mm, map->addr + (p.first + i) * PAGE_SIZE);
    if (back.ok()) check(*map, p.first + i, *back, how);
  }
}

bool Actor::op_register(Choices& c) {
  if (regions_.size() >= kMaxRegions) return false;
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  if (nic_ == nullptr) nic_ = std::make_unique<RdmaNic>(s_.ms, fmt::format("rdma{}", id_));
  Result<uint32_t> key = [&] {
    CurrentTask as(*r->proc->task);
    return nic_->reg_mr(*r->proc->mm, r->addr(), r->pages * PAGE_SIZE, "stress");
  }();
  if (!key.ok()) return false;
  Pinned p;
  p.pid = r->proc->task->pid();
  p.map_id = r->map->id;
  p.shared = r->map->shared;
  p.expect = r->map->expect;
  p.first = r->first;
  p.write = true;
  p.key = *key;
  p.pages = nic_->region_pages(*key);
  p.bound.assign(p.pages.size(), true);
  regions_.push_back(std::move(p));
  return true;
}

bool Actor::op_deregister(Choices& c) {
  if (regions_.empty()) return false;
  const size_t i = c.below(regions_.size());
  release(regions_[i]);
  regions_.erase(regions_.begin() + static_cast<long>(i));
  return true;
}

bool Actor::op_nic_dma(Choices& c) {
  if (regions_.empty()) return false;
  Pinned& reg = regions_[c.below(regions_.size())];
  for (size_t i = 0; i < reg.pages.size(); ++i) {
    const uint64_t v = next_stamp();
    uint64_t back = 0;
    if (!nic_->dma_write(reg.key, i * PAGE_SIZE, std::as_bytes(std::span(&v, 1))).ok() ||
        !nic_->dma_read(reg.key, i * PAGE_SIZE, std::as_writable_bytes(std::span(&back, 1))).ok() ||
        back != v) {
      ++tally_.lost_writes;
      tally_.problem(fmt::format("actor {}: the NIC did not read back its own write", id_));
      continue;
    }
    if (reg.bound[i]) (*reg.expect)[reg.first + i] = v;
  }
  cpu_check(reg, "CPU read after NIC DMA");
  return true;
}

bool Actor::op_direct_io(Choices& c) {
  auto r = pick_range(c, 16);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  const bool to_memory = c.below(2) == 0;
  std::vector<std::byte> buf(r->pages * PAGE_SIZE);
  if (to_memory) {
    for (uint64_t i = 0; i < r->pages; ++i) {
      const uint64_t v = next_stamp();
      std::memcpy(buf.data() + i * PAGE_SIZE, &v, sizeof v);
    }
  }
  auto done = direct_io(s_.ms, r->addr(), buf, to_memory, "stress O_DIRECT");
  if (!done.ok()) return false;
  for (uint64_t i = 0; i < *done / PAGE_SIZE; ++i) {
    uint64_t v = 0;
    std::memcpy(&v, buf.data() + i * PAGE_SIZE, sizeof v);
    if (to_memory) {
      (*r->map->expect)[r->first + i] = v;
    } else {
      check(*r->map, r->first + i, v, "O_DIRECT write of");
    }
  }
  return true;
}

// ---- migration ----

bool Actor::op_move_pages(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  std::vector<VirtAddr> addrs;
  for (uint64_t i = 0; i < r->pages; ++i)
    addrs.push_back(r->addr() + i * PAGE_SIZE);
  std::vector<int> nodes(addrs.size(), static_cast<int>(c.below(s_.ms.nr_nodes())));
  std::vector<int> status(addrs.size());
  CurrentTask as(*r->proc->task);
  (void)move_pages(*r->proc->mm, addrs, nodes, status, MPOL_MF_MOVE);
  return true;
}

// migrate_pages() on folios isolated from a range (what compaction and
// NUMA balancing do): GUP finds them, isolation takes them off the LRU.
bool Actor::op_migrate_pages(Choices& c) {
  auto r = pick_range(c, kMaxRangePages);
  if (!r) return false;
  CurrentTask as(*r->proc->task);
  std::vector<Page*> pages(r->pages);
  const long n = get_user_pages_fast(r->addr().value(), r->pages, FOLL_NONE, pages.data());
  if (n <= 0) return false;
  lru_add_drain_all(s_.ms);
  ListHead list;
  init_list_head(&list);
  for (long i = 0; i < n; ++i) {
    Folio* folio = page_folio(pages[static_cast<size_t>(i)]);
    if (!is_zero_folio(folio)) (void)isolate_folio_to_list(folio, &list);
  }
  for (long i = 0; i < n; ++i)
    put_page(pages[static_cast<size_t>(i)]);
  MigrationTargetControl mtc;
  mtc.nid = static_cast<int>(c.below(s_.ms.nr_nodes()));
  mtc.gfp_mask = GFP_HIGHUSER_MOVABLE;
  if (!list_empty(&list))
    (void)migrate_pages(s_.ms, &list, migration_target(s_.ms, mtc), MIGRATE_SYNC, MR_SYSCALL);
  putback_movable_pages(&list);
  return true;
}

// ---- memory blocks, CMA, kernel memory ----

bool Actor::op_offline(Choices& c) {
  std::vector<uint64_t> candidates;
  {
    MutexGuard g(s_.lock);
    if (s_.offline_blocks.size() >= kMaxOfflineBlocks) return false;
    for (uint64_t id : s_.movable_blocks) {
      if (!s_.offline_blocks.contains(id)) candidates.push_back(id);
    }
    if (candidates.empty()) return false;
    const uint64_t id = candidates[c.below(candidates.size())];
    s_.offline_blocks.insert(id);  // claimed: no other actor offlines it
    candidates.assign(1, id);
  }
  const uint64_t id = candidates.front();
  OfflineOptions opt;
  if (s_.threaded) {
    opt.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  } else {
    opt.retry = OfflineRetryPolicy::kBounded;
    opt.max_attempts = 5;
  }
  if (s_.hp.state_store(id, "offline", opt) == 0) {
    my_offline_.insert(id);
    return true;
  }
  MutexGuard g(s_.lock);
  s_.offline_blocks.erase(id);
  return true;
}

bool Actor::op_online(Choices& c) {
  if (my_offline_.empty()) return false;
  auto it = my_offline_.begin();
  std::advance(it, static_cast<long>(c.below(my_offline_.size())));
  const uint64_t id = *it;
  if (const int rc = s_.hp.state_store(id, "online_movable"); rc != 0) {
    // An injected allocation failure may refuse it (ENOMEM): try later.
    if (rc != -ENOMEM) {
      ++tally_.violations;
      tally_.problem(fmt::format("actor {}: memory{} does not come back online: {}", id_, id, rc));
    }
    return true;
  }
  my_offline_.erase(it);
  MutexGuard g(s_.lock);
  s_.offline_blocks.erase(id);
  return true;
}

bool Actor::op_hot_add(Choices& c) {
  const uint64_t block = s_.ms.block_pages().value();
  Pfn start;
  {
    MutexGuard g(s_.lock);
    const uint64_t space = s_.ms.config().hotplug.space.pages().value();
    if (s_.hot_added_pages + block > space) return false;
    start = s_.ms.boot_end_pfn() + PageCount(s_.hot_added_pages);
    s_.hot_added_pages += block;
  }
  const int nid = static_cast<int>(c.below(s_.ms.nr_nodes()));
  auto group = s_.hp.add_memory(nid, start, PageCount(block), /*as_group=*/false);
  if (!group.ok()) return false;
  const uint64_t id = start.value() / block;
  if (s_.hp.state_store(id, "online_movable") != 0) return true;
  MutexGuard g(s_.lock);
  s_.movable_blocks.push_back(id);
  return true;
}

bool Actor::op_cma_alloc(Choices& c) {
  if (cma_allocs_.size() >= kMaxCmaAllocs || s_.cma.size() == 0) return false;
  Cma* area = &s_.cma.area(c.below(s_.cma.size()));
  const uint64_t count = 1 + c.below(std::min<uint64_t>(1024, area->count()));
  if (Page* p = s_.cma.cma_alloc(area, count, 0, true)) cma_allocs_.push_back({area, p, count});
  return true;
}

bool Actor::op_cma_release(Choices& c) {
  if (cma_allocs_.empty()) return false;
  const size_t i = c.below(cma_allocs_.size());
  const CmaAlloc a = cma_allocs_[i];
  cma_allocs_.erase(cma_allocs_.begin() + static_cast<long>(i));
  if (!s_.cma.cma_release(a.area, a.pages, a.count)) {
    ++tally_.violations;
    tally_.problem(fmt::format("actor {}: cma_release of its own allocation refused", id_));
  }
  return true;
}

bool Actor::op_kernel_alloc(Choices& c) {
  if (kernel_allocs_.size() >= kMaxKernelAllocs) return false;
  const Order order(static_cast<unsigned>(c.below(5)));
  if (Page* p = kmalloc_pages(s_.ms, order, "stress", GFP_KERNEL,
                              static_cast<int>(c.below(s_.ms.nr_nodes()))))
    kernel_allocs_.push_back(p);
  return true;
}

bool Actor::op_kernel_free(Choices& c) {
  if (kernel_allocs_.empty()) return false;
  const size_t i = c.below(kernel_allocs_.size());
  kfree_pages(kernel_allocs_[i]);
  kernel_allocs_.erase(kernel_allocs_.begin() + static_cast<long>(i));
  return true;
}

// ---- HMM ----

// The mirror device reads or writes the range through hmm_range_fault, or
// migrates it to device-private memory and back (migrate_vma). Data the
// device writes is the oracle's; data it reads and pages it moves must be.
bool Actor::op_mirror(Choices& c) {
  auto r = pick_range(c, 16);
  if (!r) return false;
  Dmirror* fd = mirror_of(*r->proc);
  if (fd == nullptr) return false;
  static constexpr std::array kOps{HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
                                   HMM_DMIRROR_MIGRATE_TO_SYS};
  const unsigned op = kOps[c.below(kOps.size())];
  std::vector<std::byte> buf(r->pages * PAGE_SIZE);
  if (op == HMM_DMIRROR_WRITE) {
    for (uint64_t i = 0; i < r->pages; ++i) {
      const uint64_t v = next_stamp();
      std::memcpy(buf.data() + i * PAGE_SIZE, &v, sizeof v);
    }
  }
  HmmDmirrorCmd cmd;
  cmd.addr = r->addr().value();
  cmd.ptr = buf.data();
  cmd.npages = r->pages;
  CurrentTask as(*r->proc->task);
  if (fd->ioctl(op, &cmd) != 0) return true;  // EBUSY, EFAULT, ENOMEM: best effort
  if (op == HMM_DMIRROR_WRITE || op == HMM_DMIRROR_READ || op == HMM_DMIRROR_MIGRATE_TO_DEV) {
    for (uint64_t i = 0; i < r->pages; ++i) {
      uint64_t v = 0;
      std::memcpy(&v, buf.data() + i * PAGE_SIZE, sizeof v);
      if (op == HMM_DMIRROR_WRITE) {
        (*r->map->expect)[r->first + i] = v;
      } else {
        check(*r->map, r->first + i, v, "device read");
      }
    }
  }
  return true;
}

// ---- fault injection ----

// Arms a point of the catalogue for the whole machine: a failure point
// fails one hit a little later (every operation must cope with the errno
// it gets); a window point, with threads, widens its window for a while
// (the next inject at it closes it again).
bool Actor::op_inject(Choices& c) {
  const std::span<const InjectPointInfo> points = inject_points();
  const InjectPointInfo& p = points[c.below(points.size())];
  Injector& inj = s_.ms.injector();
  if (p.kind == InjectKind::kFail) {
    inj.fail_nth(p.name, 1 + c.below(20));
    return true;
  }
  if (!s_.threaded) return false;
  if (std::find(windows_open_.begin(), windows_open_.end(), p.name) != windows_open_.end()) {
    inj.clear(p.name);
    std::erase(windows_open_, p.name);
  } else {
    inj.delay(p.name, std::chrono::microseconds(20 + c.below(200)));
    windows_open_.push_back(p.name);
  }
  return true;
}

}  // namespace pinmm::stress
