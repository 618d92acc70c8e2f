// The HTML report of a scenario run: one self-contained file (inline CSS
// and SVG, no scripts, nothing fetched) that a person opens in a browser.
//
// Sections: the verdict and the machine; every memory-map snapshot as an
// SVG grid of pageblocks (one square each, a row per memory block),
// coloured by state (free, movable in use, unmovable, pinned, long-term
// pinned, isolated, offline, device), with the zone as a bar along the
// bottom and a non-movable migratetype as a corner mark, a legend, and a tooltip per
// pageblock (PFN range, node, zone, migratetype, page counts, who pins it);
// the chart counters over the steps as small line charts; the step table;
// the who-pins reports of steps that failed on pins; the expectations.
#pragma once

#include <string>

#include "pinmm/scenario/runner.h"

namespace pinmm {

std::string scenario_report_html(const RunReport& report);

}  // namespace pinmm
