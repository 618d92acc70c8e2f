// An actor of the stress mix (stress.h): processes, pins and devices of
// its own, a data oracle for everything it maps, and the machine-wide
// operations it shares with the other actors. Private to src/stress/.
//
// Thread safety: an actor is used by one thread at a time. What actors
// share (the machine, the hot-add space, the blocks taken offline) sits in
// Shared behind its lock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pinmm/base/task.h"
#include "pinmm/devices/dmirror.h"
#include "pinmm/devices/rdma_nic.h"
#include "pinmm/machine/machine.h"
#include "pinmm/vm/mm.h"

namespace pinmm::stress {

// Where an actor's choices come from.
class Choices {
 public:
  virtual ~Choices() = default;
  // A number in [0, n), n >= 1.
  virtual uint64_t below(uint64_t n) = 0;
  // False once a finite source has run out (every later choice is 0).
  virtual bool more() const { return true; }
};

class RandomChoices final : public Choices {
 public:
  explicit RandomChoices(uint64_t seed) : rng_(seed) {}
  uint64_t below(uint64_t n) override { return n <= 1 ? 0 : rng_() % n; }

 private:
  std::mt19937_64 rng_;
};

// A fuzzer's input read front to back: one byte per choice of up to 256
// values, more for larger ones.
class ByteChoices final : public Choices {
 public:
  explicit ByteChoices(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  uint64_t below(uint64_t n) override;
  bool more() const override { return pos_ < bytes_.size(); }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

// What the actors share.
struct Shared {
  // `threaded`: actors run on threads (offlining is bounded by a deadline,
  // whatever the others do, and race windows may be widened); else one
  // actor runs from a fuzzer's bytes (offlining is bounded by attempts: one
  // input, one outcome).
  Shared(Machine& machine, bool threaded);
  Machine& machine;
  MemorySystem& ms;
  VmContext& vm;
  MemoryHotplug& hp;
  CmaAreas& cma;
  const bool threaded;

  Mutex lock{LockRank::kLeaf};  // the fields below
  uint64_t hot_added_pages GUARDED_BY(lock) = 0;
  std::vector<uint64_t> movable_blocks GUARDED_BY(lock);  // online movable at boot, or hot-added
  std::set<uint64_t> offline_blocks GUARDED_BY(lock);     // taken offline by an actor, not yet back
  int next_pid GUARDED_BY(lock) = 100;
};

// What an actor counts; the run adds them up.
struct Tally {
  uint64_t ops = 0;
  uint64_t lost_writes = 0;
  uint64_t violations = 0;
  std::map<std::string, uint64_t> ops_by_kind;
  std::vector<std::string> problems;  // the first few
  void problem(std::string what);
};

class Actor {
 public:
  Actor(Shared& shared, int id);
  ~Actor();
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

  // One operation, every choice from `c`; false if what it picked cannot
  // be done (a read with nothing mapped) and nothing happened.
  bool step(Choices& c);
  // Pins the actor holds (pins and registered pages), for the pin check.
  uint64_t pins_held() const;
  // Reads back everything the actor maps against the oracle.
  void verify_all();
  // Drops everything: pins, registrations, devices, allocations, blocks
  // offlined, processes. The actor can be used again afterwards.
  void teardown();
  Tally& tally() { return tally_; }
  // Validates the actor's devices.
  void validate_devices(std::vector<std::string>& out) const;

 private:
  struct Mapping {
    uint64_t id = 0;
    VirtAddr addr;
    uint64_t pages = 0;
    bool shared = false;
    // Expected first word of each page (0: never written). Shared between
    // the processes of a fork for shared mappings.
    std::shared_ptr<std::vector<uint64_t>> expect;
    std::vector<bool> mapped;
  };
  struct Process {
    std::unique_ptr<Task> task;
    MmHandle mm;
    std::vector<Mapping> maps;
    std::unique_ptr<Dmirror> mirror;
  };
  // Pages pinned through a range of one mapping; `bound` says whether the
  // pinned page is still the mapping's page there, so that a DMA write must
  // show up in the oracle's page: for private memory, until the process
  // unmaps it (munmap, MADV_DONTNEED, exit); shared memory keeps its pinned
  // page in the page cache whoever unmaps it.
  struct Pinned {
    int pid = 0;
    uint64_t map_id = 0;
    bool shared = false;
    std::shared_ptr<std::vector<uint64_t>> expect;  // the mapping's oracle
    uint64_t first = 0;
    std::vector<Page*> pages;
    std::vector<bool> bound;
    bool write = false;
    uint32_t key = 0;  // NIC registrations only
  };
  struct Range {
    Process* proc = nullptr;
    Mapping* map = nullptr;
    uint64_t first = 0, pages = 0;
    VirtAddr addr() const { return map->addr + first * PAGE_SIZE; }
  };

  // ---- operations ----
  bool op_map(Choices& c);
  bool op_write(Choices& c);
  bool op_read(Choices& c);
  bool op_fork(Choices& c);
  bool op_exit(Choices& c);
  bool op_munmap(Choices& c);
  bool op_mprotect(Choices& c);
  bool op_madvise(Choices& c);
  bool op_gup(Choices& c);
  bool op_pin(Choices& c);
  bool op_unpin(Choices& c);
  bool op_pin_dma(Choices& c);
  bool op_register(Choices& c);
  bool op_deregister(Choices& c);
  bool op_nic_dma(Choices& c);
  bool op_direct_io(Choices& c);
  bool op_move_pages(Choices& c);
  bool op_migrate_pages(Choices& c);
  bool op_offline(Choices& c);
  bool op_online(Choices& c);
  bool op_hot_add(Choices& c);
  bool op_cma_alloc(Choices& c);
  bool op_cma_release(Choices& c);
  bool op_kernel_alloc(Choices& c);
  bool op_kernel_free(Choices& c);
  bool op_mirror(Choices& c);
  bool op_inject(Choices& c);

  // ---- helpers ----
  Process* pick_process(Choices& c);
  // A range of mapped pages of some mapping (nullopt if there is none).
  std::optional<Range> pick_range(Choices& c, uint64_t max_pages);
  uint64_t next_stamp();
  // Checks `found` against the oracle for page `i` of `map`.
  void check(const Mapping& map, uint64_t i, uint64_t found, const char* how);
  void unbind(int pid, uint64_t map_id, uint64_t first, uint64_t pages);
  void cpu_check(const Pinned& p, const char* how);
  void release(Pinned& p);
  void exit_process(size_t index);
  Dmirror* mirror_of(Process& p);

  Shared& s_;
  const int id_;
  Tally tally_;
  uint64_t stamps_ = 0;
  uint64_t next_map_id_ = 1;
  std::vector<std::unique_ptr<Process>> procs_;
  std::vector<Pinned> pins_;
  std::vector<Pinned> regions_;
  std::unique_ptr<RdmaNic> nic_;
  std::unique_ptr<DmirrorDevice> dmirror_;
  struct CmaAlloc {
    Cma* area = nullptr;
    Page* pages = nullptr;
    uint64_t count = 0;
  };
  std::vector<CmaAlloc> cma_allocs_;
  std::vector<Page*> kernel_allocs_;
  std::set<uint64_t> my_offline_;
  std::vector<std::string_view> windows_open_;  // window points this actor widened
};

}  // namespace pinmm::stress
