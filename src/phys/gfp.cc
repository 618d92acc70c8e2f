#include "pinmm/phys/gfp.h"

#include <array>
#include <utility>

#include <fmt/format.h>

#include "pinmm/base/task.h"

namespace pinmm {

ZoneType gfp_zone(Gfp gfp) {
  // GFP_ZONE_TABLE: only __GFP_MOVABLE together with __GFP_HIGHMEM reaches
  // ZONE_MOVABLE; __GFP_MOVABLE alone means "movable migratetype, normal zone".
  if (any(gfp & __GFP_MOVABLE) && any(gfp & __GFP_HIGHMEM)) return ZONE_MOVABLE;
  return ZONE_NORMAL;
}

MigrateType gfp_migratetype(Gfp gfp) {
  if (any(gfp & __GFP_MOVABLE)) return MIGRATE_MOVABLE;
  if (any(gfp & __GFP_RECLAIMABLE)) return MIGRATE_RECLAIMABLE;
  return MIGRATE_UNMOVABLE;
}

Gfp current_gfp_context(Gfp gfp) {
  const uint32_t pflags = current().flags();
  if (pflags & PF_MEMALLOC_NOIO) {
    gfp &= ~(__GFP_IO | __GFP_FS);
  } else if (pflags & PF_MEMALLOC_NOFS) {
    gfp &= ~__GFP_FS;
  }
  if (pflags & PF_MEMALLOC_PIN) gfp &= ~__GFP_MOVABLE;
  return gfp;
}

std::string gfp_to_string(Gfp gfp) {
  // __def_gfpflag_names order: composite names first, so the longest
  // matching name wins, then single bits.
  static const std::array<std::pair<Gfp, const char*>, 35> kNames = {{
      {GFP_TRANSHUGE, "GFP_TRANSHUGE"},
      {GFP_TRANSHUGE_LIGHT, "GFP_TRANSHUGE_LIGHT"},
      {GFP_HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"},
      {GFP_HIGHUSER, "GFP_HIGHUSER"},
      {GFP_USER, "GFP_USER"},
      {GFP_KERNEL_ACCOUNT, "GFP_KERNEL_ACCOUNT"},
      {GFP_KERNEL, "GFP_KERNEL"},
      {GFP_NOFS, "GFP_NOFS"},
      {GFP_ATOMIC, "GFP_ATOMIC"},
      {GFP_NOIO, "GFP_NOIO"},
      {GFP_NOWAIT, "GFP_NOWAIT"},
      {GFP_DMA, "GFP_DMA"},
      {__GFP_HIGHMEM, "__GFP_HIGHMEM"},
      {GFP_DMA32, "GFP_DMA32"},
      {__GFP_HIGH, "__GFP_HIGH"},
      {__GFP_IO, "__GFP_IO"},
      {__GFP_FS, "__GFP_FS"},
      {__GFP_NOWARN, "__GFP_NOWARN"},
      {__GFP_RETRY_MAYFAIL, "__GFP_RETRY_MAYFAIL"},
      {__GFP_NOFAIL, "__GFP_NOFAIL"},
      {__GFP_NORETRY, "__GFP_NORETRY"},
      {__GFP_COMP, "__GFP_COMP"},
      {__GFP_ZERO, "__GFP_ZERO"},
      {__GFP_NOMEMALLOC, "__GFP_NOMEMALLOC"},
      {__GFP_MEMALLOC, "__GFP_MEMALLOC"},
      {__GFP_HARDWALL, "__GFP_HARDWALL"},
      {__GFP_THISNODE, "__GFP_THISNODE"},
      {__GFP_RECLAIMABLE, "__GFP_RECLAIMABLE"},
      {__GFP_MOVABLE, "__GFP_MOVABLE"},
      {__GFP_ACCOUNT, "__GFP_ACCOUNT"},
      {__GFP_WRITE, "__GFP_WRITE"},
      {__GFP_RECLAIM, "__GFP_RECLAIM"},
      {__GFP_DIRECT_RECLAIM, "__GFP_DIRECT_RECLAIM"},
      {__GFP_KSWAPD_RECLAIM, "__GFP_KSWAPD_RECLAIM"},
      {__GFP_ZEROTAGS, "__GFP_ZEROTAGS"},
  }};
  if (!any(gfp)) return "none";
  std::string out;
  for (const auto& [mask, name] : kNames) {
    if ((gfp & mask) == mask) {
      if (!out.empty()) out += '|';
      out += name;
      gfp &= ~mask;
    }
  }
  if (any(gfp)) {
    if (!out.empty()) out += '|';
    out += fmt::format("{:#x}", raw(gfp));
  }
  return out;
}

}  // namespace pinmm
