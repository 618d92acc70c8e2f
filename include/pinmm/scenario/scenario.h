// Scenarios: a machine, processes with mappings, devices, an ordered list
// of steps, and what must hold afterwards, read from YAML.
//
// docs/scenarios.md is the schema, with an example per step kind. Parsing
// checks everything it can before anything runs: unknown keys, wrong
// types, bad sizes, names used before they are defined, and machines that
// cannot boot are ScenarioErrors carrying the file, line and column of the
// offending node (1-based, as compilers print them). A ScenarioError is
// the only way parsing fails; nothing in a scenario file can crash it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pinmm/base/types.h"
#include "pinmm/phys/config.h"
#include "pinmm/scenario/steps.h"

namespace pinmm {

class ScenarioError : public std::runtime_error {
 public:
  ScenarioError(SourcePos pos, const std::string& message);
  const SourcePos& pos() const { return pos_; }
  const std::string& message() const { return message_; }

 private:
  SourcePos pos_;
  std::string message_;
};

enum class MappingKind : uint8_t {
  kAnon,         // MAP_PRIVATE | MAP_ANONYMOUS
  kSharedAnon,   // MAP_SHARED | MAP_ANONYMOUS (shmem underneath)
  kShmem,        // a memfd (tmpfs file) mapped MAP_SHARED
  kHugetlb,      // MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB (2 MiB pages)
  kFile,         // a dirty-tracked (ext4-like) file mapped MAP_SHARED
  kFilePrivate,  // the same file kind mapped MAP_PRIVATE
};

struct MappingSpec {
  std::string name;
  MappingKind kind = MappingKind::kAnon;
  uint64_t size = 0;  // bytes, page aligned (2 MiB aligned for hugetlb)
  bool thp = true;    // MADV_HUGEPAGE vs MADV_NOHUGEPAGE (anon)
  SourcePos pos;
};

struct ProcessSpec {
  std::string name;
  std::vector<MappingSpec> mappings;
  SourcePos pos;
};

struct DeviceSpec {
  std::string name;
  DeviceType type = DeviceType::kRdmaNic;
  bool coherent = false;       // dmirror: device-coherent instead of private memory
  unsigned hot_threshold = 4;  // gpu
  SourcePos pos;
};

struct Scenario {
  std::string file;
  std::string name;
  std::string description;
  uint64_t seed = 1;
  MachineConfig machine;
  SourcePos machine_pos;  // the machine's 'memory' key
  std::vector<ProcessSpec> processes;
  std::vector<DeviceSpec> devices;
  std::vector<Step> steps;
  Expectations expect;
};

// Parses and checks a scenario. Throws ScenarioError.
Scenario parse_scenario(std::string_view yaml, const std::string& file);

struct BuiltinScenario {
  const char* name;
  const char* summary;
  const char* yaml;
};
std::span<const BuiltinScenario> builtin_scenarios();
const BuiltinScenario* find_builtin_scenario(std::string_view name);

}  // namespace pinmm
