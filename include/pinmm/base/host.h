// The host pinmm runs on: how much memory it can give a simulated machine.
//
// Linux counterpart: none (it is pinmm's own limit). A simulated machine
// costs host memory for its page descriptors at boot and for every frame
// it touches; a request larger than the host is refused up front with the
// limit named, rather than discovered by the OOM killer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pinmm {

// MemAvailable from /proc/meminfo, in bytes; nullopt if it cannot be read.
std::optional<uint64_t> host_memory_available();

// Parses the MemAvailable line of a /proc/meminfo text (kB), in bytes.
std::optional<uint64_t> parse_mem_available(std::string_view meminfo);

// A sentence naming the limit if `need` bytes of host memory for `what`
// exceed what the host has available; nullopt if they fit or the host
// cannot tell.
std::optional<std::string> host_memory_problem(uint64_t need, std::string_view what);

}  // namespace pinmm
