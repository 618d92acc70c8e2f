// Command-line options that describe a machine (pinmm dump, pinmm run).
//
// --memory 4GiB --nodes 2 --movable 2GiB --cma 256MiB --cma name:64MiB@1
// --hugepages 2MiB:16 --hugepages 1GiB:1@0 --block-size 128MiB
// --section-size 128MiB --thp always|madvise|never --cpus 2
// --min-free-kbytes N --no-memmap-reserve --hotplug-space 4GiB --device-space 1GiB
// --online-policy contig-zones|auto-movable --auto-movable-ratio 301
// --memhp-default-state offline|online|online_kernel|online_movable
// --movable-node --longterm-pin-policy migrate|in-place --ignore-host-memory.
// Defaults: the Foundation
// machine, 4GiB with 2GiB movable and a 256MiB CMA area named "reserved".
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>

#include "pinmm/phys/config.h"

namespace pinmm::cli {

struct MachineOptions {
  std::string memory = "4GiB";
  int nodes = 1;
  std::string movable = "2GiB";
  std::vector<std::string> cma = {"256MiB"};
  std::vector<std::string> hugepages;
  std::string block_size = "128MiB";
  std::string section_size = "128MiB";
  std::string thp = "always";
  int cpus = 2;
  std::optional<uint64_t> min_free_kbytes;
  bool no_memmap_reserve = false;
  std::string hotplug_space = "0";
  std::string device_space = "0";
  std::string online_policy = "contig-zones";
  unsigned auto_movable_ratio = 301;
  std::string memhp_default_state = "offline";
  bool movable_node = false;
  std::string longterm_pin_policy = "migrate";
  bool ignore_host_memory = false;

  void add_to(CLI::App& app);
  // The MachineConfig these options describe, or the problems with them
  // (bad sizes, impossible machines, machines larger than the host unless
  // --ignore-host-memory), one message each.
  std::variant<MachineConfig, std::vector<std::string>> to_config() const;
};

}  // namespace pinmm::cli
