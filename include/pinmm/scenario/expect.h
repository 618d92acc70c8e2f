// What a scenario expects: of a step (its result, value and checks right
// after it) and of the whole run (checked at the end). The checks are
// read by src/scenario/expectations.cc and checked there too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pinmm {

struct SourcePos {
  std::string file;
  int line = 0;  // 1-based; 0: unknown
  int column = 0;
  std::string to_string() const;  // "file:line:column"
};

// Which memory blocks an offline/online step names.
struct BlockSelect {
  std::vector<uint64_t> ids;     // explicit ids
  std::string zone;              // "movable" / "normal": every present block online there
  std::optional<uint64_t> last;  // only the last N of those
};

enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
const char* compare_op_name(CompareOp op);  // "==", ">=" …

struct CounterExpect {
  // A /proc/vmstat name, or "delta:NAME": its change over the run (in the
  // scenario's expect:) or over the step (in a step's).
  std::string counter;
  CompareOp op = CompareOp::kEq;
  int64_t value = 0;
  SourcePos pos;
};

struct BlockStateExpect {
  BlockSelect blocks;
  std::string state;  // "online" / "offline"
  SourcePos pos;
};

// A zone's page counts: free, managed, present.
struct ZoneExpect {
  int node = 0;
  bool movable = false;  // ZONE_MOVABLE, else ZONE_NORMAL
  struct Check {
    std::string field;  // "free", "managed", "present"
    CompareOp op = CompareOp::kEq;
    int64_t value = 0;
  };
  std::vector<Check> checks;
  SourcePos pos;
};

// What must hold: at the end of the run (the scenario's expect:), or
// right after a step (a step's expect:, without no_pages_leaked, which
// only teardown can tell).
struct Expectations {
  std::vector<CounterExpect> counters;
  std::vector<ZoneExpect> zones;
  bool no_data_lost = false;
  bool no_pages_leaked = false;
  std::vector<BlockStateExpect> blocks;
};

// What a step must return: success, or a given errno; and optionally a
// value (pages pinned, migrated, allocated …, as the step kind defines).
struct StepExpect {
  int err = 0;  // 0: success; else a positive errno
  std::optional<int64_t> value;
  Expectations checks;  // counters (delta: over the step), zones, blocks, no_data_lost
  SourcePos pos;
};

}  // namespace pinmm
