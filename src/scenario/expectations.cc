// The expect: section (expectations.h).
#include "expectations.h"

#include <fmt/format.h>

#include "pinmm/base/errno.h"

#include "run.h"

namespace pinmm {

namespace {

CounterExpect parse_counter(ScenarioReader& r, const YAML::Node& key, const YAML::Node& value) {
  CounterExpect c;
  c.pos = r.pos(key);
  c.counter = r.str(key, "counter");
  const std::string name = c.counter.starts_with("delta:") ? c.counter.substr(6) : c.counter;
  if (!VmStat{}.by_name(name, 512))
    r.fail(key, fmt::format("'{}' is not a /proc/vmstat counter", name));
  std::tie(c.op, c.value) = r.comparison(value, c.counter);
  return c;
}

ZoneExpect parse_zone(ScenarioReader& r, const YAML::Node& z) {
  r.check_keys(z, {"node", "zone", "free", "managed", "present"}, "a zone expectation");
  ZoneExpect e;
  e.pos = r.pos(z);
  e.node = z["node"] ? r.small_int(z["node"], "node", 0, r.nodes - 1) : 0;
  e.movable = r.one_of(r.need(z, "zone"), "zone", {"normal", "movable"}) == "movable";
  for (const char* field : {"free", "managed", "present"}) {
    if (!z[field]) continue;
    const auto [op, value] = r.comparison(z[field], field);
    e.checks.push_back(ZoneExpect::Check{field, op, value});
  }
  if (e.checks.empty()) r.fail(z, "a zone expectation checks free, managed or present");
  return e;
}

}  // namespace

namespace {

// counters:, zones:, blocks: and no_data_lost: of an expect: section.
void parse_checks(ScenarioReader& r, const YAML::Node& n, Expectations& e) {
  if (n["no_data_lost"]) e.no_data_lost = r.boolean(n["no_data_lost"], "no_data_lost");
  if (n["counters"]) {
    if (!n["counters"].IsMap()) r.fail(n["counters"], "'counters' maps vmstat names to values");
    for (const auto& kv : n["counters"])
      e.counters.push_back(parse_counter(r, kv.first, kv.second));
  }
  if (n["zones"]) {
    if (!n["zones"].IsSequence()) r.fail(n["zones"], "'zones' is a list of {node, zone, free …}");
    for (const YAML::Node& z : n["zones"])
      e.zones.push_back(parse_zone(r, z));
  }
  if (n["blocks"]) {
    if (!n["blocks"].IsSequence()) r.fail(n["blocks"], "'blocks' is a list of {blocks, state}");
    for (const YAML::Node& b : n["blocks"]) {
      r.check_keys(b, {"blocks", "last", "state"}, "a block expectation");
      BlockStateExpect be;
      be.pos = r.pos(b);
      be.blocks = r.blocks(b);
      be.state = r.one_of(r.need(b, "state"), "state", {"online", "offline"});
      e.blocks.push_back(std::move(be));
    }
  }
}

int errno_of(ScenarioReader& r, const YAML::Node& n) {
  const std::string t = r.str(n, "result");
  if (t == "ok" || t == "0") return 0;
  if (auto e = Errno::from_name(t)) return e->code();
  r.fail(n, fmt::format("'{}' is neither 'ok' nor an errno name (EBUSY, ENOMEM …)", t));
}

}  // namespace

void parse_expectations(ScenarioReader& r, const YAML::Node& n, Expectations& e) {
  r.check_keys(n, {"counters", "no_data_lost", "no_pages_leaked", "blocks", "zones"}, "expect");
  if (n["no_pages_leaked"]) e.no_pages_leaked = r.boolean(n["no_pages_leaked"], "no_pages_leaked");
  parse_checks(r, n, e);
}

StepExpect parse_step_expect(ScenarioReader& r, const YAML::Node& n) {
  StepExpect e;
  e.pos = r.pos(n);
  if (n.IsScalar()) {
    e.err = errno_of(r, n);
    return e;
  }
  for (const auto& kv : n.IsMap() ? n : YAML::Node(YAML::NodeType::Map)) {
    if (kv.first.IsScalar() && kv.first.Scalar() == "no_pages_leaked")
      r.fail(kv.first,
             "no_pages_leaked is checked after teardown: it belongs in the scenario's expect:");
  }
  r.check_keys(n, {"result", "value", "counters", "zones", "blocks", "no_data_lost"},
               "a step's expect");
  if (n["result"]) e.err = errno_of(r, n["result"]);
  if (n["value"]) e.value = r.signed_int(n["value"], "value");
  parse_checks(r, n, e.checks);
  return e;
}

bool compare(int64_t found, CompareOp op, int64_t want) {
  switch (op) {
    case CompareOp::kEq:
      return found == want;
    case CompareOp::kNe:
      return found != want;
    case CompareOp::kLt:
      return found < want;
    case CompareOp::kLe:
      return found <= want;
    case CompareOp::kGt:
      return found > want;
    case CompareOp::kGe:
      return found >= want;
  }
  return false;
}

namespace {

// Every page each live process still maps holds what was last written.
ExpectationOutcome check_no_data_lost(ScenarioRun& run) {
  std::string lost;
  const std::vector<std::string> names = run.tables().with([](ScenarioTables& t) {
    std::vector<std::string> out;
    for (const auto& [name, p] : t.processes)
      out.push_back(name);
    return out;
  });
  for (const std::string& name : names) {
    Process* p = run.process(name);
    for (auto& [mname, m] : p->maps) {
      const StepResult r = verify(Target{p, &m, 0, m.pages}, Unmapped::kSkip);
      if (r.err != 0 && lost.empty()) lost = fmt::format("{}.{}: {}", name, mname, r.detail);
    }
  }
  return ExpectationOutcome{"no data lost", SourcePos{run.scenario().file, 0, 0}, lost.empty(),
                            lost.empty() ? "every mapped page holds what was last written" : lost};
}

}  // namespace

std::vector<ExpectationOutcome> check_expectations(ScenarioRun& run, const Expectations& e,
                                                   const VmStat& baseline) {
  std::vector<ExpectationOutcome> out;
  auto add = [&out](std::string what, SourcePos pos, bool ok, std::string detail) {
    out.push_back(ExpectationOutcome{std::move(what), std::move(pos), ok, std::move(detail)});
  };
  const VmStat now = run.ms().vmstat();
  for (const CounterExpect& c : e.counters) {
    const bool delta = c.counter.starts_with("delta:");
    const std::string name = delta ? c.counter.substr(6) : c.counter;
    const int64_t found =
        *now.by_name(name, HPAGE_PMD_NR) - (delta ? *baseline.by_name(name, HPAGE_PMD_NR) : 0);
    add(fmt::format("{} {} {}", c.counter, compare_op_name(c.op), c.value), c.pos,
        compare(found, c.op, c.value), fmt::format("{}", found));
  }
  for (const ZoneExpect& z : e.zones) {
    const Zone& zone = run.ms().zone(z.node, z.movable ? ZONE_MOVABLE : ZONE_NORMAL);
    for (const ZoneExpect::Check& c : z.checks) {
      const int64_t found = c.field == "free"      ? zone.stats().get(NR_FREE_PAGES)
                            : c.field == "managed" ? static_cast<int64_t>(zone.managed_pages())
                                                   : static_cast<int64_t>(zone.present_pages());
      add(fmt::format("node {} {} {} {} {}", z.node, z.movable ? "Movable" : "Normal", c.field,
                      compare_op_name(c.op), c.value),
          z.pos, compare(found, c.op, c.value), fmt::format("{}", found));
    }
  }
  for (const BlockStateExpect& b : e.blocks) {
    std::string wrong;
    const std::vector<uint64_t> ids = run.select(b.blocks);
    for (uint64_t id : ids) {
      const std::string state = run.hotplug().state_show(id);
      if (state != b.state)
        wrong += fmt::format("{}memory{} is {}", wrong.empty() ? "" : ", ", id, state);
    }
    add(fmt::format("blocks {} {}", b.blocks.zone.empty() ? "(listed)" : b.blocks.zone, b.state),
        b.pos, wrong.empty() && !ids.empty(),
        ids.empty()     ? "no such blocks"
        : wrong.empty() ? fmt::format("{} blocks", ids.size())
                        : wrong);
  }
  if (e.no_data_lost) out.push_back(check_no_data_lost(run));
  return out;
}

}  // namespace pinmm
