// libFuzzer target for the scenario parser: any input either parses or is
// a ScenarioError; nothing else may escape, crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pinmm/scenario/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)pinmm::parse_scenario(std::string_view(reinterpret_cast<const char*>(data), size),
                                "fuzz.yaml");
  } catch (const pinmm::ScenarioError&) {
  }
  return 0;
}
