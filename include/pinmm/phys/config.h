// MachineConfig: the machine a MemorySystem models.
//
// Linux counterpart: what firmware and the kernel command line decide at
// boot: memory per NUMA node, the section and memory-block sizes, which
// memory goes to ZONE_MOVABLE (movablecore=), CMA areas (cma=), hugetlb
// pools (hugepagesz=/hugepages=), the THP mode and vm.min_free_kbytes.
//
// Layout rules (checked by check()): node memory is a whole number of memory
// blocks; a block is a whole number of sections; sections are a power of two
// of at least one pageblock (2 MiB). Each node's ZONE_MOVABLE part is its
// top `movable` bytes, a whole number of blocks. CMA areas are placed
// bottom-up at the start of their node's kernel (ZONE_NORMAL) part, as the
// kernel's bottom-up CMA placement does, and must fit there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pinmm/base/types.h"

namespace pinmm {

enum class ThpMode : uint8_t { kAlways, kMadvise, kNever };
const char* thp_mode_name(ThpMode m);

struct NodeConfig {
  Bytes memory;
  Bytes movable;  // top part of the node onlined to ZONE_MOVABLE
};

struct CmaConfig {
  std::string name;
  Bytes size;
  int nid = 0;
  // Pages per bitmap bit, as a power of two (cma_declare_contiguous_nid's
  // order_per_bit; 0 for the cma= boot option's area).
  unsigned order_per_bit = 0;
};

// How memory blocks are onlined (the MMOP_* values of memory_hotplug.h):
// memhp_default_state= for hot-added blocks, and what a write to a block's
// state file asks for.
enum class OnlineType : uint8_t { kOffline, kOnline, kOnlineKernel, kOnlineMovable };
// "offline", "online", "online_kernel", "online_movable".
const char* online_type_name(OnlineType t);

// memory_hotplug.online_policy: how "online" picks a zone.
enum class OnlinePolicy : uint8_t { kContigZones, kAutoMovable };

// Memory hotplug: the room for hot-added memory and the kernel's hotplug
// parameters as booted (the hotplug layer may change them at run time, as
// the module parameters can be).
struct HotplugConfig {
  // PFN space above boot memory where memory can be hot-added (what QEMU's
  // maxmem minus mem leaves); a whole number of memory blocks.
  Bytes space = Bytes(0);
  OnlineType default_online_type = OnlineType::kOffline;  // memhp_default_state=
  OnlinePolicy online_policy = OnlinePolicy::kContigZones;
  unsigned auto_movable_ratio = 301;  // percent
  bool auto_movable_numa_aware = true;
  bool movable_node = false;  // the movable_node boot option
};

// What FOLL_LONGTERM does with memory that may not stay pinned (ZONE_MOVABLE,
// CMA, isolated pageblocks): the long-term pin policy. kMigrate is Linux
// since 5.13 (CMA since 5.1): migrate such folios out, then pin. kInPlace
// pins them where they lie, as older kernels did for ZONE_MOVABLE, so the
// pins then block offlining and contiguous allocation.
enum class LongtermPinPolicy : uint8_t { kMigrate, kInPlace };
const char* longterm_pin_policy_name(LongtermPinPolicy p);  // "migrate", "in-place"

struct HugepageConfig {
  Bytes page_size;     // 2MiB or 1GiB
  uint64_t count = 0;  // pages per node if nid is set, else spread over nodes
  std::optional<int> nid;
};

struct MachineConfig {
  std::vector<NodeConfig> nodes;
  Bytes section_size = Bytes::MiB(128);
  Bytes block_size = Bytes::MiB(128);
  std::vector<CmaConfig> cma;
  std::vector<HugepageConfig> hugepages;
  ThpMode thp = ThpMode::kAlways;  // Debian's kernel: CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS
  int cpus = 2;
  // vm.min_free_kbytes as a user would set it; absent: computed as Linux does.
  std::optional<uint64_t> min_free_kbytes;
  // Reserve the boot-time page descriptor arrays (64 bytes per page) at the
  // top of each node's kernel zone, so present != managed as on real machines.
  bool reserve_memmap = true;
  HotplugConfig hotplug;
  // Physical address space above the hot-add space for ZONE_DEVICE memory
  // (what request_free_mem_region finds for device-private memory); a whole
  // number of sections. memremap_pages takes its ranges from here.
  Bytes device_space = Bytes(0);
  LongtermPinPolicy longterm_pin_policy = LongtermPinPolicy::kMigrate;

  // `total` memory split evenly over `nr_nodes`, with `movable` bytes in all
  // spread like movablecore= spreads kernelcore: evenly over nodes, rounded
  // up to memory blocks of `block_size`.
  static MachineConfig uniform(Bytes total, int nr_nodes, Bytes movable,
                               Bytes block_size = Bytes::MiB(128));
  // A tiny machine for tests: 2 MiB sections and blocks, no memmap
  // reservation, min_free_kbytes 0, THP never, one node.
  static MachineConfig tiny(Bytes memory, Bytes movable = Bytes(0));

  // Boot memory of all nodes (hot-add space not included).
  Bytes total_memory() const;
  // Host memory booting this machine touches: a page descriptor for every
  // PFN of its physical address space (boot memory, hot-add and device
  // space), and in debug builds every boot frame too (freed frames are
  // poisoned).
  uint64_t host_bytes_at_boot() const;
  // Every problem with this configuration, one sentence each.
  std::vector<std::string> check() const;
};

}  // namespace pinmm
