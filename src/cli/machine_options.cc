#include "machine_options.h"

#include <charconv>
#include <cstdint>

#include <fmt/format.h>

#include "pinmm/base/host.h"

namespace pinmm::cli {
namespace {

std::optional<Bytes> parse_size(const std::string& text, const char* what,
                                std::vector<std::string>& errs) {
  auto b = Bytes::parse(text);
  if (!b)
    errs.push_back(
        fmt::format("{}: '{}' is not a size (examples: 4GiB, 256MiB, 4096)", what, text));
  return b;
}

}  // namespace

void MachineOptions::add_to(CLI::App& app) {
  app.add_option("--memory", memory, "Total memory, split evenly over the nodes")
      ->capture_default_str();
  app.add_option("--nodes", nodes, "NUMA nodes")->capture_default_str();
  app.add_option("--movable", movable, "Memory in ZONE_MOVABLE, spread like movablecore=")
      ->capture_default_str();
  app.add_option("--cma", cma, "CMA area: SIZE or NAME:SIZE[@NODE] (repeatable; 'none' for no CMA)")
      ->capture_default_str();
  app.add_option("--hugepages", hugepages,
                 "hugetlb pool: SIZE:COUNT[@NODE] with SIZE 2MiB or 1GiB (repeatable)");
  app.add_option("--block-size", block_size, "Memory block size")->capture_default_str();
  app.add_option("--section-size", section_size, "Memory section size")->capture_default_str();
  app.add_option("--thp", thp, "Transparent hugepage mode")
      ->check(CLI::IsMember({"always", "madvise", "never"}))
      ->capture_default_str();
  app.add_option("--cpus", cpus, "Simulated CPUs")->capture_default_str();
  app.add_option("--min-free-kbytes", min_free_kbytes,
                 "vm.min_free_kbytes (default: computed as Linux does)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no-memmap-reserve", no_memmap_reserve,
               "Do not reserve boot memory for page descriptors");
  app.add_option("--hotplug-space", hotplug_space,
                 "Physical space above boot memory where memory can be hot-added")
      ->capture_default_str();
  app.add_option("--device-space", device_space,
                 "Physical space above the hot-add space for ZONE_DEVICE memory (memremap_pages)")
      ->capture_default_str();
  app.add_option("--online-policy", online_policy, "memory_hotplug.online_policy")
      ->check(CLI::IsMember({"contig-zones", "auto-movable"}))
      ->capture_default_str();
  app.add_option("--auto-movable-ratio", auto_movable_ratio,
                 "memory_hotplug.auto_movable_ratio, in percent")
      ->capture_default_str();
  app.add_option("--memhp-default-state", memhp_default_state,
                 "How hot-added memory is onlined (memhp_default_state=)")
      ->check(CLI::IsMember({"offline", "online", "online_kernel", "online_movable"}))
      ->capture_default_str();
  app.add_flag("--movable-node", movable_node, "The movable_node boot option");
  app.add_option("--longterm-pin-policy", longterm_pin_policy,
                 "What FOLL_LONGTERM does with unpinnable memory (see `pinmm policies`)")
      ->check(CLI::IsMember({"migrate", "in-place"}))
      ->capture_default_str();
  app.add_flag("--ignore-host-memory", ignore_host_memory,
               "Boot even if the machine needs more host memory than is available");
}

std::variant<MachineConfig, std::vector<std::string>> MachineOptions::to_config() const {
  std::vector<std::string> errs;
  const auto total = parse_size(memory, "--memory", errs);
  const auto mov = parse_size(movable, "--movable", errs);
  const auto block = parse_size(block_size, "--block-size", errs);
  const auto section = parse_size(section_size, "--section-size", errs);
  const auto hot_space = parse_size(hotplug_space, "--hotplug-space", errs);
  const auto dev_space = parse_size(device_space, "--device-space", errs);
  if (nodes < 1 || nodes > 64)
    errs.push_back(fmt::format("--nodes: {} is not between 1 and 64", nodes));
  if (!errs.empty()) return errs;

  if (total->value() % static_cast<uint64_t>(nodes) != 0) {
    errs.push_back(fmt::format("--memory {} does not split evenly over {} nodes", memory, nodes));
  }
  MachineConfig c = MachineConfig::uniform(*total, nodes, *mov, *block);
  c.section_size = *section;

  for (const std::string& spec : cma) {
    if (spec == "none") continue;
    CmaConfig area{"reserved", Bytes(0), 0};
    std::string size_part = spec;
    if (auto colon = spec.find(':'); colon != std::string::npos) {
      area.name = spec.substr(0, colon);
      size_part = spec.substr(colon + 1);
    }
    if (auto at = size_part.find('@'); at != std::string::npos) {
      try {
        area.nid = std::stoi(size_part.substr(at + 1));
      } catch (const std::exception&) {
        errs.push_back(
            fmt::format("--cma {}: '{}' is not a node number", spec, size_part.substr(at + 1)));
      }
      size_part = size_part.substr(0, at);
    }
    if (auto s = parse_size(size_part, "--cma", errs)) area.size = *s;
    c.cma.push_back(area);
  }
  for (const std::string& spec : hugepages) {
    const auto colon = spec.find(':');
    if (colon == std::string::npos) {
      errs.push_back(fmt::format("--hugepages {}: expected SIZE:COUNT[@NODE]", spec));
      continue;
    }
    HugepageConfig h;
    std::string count_part = spec.substr(colon + 1);
    if (auto at = count_part.find('@'); at != std::string::npos) {
      try {
        h.nid = std::stoi(count_part.substr(at + 1));
      } catch (const std::exception&) {
        errs.push_back(fmt::format("--hugepages {}: '{}' is not a node number", spec,
                                   count_part.substr(at + 1)));
      }
      count_part = count_part.substr(0, at);
    }
    const auto [end, ec] =
        std::from_chars(count_part.data(), count_part.data() + count_part.size(), h.count);
    if (ec != std::errc() || end != count_part.data() + count_part.size()) {
      errs.push_back(fmt::format("--hugepages {}: '{}' is not a count of pages (0 to {})", spec,
                                 count_part, UINT64_MAX));
    }
    if (auto s = parse_size(spec.substr(0, colon), "--hugepages", errs)) h.page_size = *s;
    c.hugepages.push_back(h);
  }
  c.thp = thp == "never"     ? ThpMode::kNever
          : thp == "madvise" ? ThpMode::kMadvise
                             : ThpMode::kAlways;
  c.cpus = cpus;
  c.min_free_kbytes = min_free_kbytes;
  c.reserve_memmap = !no_memmap_reserve;
  c.hotplug.space = *hot_space;
  c.device_space = *dev_space;
  c.hotplug.online_policy =
      online_policy == "auto-movable" ? OnlinePolicy::kAutoMovable : OnlinePolicy::kContigZones;
  c.hotplug.auto_movable_ratio = auto_movable_ratio;
  for (OnlineType t : {OnlineType::kOffline, OnlineType::kOnline, OnlineType::kOnlineKernel,
                       OnlineType::kOnlineMovable}) {
    if (memhp_default_state == online_type_name(t)) c.hotplug.default_online_type = t;
  }
  c.hotplug.movable_node = movable_node;
  c.longterm_pin_policy =
      longterm_pin_policy == "in-place" ? LongtermPinPolicy::kInPlace : LongtermPinPolicy::kMigrate;
  for (std::string& e : c.check())
    errs.push_back(std::move(e));
  if (!errs.empty()) return errs;
  if (!ignore_host_memory) {
    if (auto why = host_memory_problem(c.host_bytes_at_boot(), fmt::format("--memory {}", memory)))
      errs.push_back(std::move(*why));
  }
  if (!errs.empty()) return errs;
  return c;
}

}  // namespace pinmm::cli
