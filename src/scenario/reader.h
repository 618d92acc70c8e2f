// Reading a scenario's YAML: typed scalars that fail at their node, and
// what the file has defined so far (processes, devices, handles), so a
// name used before it exists is an error at the use.
//
// Every failure is a ScenarioError carrying the node's file, line and
// column; nothing here lets a yaml-cpp exception or a bad value through.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "pinmm/scenario/scenario.h"

namespace pinmm {

class ScenarioReader {
 public:
  explicit ScenarioReader(std::string file) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  SourcePos pos(const YAML::Node& n) const;
  [[noreturn]] void fail(const YAML::Node& n, const std::string& msg) const;

  // ---- scalars ----
  YAML::Node need(const YAML::Node& map, const char* key) const;  // fails at `map` if absent
  std::string str(const YAML::Node& n, const std::string& what) const;
  uint64_t unsigned_int(const YAML::Node& n, const std::string& what) const;
  int64_t signed_int(const YAML::Node& n, const std::string& what) const;
  int small_int(const YAML::Node& n, const std::string& what, int lo, int hi) const;
  uint64_t size(const YAML::Node& n, const std::string& what) const;       // "4GiB", "4096"
  uint64_t page_size(const YAML::Node& n, const std::string& what) const;  // a 4 KiB multiple
  bool boolean(const YAML::Node& n, const std::string& what) const;
  std::string one_of(const YAML::Node& n, const std::string& what,
                     std::initializer_list<const char*> choices) const;
  double probability(const YAML::Node& n, const std::string& what) const;  // 0 to 1
  // A process, mapping, device or handle name: non-empty, no dots or spaces.
  std::string name_of(const YAML::Node& n, const char* what) const;
  // `map` is a mapping whose keys are all in `allowed`, none twice.
  void check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& what) const;
  // "[op] number": op is ==, !=, <, <=, >, >= (default ==).
  std::pair<CompareOp, int64_t> comparison(const YAML::Node& value, const std::string& what) const;
  // A memory block selection: `blocks:` (ids, or movable/normal/offline)
  // and `last:` of the mapping `n`.
  BlockSelect blocks(const YAML::Node& n) const;

  // ---- what the scenario has defined ----
  int nodes = 1;                                           // NUMA nodes of the machine
  std::set<std::string> cma_areas;                         // the machine's CMA area names
  std::map<std::string, std::set<std::string>> processes;  // process → mapping names
  std::map<std::string, DeviceType> devices;
  std::map<std::string, std::string> handles;  // "as:" name → its kind ("pin", "region" …)
  int snapshots = 0;  // snapshot steps without a label so far (their default labels)

 private:
  std::string file_;
};

// The operands of one step: its YAML mapping, read against what the
// scenario has defined before the step.
class StepReader {
 public:
  StepReader(ScenarioReader& reader, YAML::Node op) : r(reader), op_(std::move(op)) {}

  ScenarioReader& r;

  // The operand keys this kind takes (name and expect are the step's).
  void allow(std::initializer_list<const char*> keys, const char* kind) const;
  YAML::Node operator[](const char* key) const { return op_[key]; }
  YAML::Node need(const char* key) const { return r.need(op_, key); }
  [[noreturn]] void fail(const std::string& msg) const { r.fail(op_, msg); }

  // mapping: "process.mapping" (both defined), offset:, size:.
  RangeRef range() const;
  // device: a defined device of one of `types`.
  std::string device(std::initializer_list<DeviceType> types) const;
  // `key` (default "node"): a node of the machine.
  int node(const char* key = "node") const;
  // as: defines a new handle of `kind`; names are unique per scenario.
  std::string define(const char* kind) const;
  // `key`: a handle of `kind` defined by an earlier step.
  std::string use(const char* key, const char* kind) const;
  BlockSelect blocks() const { return r.blocks(op_); }

 private:
  YAML::Node op_;
};

}  // namespace pinmm
