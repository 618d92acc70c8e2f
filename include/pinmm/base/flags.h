// Bit operators for typed flag enums (GFP, FOLL_*, VM_*, task flags), so that
// flags keep kernel names while staying type-checked.
#pragma once

#include <type_traits>

// Declares |, &, ^, ~, |=, &=, ^= for an enum class used as a bit set, plus
// any(x) (at least one bit set).
#define PINMM_DEFINE_FLAG_OPS(E)                                                     \
  constexpr E operator|(E a, E b) {                                                  \
    using U = std::underlying_type_t<E>;                                             \
    return static_cast<E>(static_cast<U>(a) | static_cast<U>(b));                    \
  }                                                                                  \
  constexpr E operator&(E a, E b) {                                                  \
    using U = std::underlying_type_t<E>;                                             \
    return static_cast<E>(static_cast<U>(a) & static_cast<U>(b));                    \
  }                                                                                  \
  constexpr E operator^(E a, E b) {                                                  \
    using U = std::underlying_type_t<E>;                                             \
    return static_cast<E>(static_cast<U>(a) ^ static_cast<U>(b));                    \
  }                                                                                  \
  constexpr E operator~(E a) {                                                       \
    using U = std::underlying_type_t<E>;                                             \
    return static_cast<E>(~static_cast<U>(a));                                       \
  }                                                                                  \
  constexpr E& operator|=(E& a, E b) { return a = a | b; }                           \
  constexpr E& operator&=(E& a, E b) { return a = a & b; }                           \
  constexpr E& operator^=(E& a, E b) { return a = a ^ b; }                           \
  constexpr bool any(E a) { return static_cast<std::underlying_type_t<E>>(a) != 0; } \
  constexpr std::underlying_type_t<E> raw(E a) { return static_cast<std::underlying_type_t<E>>(a); }
