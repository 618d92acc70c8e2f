// FOLL_* flags and the argument and VMA checks every GUP entry point makes.
//
// Linux counterpart: enum with FOLL_* in include/linux/mm_types.h, the
// internal FOLL_* of mm/internal.h, is_valid_gup_args(), the allowed-flags
// check of gup_fast_fallback() and check_vma_flags() (mm/gup.c).
// KERNEL-SPEC 1.1-1.4 are the tables these follow, bit for bit and errno
// for errno.
#pragma once

#include <cstdint>
#include <string>

#include "pinmm/base/errno.h"
#include "pinmm/base/flags.h"

namespace pinmm {

class Vma;

enum class Foll : uint32_t {};
PINMM_DEFINE_FLAG_OPS(Foll)

inline constexpr Foll FOLL_NONE{0};
// Caller-visible (KERNEL-SPEC 1.1).
inline constexpr Foll FOLL_WRITE{1u << 0};
inline constexpr Foll FOLL_GET{1u << 1};
inline constexpr Foll FOLL_DUMP{1u << 2};
inline constexpr Foll FOLL_FORCE{1u << 3};
inline constexpr Foll FOLL_NOWAIT{1u << 4};
inline constexpr Foll FOLL_NOFAULT{1u << 5};
inline constexpr Foll FOLL_HWPOISON{1u << 6};
inline constexpr Foll FOLL_ANON{1u << 7};
inline constexpr Foll FOLL_LONGTERM{1u << 8};
inline constexpr Foll FOLL_SPLIT_PMD{1u << 9};
inline constexpr Foll FOLL_PCI_P2PDMA{1u << 10};
inline constexpr Foll FOLL_INTERRUPTIBLE{1u << 11};
inline constexpr Foll FOLL_HONOR_NUMA_FAULT{1u << 12};
// Internal (KERNEL-SPEC 1.2): callers may not pass these.
inline constexpr Foll FOLL_TOUCH{1u << 16};
inline constexpr Foll FOLL_TRIED{1u << 17};
inline constexpr Foll FOLL_REMOTE{1u << 18};
inline constexpr Foll FOLL_PIN{1u << 19};
inline constexpr Foll FOLL_FAST_ONLY{1u << 20};
inline constexpr Foll FOLL_UNLOCKABLE{1u << 21};
inline constexpr Foll FOLL_MADV_POPULATE{1u << 22};

inline constexpr Foll INTERNAL_GUP_FLAGS = FOLL_TOUCH | FOLL_TRIED | FOLL_REMOTE | FOLL_PIN |
                                           FOLL_FAST_ONLY | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE;

// What gup_fast_fallback accepts; anything else is -EINVAL there.
inline constexpr Foll GUP_FAST_ALLOWED_FLAGS = FOLL_WRITE | FOLL_LONGTERM | FOLL_FORCE | FOLL_PIN |
                                               FOLL_GET | FOLL_FAST_ONLY | FOLL_NOFAULT |
                                               FOLL_PCI_P2PDMA | FOLL_HONOR_NUMA_FAULT;

// "FOLL_WRITE|FOLL_PIN" (kernel names joined by '|'; "0" for none).
std::string foll_flags_to_string(Foll flags);

// is_valid_gup_args (KERNEL-SPEC 1.3): `flags` are the caller's, `to_set`
// what the entry point adds (FOLL_GET, FOLL_PIN, FOLL_TOUCH, …). On
// success `*out` holds the flags the walk uses (to_set added, and
// FOLL_UNLOCKABLE when `locked` is given). `has_pages`: the caller passed
// a pages array. `locked`: the caller's lock-state word, or nullptr.
bool is_valid_gup_args(bool has_pages, const int* locked, Foll* out, Foll flags, Foll to_set);

// check_vma_flags (KERNEL-SPEC 1.4): 0 or -EFAULT / -EOPNOTSUPP.
int check_vma_flags(const Vma* vma, Foll flags);

}  // namespace pinmm
