// The HTML report (html_report.h).
#include "pinmm/report/html_report.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "pinmm/base/errno.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

namespace {

// Text for HTML content and attribute values.
std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// One colour per PageblockState, in its order.
constexpr std::array<const char*, static_cast<size_t>(PageblockState::kNrStates)> kColours = {
    "#e8e8e8",  // free
    "#7cb5ec",  // movable in use
    "#8c6d31",  // unmovable
    "#f7a35c",  // pinned
    "#d62728",  // long-term pinned
    "#9467bd",  // isolated
    "#404040",  // offline
    "#2ca02c",  // device
};

constexpr const char* kStyle = R"css(
body { font-family: sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; }
.pass { color: #2ca02c; } .fail { color: #d62728; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; font-size: 13px; vertical-align: top; }
th { background: #f4f4f4; }
td.bad { background: #fde0e0; }
.legend span { display: inline-block; margin-right: 1em; font-size: 13px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }
.charts svg { margin: 0 1em 1em 0; }
pre { background: #f8f8f8; padding: 0.5em; font-size: 12px; overflow-x: auto; }
)css";

// The zone is a bar along the bottom of each square; a pageblock's
// migratetype other than Movable is a mark in its top-left corner.
const char* zone_colour(ZoneType z) {
  switch (z) {
    case ZONE_NORMAL:
      return "#999999";
    case ZONE_MOVABLE:
      return "#1f77b4";
    default:
      return "#2ca02c";
  }
}
const char* migratetype_colour(MigrateType mt) {
  switch (mt) {
    case MIGRATE_UNMOVABLE:
      return "#8c6d31";
    case MIGRATE_RECLAIMABLE:
      return "#bcbd22";
    case MIGRATE_CMA:
      return "#e377c2";
    case MIGRATE_ISOLATE:
      return "#9467bd";
    default:
      return nullptr;  // movable: no mark
  }
}

std::string legend() {
  std::string out = "<div class=\"legend\">state: ";
  for (size_t i = 0; i < kColours.size(); ++i) {
    out += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", kColours[i],
                       pageblock_state_name(static_cast<PageblockState>(i)));
  }
  out += "<br>zone (bar at the bottom): ";
  for (ZoneType z : {ZONE_NORMAL, ZONE_MOVABLE, ZONE_DEVICE})
    out += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", zone_colour(z),
                       zone_type_name(z));
  out += "<br>pageblock migratetype (corner mark; none for Movable): ";
  for (MigrateType mt : {MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_CMA, MIGRATE_ISOLATE})
    out += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", migratetype_colour(mt),
                       migratetype_name(mt));
  return out + "</div>\n";
}

// A row per memory block: consecutive pageblocks with the same block
// number (pfn / blocks_per_row) share a row.
std::string memory_map_svg(const SnapshotRecord& s, size_t index, uint64_t per_row) {
  constexpr int kCell = 10;
  constexpr int kLabel = 70;
  if (s.map.blocks.empty()) return "<p>(no present memory)</p>\n";
  const uint64_t first_row = s.map.blocks.front().start.value() / pageblock_nr_pages / per_row;
  const uint64_t last_row = s.map.blocks.back().start.value() / pageblock_nr_pages / per_row;
  const uint64_t rows = last_row - first_row + 1;
  std::string out = fmt::format(
      "<svg class=\"memmap\" id=\"snapshot-{}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" "
      "height=\"{}\" role=\"img\" aria-label=\"memory map: {}\">\n",
      index, kLabel + static_cast<int>(per_row) * kCell + 2, static_cast<int>(rows) * kCell + 2,
      esc(s.label));
  uint64_t labelled_row = ~uint64_t{0};
  for (size_t i = 0; i < s.map.blocks.size(); ++i) {
    const PageblockInfo& b = s.map.blocks[i];
    const uint64_t nr = b.start.value() / pageblock_nr_pages;
    const uint64_t row = nr / per_row - first_row;
    const uint64_t col = nr % per_row;
    if (row != labelled_row) {
      labelled_row = row;
      out += fmt::format("<text x=\"0\" y=\"{}\" font-size=\"8\">pfn {:#x}</text>\n",
                         static_cast<int>(row) * kCell + 8, (nr - col) * pageblock_nr_pages);
    }
    std::string tip = fmt::format(
        "PFN {:#x}-{:#x}, node {}, {}, {}: {}; {} free, {} movable, {} unmovable, {} pinned ({} "
        "long-term)",
        b.start.value(), b.start.value() + pageblock_nr_pages - 1, b.nid, zone_type_name(b.zone),
        migratetype_name(b.migratetype), pageblock_state_name(b.state), b.free, b.movable,
        b.unmovable, b.pinned, b.longterm_pinned);
    if (i < s.pinners.size() && !s.pinners[i].empty()) tip += "; pinned by " + s.pinners[i];
    const int x = kLabel + static_cast<int>(col) * kCell;
    const int y = static_cast<int>(row) * kCell;
    out += fmt::format(
        "<g><title>{}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
        "fill=\"{}\"/><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"2\" fill=\"{}\"/>",
        esc(tip), x, y, kCell - 1, kCell - 1, kColours[static_cast<size_t>(b.state)], x,
        y + kCell - 3, kCell - 1, zone_colour(b.zone));
    if (const char* mark = migratetype_colour(b.migratetype))
      out +=
          fmt::format("<rect x=\"{}\" y=\"{}\" width=\"3\" height=\"3\" fill=\"{}\"/>", x, y, mark);
    out += "</g>\n";
  }
  return out + "</svg>\n";
}

// A small line chart of one counter over the steps.
std::string chart_svg(const std::string& name, const std::vector<int64_t>& values) {
  constexpr int kW = 260, kH = 60, kPad = 4;
  const auto [lo_it, hi_it] = std::minmax_element(values.begin(), values.end());
  const int64_t lo = *lo_it, hi = *hi_it;
  std::string points;
  for (size_t i = 0; i < values.size(); ++i) {
    const double x = kPad + (values.size() == 1 ? 0.0
                                                : static_cast<double>(i) * (kW - 2 * kPad) /
                                                      static_cast<double>(values.size() - 1));
    const double y =
        kH - 14 -
        (hi == lo ? 0.0
                  : static_cast<double>(values[i] - lo) * (kH - 24) / static_cast<double>(hi - lo));
    points += fmt::format("{:.1f},{:.1f} ", x, y);
  }
  return fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\">"
      "<rect width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#ddd\"/>"
      "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>"
      "<text x=\"4\" y=\"{}\" font-size=\"10\">{}: {} .. {} (last {})</text></svg>\n",
      kW, kH, kW, kH, points, kH - 3, esc(name), lo, hi, values.back());
}

}  // namespace

