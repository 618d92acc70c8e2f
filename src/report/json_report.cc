// The scenario JSON report (json_report.h), with nlohmann::ordered_json so
// keys keep the order they are written in.
#include "pinmm/report/json_report.h"

#include <nlohmann/json.hpp>

#include "pinmm/base/errno.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

namespace {

using Json = nlohmann::ordered_json;

std::string result_name(int err) { return err == 0 ? "ok" : Errno(err).name(); }

Json counters_json(const std::vector<CounterChange>& changes) {
  Json j = Json::object();
  for (const CounterChange& c : changes)
    j[c.name] = Json::array({c.before, c.after});
  return j;
}

Json expectations_json(const std::vector<ExpectationOutcome>& list) {
  Json out = Json::array();
  for (const ExpectationOutcome& e : list) {
    out.push_back({{"what", e.what},
                   {"where", e.pos.line > 0 ? Json(e.pos.to_string()) : Json(e.pos.file)},
                   {"ok", e.ok},
                   {"detail", e.detail}});
  }
  return out;
}

Json machine_json(const MachineConfig& m) {
  Json j;
  Json nodes = Json::array();
  for (const NodeConfig& n : m.nodes)
    nodes.push_back({{"memory", n.memory.to_string()}, {"movable", n.movable.to_string()}});
  j["nodes"] = nodes;
  j["section_size"] = m.section_size.to_string();
  j["block_size"] = m.block_size.to_string();
  Json cma = Json::array();
  for (const CmaConfig& c : m.cma)
    cma.push_back({{"name", c.name}, {"size", c.size.to_string()}, {"node", c.nid}});
  j["cma"] = cma;
  Json huge = Json::array();
  for (const HugepageConfig& h : m.hugepages)
    huge.push_back({{"size", h.page_size.to_string()},
                    {"count", h.count},
                    {"node", h.nid ? Json(*h.nid) : Json(nullptr)}});
  j["hugepages"] = huge;
  j["thp"] = thp_mode_name(m.thp);
  j["cpus"] = m.cpus;
  j["hotplug_space"] = m.hotplug.space.to_string();
  j["device_space"] = m.device_space.to_string();
  j["longterm_pin_policy"] =
      m.longterm_pin_policy == LongtermPinPolicy::kMigrate ? "migrate" : "in-place";
  j["online_policy"] =
      m.hotplug.online_policy == OnlinePolicy::kAutoMovable ? "auto-movable" : "contig-zones";
  return j;
}

Json snapshot_json(const SnapshotRecord& s) {
  Json j;
  j["label"] = s.label;
  j["after_step"] = s.after_step;
  Json totals = Json::object();
  for (size_t i = 0; i < s.map.blocks_in_state.size(); ++i)
    totals[pageblock_state_name(static_cast<PageblockState>(i))] = s.map.blocks_in_state[i];
  j["pageblocks_by_state"] = totals;
  Json blocks = Json::array();
  for (const PageblockInfo& b : s.map.blocks) {
    blocks.push_back({{"pfn", b.start.value()},
                      {"node", b.nid},
                      {"zone", zone_type_name(b.zone)},
                      {"migratetype", migratetype_name(b.migratetype)},
                      {"state", pageblock_state_name(b.state)},
                      {"free", b.free},
                      {"movable", b.movable},
                      {"unmovable", b.unmovable},
                      {"pinned", b.pinned},
                      {"longterm_pinned", b.longterm_pinned}});
  }
  j["pageblocks"] = blocks;
  return j;
}

}  // namespace

std::string scenario_report_json(const RunReport& r) {
  Json j;
  j["scenario"] = r.scenario;
  j["description"] = r.description;
  j["file"] = r.file;
  j["seed"] = r.seed;
  j["passed"] = r.passed;
  j["machine"] = machine_json(r.machine);
  Json steps = Json::array();
  for (const StepOutcome& o : r.steps) {
    Json s;
    s["id"] = o.id;
    s["kind"] = o.kind;
    s["title"] = o.title;
    s["result"] = result_name(o.err);
    s["value"] = o.value;
    s["detail"] = o.detail;
    s["expected"] = o.expectation.empty() ? Json(nullptr) : Json(o.expectation);
    s["expectation_ok"] = o.expectation_ok;
    if (!o.checks.empty()) s["checks"] = expectations_json(o.checks);
    s["counters"] = counters_json(o.counters);
    s["blockers"] = o.blockers;
    s["timing"] = {{"ns", o.elapsed_ns}};
    steps.push_back(std::move(s));
  }
  j["steps"] = steps;
  Json snaps = Json::array();
  for (const SnapshotRecord& s : r.snapshots)
    snaps.push_back(snapshot_json(s));
  j["snapshots"] = snaps;
  j["expectations"] = expectations_json(r.expectations);
  j["counters"] = counters_json(r.counters);
  j["timing"] = {{"total_ns", r.total_ns}};
  return j.dump(2) + "\n";
}

}  // namespace pinmm
