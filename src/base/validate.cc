#include "pinmm/base/validate.h"

namespace pinmm {

std::string ValidationReport::to_string() const {
  if (ok()) return "ok";
  std::string out = fmt::format("{} problem(s):", count_);
  for (const auto& p : problems_)
    out += "\n  " + p;
  if (count_ > problems_.size()) out += fmt::format("\n  … and {} more", count_ - problems_.size());
  return out;
}

}  // namespace pinmm
