// A named policy, as `pinmm policies` lists it (DESIGN.md: choices the
// kernel makes by heuristic, or that research varies, are named).
#pragma once

#include <string_view>

namespace pinmm {

struct PolicyInfo {
  std::string_view name;
  std::string_view description;
};

}  // namespace pinmm
