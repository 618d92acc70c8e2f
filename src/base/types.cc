#include "pinmm/base/types.h"

#include <array>
#include <cctype>
#include <limits>

namespace pinmm {

std::optional<Bytes> Bytes::parse(std::string_view text) {
  size_t i = 0;
  uint64_t n = 0;
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return std::nullopt;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
    ++i;
  }
  std::string_view unit = text.substr(i);
  unsigned shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else {
    switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        return std::nullopt;
    }
    const std::string_view rest = unit.substr(1);
    if (!(rest.empty() || rest == "iB" || rest == "ib")) return std::nullopt;
  }
  if (shift != 0 && n > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
  return Bytes(n << shift);
}

std::string Bytes::to_string() const {
  static constexpr std::array<const char*, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
  uint64_t v = n_;
  size_t unit = 0;
  while (v != 0 && unit + 1 < kUnits.size() && (v & 1023) == 0) {
    v >>= 10;
    ++unit;
  }
  return std::to_string(v) + kUnits[unit];
}

}  // namespace pinmm
