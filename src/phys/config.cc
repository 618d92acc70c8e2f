#include "pinmm/phys/config.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "pinmm/phys/mmzone.h"
#include "pinmm/phys/page.h"

namespace pinmm {

const char* thp_mode_name(ThpMode m) {
  switch (m) {
    case ThpMode::kAlways:
      return "always";
    case ThpMode::kMadvise:
      return "madvise";
    case ThpMode::kNever:
      return "never";
  }
  return "?";
}

const char* online_type_name(OnlineType t) {
  switch (t) {
    case OnlineType::kOffline:
      return "offline";
    case OnlineType::kOnline:
      return "online";
    case OnlineType::kOnlineKernel:
      return "online_kernel";
    case OnlineType::kOnlineMovable:
      return "online_movable";
  }
  return "?";
}

const char* longterm_pin_policy_name(LongtermPinPolicy p) {
  return p == LongtermPinPolicy::kInPlace ? "in-place" : "migrate";
}

MachineConfig MachineConfig::uniform(Bytes total, int nr_nodes, Bytes movable, Bytes block_size) {
  MachineConfig c;
  c.block_size = block_size;
  if (nr_nodes <= 0) nr_nodes = 1;
  const uint64_t per_node = total.value() / static_cast<uint64_t>(nr_nodes);
  const uint64_t block = std::max<uint64_t>(c.block_size.value(), 1);
  // movablecore= semantics: kernelcore = total - movable, spread evenly over
  // the nodes; each node's remaining (top) memory is ZONE_MOVABLE.
  const uint64_t kernelcore =
      movable.value() >= total.value() ? 0 : total.value() - movable.value();
  uint64_t kernel_per_node = kernelcore / static_cast<uint64_t>(nr_nodes);
  kernel_per_node = (kernel_per_node + block - 1) / block * block;
  for (int n = 0; n < nr_nodes; ++n) {
    const uint64_t kernel = std::min(kernel_per_node, per_node);
    c.nodes.push_back({Bytes(per_node), Bytes(per_node - kernel)});
  }
  return c;
}

MachineConfig MachineConfig::tiny(Bytes memory, Bytes movable) {
  MachineConfig c;
  c.section_size = Bytes::MiB(2);
  c.block_size = Bytes::MiB(2);
  c.nodes.push_back({memory, movable});
  c.thp = ThpMode::kNever;
  c.min_free_kbytes = 0;
  c.reserve_memmap = false;
  return c;
}

Bytes MachineConfig::total_memory() const {
  uint64_t t = 0;
  for (const auto& n : nodes)
    t += n.memory.value();
  return Bytes(t);
}

uint64_t MachineConfig::host_bytes_at_boot() const {
  const uint64_t pfns =
      total_memory().pages().value() + hotplug.space.pages().value() + device_space.pages().value();
  uint64_t bytes = (pfns + 1) * sizeof(Page);
#ifdef PINMM_DEBUG
  bytes += total_memory().value();
#endif
  return bytes;
}

std::vector<std::string> MachineConfig::check() const {
  std::vector<std::string> errs;
  auto fail = [&errs](std::string msg) { errs.push_back(std::move(msg)); };
  const uint64_t pageblock_bytes = pageblock_nr_pages << PAGE_SHIFT;

  if (nodes.empty()) fail("the machine needs at least one node");
  if (nodes.size() > static_cast<size_t>(MAX_NUMNODES)) {
    fail(fmt::format("at most {} nodes are supported, not {}", MAX_NUMNODES, nodes.size()));
  }
  const uint64_t section = section_size.value();
  if (section < pageblock_bytes || (section & (section - 1)) != 0) {
    fail(fmt::format("section size {} must be a power of two of at least 2MiB",
                     section_size.to_string()));
  }
  const uint64_t block = block_size.value();
  if (block == 0 || section == 0 || block % section != 0) {
    fail(fmt::format("memory block size {} must be a multiple of the section size {}",
                     block_size.to_string(), section_size.to_string()));
  }
  if (cpus < 1 || cpus > 256) fail(fmt::format("cpus must be between 1 and 256, not {}", cpus));
  if (total_memory().value() + hotplug.space.value() + device_space.value() > (uint64_t{4} << 40))
    fail("at most 4TiB of memory (with the hot-add and device spaces) is supported");
  if (section != 0 && device_space.value() % section != 0) {
    fail(fmt::format("device space {} is not a multiple of the section size {}",
                     device_space.to_string(), section_size.to_string()));
  }
  if (block != 0 && hotplug.space.value() % block != 0) {
    fail(fmt::format("hot-add space {} is not a multiple of the memory block size {}",
                     hotplug.space.to_string(), block_size.to_string()));
  }

  for (size_t n = 0; n < nodes.size(); ++n) {
    const NodeConfig& nc = nodes[n];
    if (nc.memory.value() == 0) {
      fail(fmt::format("node {} has no memory", n));
      continue;
    }
    if (block != 0 && nc.memory.value() % block != 0) {
      fail(fmt::format("node {} memory {} is not a multiple of the memory block size {}", n,
                       nc.memory.to_string(), block_size.to_string()));
    }
    if (nc.movable > nc.memory) {
      fail(fmt::format("node {} movable memory {} exceeds its memory {}", n, nc.movable.to_string(),
                       nc.memory.to_string()));
      continue;
    }
    if (block != 0 && nc.movable.value() % block != 0) {
      fail(fmt::format("node {} movable memory {} is not a multiple of the memory block size {}", n,
                       nc.movable.to_string(), block_size.to_string()));
    }
  }
  if (!nodes.empty() && nodes[0].memory.value() <= nodes[0].movable.value()) {
    fail("node 0 needs kernel (ZONE_NORMAL) memory: it cannot be all movable");
  }

  // CMA areas: unique names, pageblock-sized, in an existing node's kernel part.
  std::set<std::string> names;
  std::vector<uint64_t> cma_per_node(nodes.size(), 0);
  for (const CmaConfig& a : cma) {
    if (a.name.empty()) fail("a CMA area needs a name");
    if (!names.insert(a.name).second) fail(fmt::format("CMA area name '{}' is used twice", a.name));
    if (a.size.value() == 0 || a.size.value() % pageblock_bytes != 0) {
      fail(fmt::format("CMA area '{}' size {} must be a non-zero multiple of 2MiB", a.name,
                       a.size.to_string()));
    }
    if (a.order_per_bit > MAX_PAGE_ORDER ||
        (a.size.pages().value() & ((uint64_t{1} << a.order_per_bit) - 1)) != 0) {
      fail(fmt::format("CMA area '{}' order_per_bit {} must be at most {} and divide its size",
                       a.name, a.order_per_bit, MAX_PAGE_ORDER));
    }
    if (a.nid < 0 || static_cast<size_t>(a.nid) >= nodes.size()) {
      fail(fmt::format("CMA area '{}' is on node {}, which does not exist", a.name, a.nid));
      continue;
    }
    cma_per_node[a.nid] += a.size.value();
  }
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (nodes[n].movable > nodes[n].memory) continue;
    const uint64_t kernel = nodes[n].memory.value() - nodes[n].movable.value();
    const uint64_t memmap = reserve_memmap ? nodes[n].memory.value() / 64 : 0;
    if (cma_per_node[n] + memmap > kernel) {
      fail(fmt::format(
          "CMA areas ({}) and page descriptors ({}) do not fit in node {}'s kernel memory ({})",
          Bytes(cma_per_node[n]).to_string(), Bytes(memmap).to_string(), n,
          Bytes(kernel).to_string()));
    }
  }

  for (const HugepageConfig& h : hugepages) {
    if (h.page_size != Bytes::MiB(2) && h.page_size != Bytes::GiB(1)) {
      fail(
          fmt::format("hugepage size {} is not supported (2MiB or 1GiB)", h.page_size.to_string()));
    }
    if (h.nid && (*h.nid < 0 || static_cast<size_t>(*h.nid) >= nodes.size())) {
      fail(fmt::format("hugepages on node {}, which does not exist", *h.nid));
    }
  }
  if (min_free_kbytes && *min_free_kbytes > total_memory().value() / 1024) {
    fail(fmt::format("min_free_kbytes {} exceeds the machine's memory", *min_free_kbytes));
  }
  return errs;
}

}  // namespace pinmm
