// GFP flags: what an allocation may do and where its pages may come from.
//
// Linux counterpart: include/linux/gfp_types.h and gfp.h (6.12 bit
// values). gfp_zone() picks the highest zone an allocation may use (ZONE_MOVABLE
// only for __GFP_MOVABLE together with __GFP_HIGHMEM, i.e. GFP_HIGHUSER_MOVABLE),
// gfp_migratetype() the pageblock type it prefers, and current_gfp_context()
// applies the calling task's memalloc scopes: inside memalloc_pin_save()
// every allocation loses __GFP_MOVABLE, so it can come neither from
// ZONE_MOVABLE nor from CMA pageblocks.
#pragma once

#include <cstdint>
#include <string>

#include "pinmm/base/flags.h"
#include "pinmm/phys/mmzone.h"

namespace pinmm {

enum class Gfp : uint32_t {};
PINMM_DEFINE_FLAG_OPS(Gfp)

// Kernel spelling is kept on purpose, including the leading underscores.
inline constexpr Gfp GFP_NONE{0};
inline constexpr Gfp __GFP_DMA{1u << 0};
inline constexpr Gfp __GFP_HIGHMEM{1u << 1};
inline constexpr Gfp __GFP_DMA32{1u << 2};
inline constexpr Gfp __GFP_MOVABLE{1u << 3};
inline constexpr Gfp __GFP_RECLAIMABLE{1u << 4};
inline constexpr Gfp __GFP_HIGH{1u << 5};
inline constexpr Gfp __GFP_IO{1u << 6};
inline constexpr Gfp __GFP_FS{1u << 7};
inline constexpr Gfp __GFP_ZERO{1u << 8};
inline constexpr Gfp __GFP_DIRECT_RECLAIM{1u << 10};
inline constexpr Gfp __GFP_KSWAPD_RECLAIM{1u << 11};
inline constexpr Gfp __GFP_WRITE{1u << 12};
inline constexpr Gfp __GFP_NOWARN{1u << 13};
inline constexpr Gfp __GFP_RETRY_MAYFAIL{1u << 14};
inline constexpr Gfp __GFP_NOFAIL{1u << 15};
inline constexpr Gfp __GFP_NORETRY{1u << 16};
inline constexpr Gfp __GFP_MEMALLOC{1u << 17};
inline constexpr Gfp __GFP_COMP{1u << 18};
inline constexpr Gfp __GFP_NOMEMALLOC{1u << 19};
inline constexpr Gfp __GFP_HARDWALL{1u << 20};
inline constexpr Gfp __GFP_THISNODE{1u << 21};
inline constexpr Gfp __GFP_ACCOUNT{1u << 22};
inline constexpr Gfp __GFP_ZEROTAGS{1u << 23};
inline constexpr Gfp __GFP_BITS_MASK{(1u << 24) - 1};

inline constexpr Gfp __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
inline constexpr Gfp GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32 | __GFP_MOVABLE;
inline constexpr Gfp GFP_MOVABLE_MASK = __GFP_RECLAIMABLE | __GFP_MOVABLE;

inline constexpr Gfp GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
inline constexpr Gfp GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
inline constexpr Gfp GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT;
inline constexpr Gfp GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN;
inline constexpr Gfp GFP_NOIO = __GFP_RECLAIM;
inline constexpr Gfp GFP_NOFS = __GFP_RECLAIM | __GFP_IO;
inline constexpr Gfp GFP_USER = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL;
inline constexpr Gfp GFP_DMA = __GFP_DMA;
inline constexpr Gfp GFP_DMA32 = __GFP_DMA32;
inline constexpr Gfp GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM;
inline constexpr Gfp GFP_HIGHUSER_MOVABLE = GFP_HIGHUSER | __GFP_MOVABLE;
inline constexpr Gfp GFP_TRANSHUGE_LIGHT =
    (GFP_HIGHUSER_MOVABLE | __GFP_COMP | __GFP_NOMEMALLOC | __GFP_NOWARN) & ~__GFP_RECLAIM;
inline constexpr Gfp GFP_TRANSHUGE = GFP_TRANSHUGE_LIGHT | __GFP_DIRECT_RECLAIM;

// Highest zone the allocation may use (the kernel's GFP_ZONE_TABLE with
// DMA/DMA32 folded into ZONE_NORMAL).
ZoneType gfp_zone(Gfp gfp);
// Pageblock type the allocation prefers. __GFP_MOVABLE together with
// __GFP_RECLAIMABLE is invalid and treated as movable (the kernel WARNs).
MigrateType gfp_migratetype(Gfp gfp);
// The flags as the calling task's memalloc scopes leave them:
// PF_MEMALLOC_PIN strips __GFP_MOVABLE, PF_MEMALLOC_NOIO strips IO and FS,
// PF_MEMALLOC_NOFS strips FS.
Gfp current_gfp_context(Gfp gfp);
// As the kernel's show_gfp_flags() prints them: "GFP_KERNEL|__GFP_ZERO",
// "none" for no flags, leftover bits in hex.
std::string gfp_to_string(Gfp gfp);

}  // namespace pinmm
