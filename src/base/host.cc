#include "pinmm/base/host.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace pinmm {

std::optional<uint64_t> parse_mem_available(std::string_view meminfo) {
  constexpr std::string_view kKey = "MemAvailable:";
  size_t at = meminfo.find(kKey);
  while (at != std::string_view::npos && at != 0 && meminfo[at - 1] != '\n')
    at = meminfo.find(kKey, at + 1);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = meminfo.substr(at + kKey.size());
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  uint64_t kb = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), kb);
  if (ec != std::errc() || end == rest.data()) return std::nullopt;
  return kb * 1024;
}

std::optional<uint64_t> host_memory_available() {
  std::ifstream f("/proc/meminfo");
  if (!f) return std::nullopt;
  std::ostringstream text;
  text << f.rdbuf();
  return parse_mem_available(text.str());
}

std::optional<std::string> host_memory_problem(uint64_t need, std::string_view what) {
  const std::optional<uint64_t> available = host_memory_available();
  if (!available || need <= *available) return std::nullopt;
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  return fmt::format(
      "{} needs {:.1f} GiB of host memory, more than the {:.1f} GiB this host has available "
      "(MemAvailable); use a smaller machine, or --ignore-host-memory to try anyway",
      what, static_cast<double>(need) / kGiB, static_cast<double>(*available) / kGiB);
}

}  // namespace pinmm
