// /proc files of a MemorySystem, in the kernel's text layouts.
//
// Linux counterpart: mm/vmstat.c — /proc/buddyinfo (frag_show),
// /proc/pagetypeinfo (pagetypeinfo_show), /proc/zoneinfo (zoneinfo_show) and
// /proc/vmstat (vmstat_show). Zones are the ones pinmm models (Normal,
// Movable, Device); migratetypes include CMA and Isolate. pinmm has no
// per-CPU page lists, so zoneinfo's pagesets show what a zone looks like
// under zone_pcp_disable(): count 0, high 0, batch 1, and a stat threshold
// of 0 because pinmm's counters are never batched.
#pragma once

#include <string>

#include "pinmm/phys/memory_system.h"

namespace pinmm {

std::string proc_buddyinfo(const MemorySystem& ms);
std::string proc_pagetypeinfo(const MemorySystem& ms);
std::string proc_zoneinfo(const MemorySystem& ms);
std::string proc_vmstat(const MemorySystem& ms);

}  // namespace pinmm