std::string scenario_report_html(const RunReport& r) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += fmt::format("<title>pinmm: {}</title>\n<style>{}</style>\n</head>\n<body>\n",
                   esc(r.scenario), kStyle);
  h += fmt::format("<h1>Scenario {} <span class=\"{}\">{}</span></h1>\n", esc(r.scenario),
                   r.passed ? "pass" : "fail", r.passed ? "PASS" : "FAIL");
  h +=
      fmt::format("<p>{}</p>\n<p>File {}, seed {}.</p>\n", esc(r.description), esc(r.file), r.seed);

  // The machine.
  std::string nodes;
  for (size_t i = 0; i < r.machine.nodes.size(); ++i) {
    nodes +=
        fmt::format("{}node {}: {} ({} movable)", i ? "; " : "", i,
                    r.machine.nodes[i].memory.to_string(), r.machine.nodes[i].movable.to_string());
  }
  std::string cma;
  for (const CmaConfig& c : r.machine.cma)
    cma += fmt::format("{}'{}' {} on node {}", cma.empty() ? "" : ", ", esc(c.name),
                       c.size.to_string(), c.nid);
  h += fmt::format(
      "<h2>Machine</h2>\n<p>{}; memory blocks of {}; CMA: {}; THP {}; long-term pins: {}.</p>\n",
      nodes, r.machine.block_size.to_string(), cma.empty() ? "none" : cma,
      thp_mode_name(r.machine.thp),
      r.machine.longterm_pin_policy == LongtermPinPolicy::kMigrate ? "migrate first" : "in place");

  // Memory maps.
  h += "<h2>Physical memory</h2>\n" + legend();
  const uint64_t per_row =
      std::max<uint64_t>(1, r.machine.block_size.value() / (pageblock_nr_pages * PAGE_SIZE));
  for (size_t i = 0; i < r.snapshots.size(); ++i) {
    const SnapshotRecord& s = r.snapshots[i];
    h += fmt::format("<h3>{} (after step {})</h3>\n", esc(s.label), esc(s.after_step));
    std::string counts;
    for (size_t k = 0; k < s.map.blocks_in_state.size(); ++k) {
      if (s.map.blocks_in_state[k] == 0) continue;
      counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", s.map.blocks_in_state[k],
                            pageblock_state_name(static_cast<PageblockState>(k)));
    }
    h += fmt::format("<p>Pageblocks: {}.</p>\n", counts);
    h += memory_map_svg(s, i, per_row);
  }
  if (r.snapshots.empty()) h += "<p>The scenario took no snapshots.</p>\n";

  // Counters over the steps.
  h += "<h2>Counters over the steps</h2>\n<div class=\"charts\">\n";
  for (size_t c = 0; c < std::size(kChartCounters); ++c) {
    std::vector<int64_t> series;
    if (c < r.start_levels.size()) series.push_back(r.start_levels[c]);
    for (const StepOutcome& o : r.steps) {
      if (c < o.levels.size()) series.push_back(o.levels[c]);
    }
    if (!series.empty()) h += chart_svg(kChartCounters[c], series);
  }
  h += "</div>\n";

  // Steps.
  h += "<h2>Steps</h2>\n<table>\n<tr><th>step</th><th>kind</th><th>title</th><th>result</th>"
       "<th>value</th><th>expected</th><th>time</th><th>detail</th></tr>\n";
  for (const StepOutcome& o : r.steps) {
    const std::string result = o.err == 0 ? "ok" : Errno(o.err).name();
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{:.2f} "
        "ms</td><td>{}</td></tr>\n",
        esc(o.id), o.kind, esc(o.title), o.expectation_ok ? "" : " class=\"bad\"", result, o.value,
        esc(o.expectation.empty() ? "ok" : o.expectation), static_cast<double>(o.elapsed_ns) / 1e6,
        esc(o.detail));
  }
  h += "</table>\n";

  // Who pins.
  h += "<h2>Who pins what</h2>\n";
  bool any = false;
  for (const StepOutcome& o : r.steps) {
    if (o.blockers.empty()) continue;
    any = true;
    h += fmt::format("<h3>Step {}: {}</h3>\n<pre>", esc(o.id), esc(o.title));
    for (const std::string& b : o.blockers)
      h += esc(b) + "\n";
    h += "</pre>\n";
  }
  if (!any) h += "<p>No step was blocked by pins.</p>\n";

  // Expectations.
  h += "<h2>Expectations</h2>\n<table>\n<tr><th>what</th><th>outcome</th><th>detail</th></tr>\n";
  for (const ExpectationOutcome& e : r.expectations) {
    h += fmt::format("<tr><td>{}</td><td{}>{}</td><td>{}</td></tr>\n", esc(e.what),
                     e.ok ? "" : " class=\"bad\"", e.ok ? "ok" : "FAILED", esc(e.detail));
  }
  h += "</table>\n</body>\n</html>\n";
  return h;
}

}  // namespace pinmm
