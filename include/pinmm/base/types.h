// Strong types for the quantities of memory management: page frame numbers,
// physical and virtual addresses, allocation orders, page counts and byte
// sizes. No int addresses and no -1 sentinels: absence is std::optional.
//
// Linux counterpart: unsigned long pfn, phys_addr_t, unsigned long addr,
// unsigned int order, and memparse()/string_get_size() for sizes.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pinmm {

inline constexpr unsigned PAGE_SHIFT = 12;
inline constexpr uint64_t PAGE_SIZE = uint64_t{1} << PAGE_SHIFT;
inline constexpr uint64_t PAGE_MASK = ~(PAGE_SIZE - 1);

// A number of base (4 KiB) pages.
class PageCount {
 public:
  constexpr PageCount() = default;
  constexpr explicit PageCount(uint64_t n) : n_(n) {}
  constexpr uint64_t value() const { return n_; }
  constexpr uint64_t bytes() const { return n_ << PAGE_SHIFT; }
  constexpr auto operator<=>(const PageCount&) const = default;
  constexpr PageCount operator+(PageCount o) const { return PageCount(n_ + o.n_); }
  constexpr PageCount operator-(PageCount o) const { return PageCount(n_ - o.n_); }
  constexpr PageCount& operator+=(PageCount o) {
    n_ += o.n_;
    return *this;
  }
  constexpr PageCount& operator-=(PageCount o) {
    n_ -= o.n_;
    return *this;
  }

 private:
  uint64_t n_ = 0;
};

// Allocation order: a block of 2^order base pages.
class Order {
 public:
  constexpr Order() = default;
  constexpr explicit Order(unsigned order) : order_(static_cast<uint8_t>(order)) {}
  constexpr unsigned value() const { return order_; }
  constexpr PageCount nr_pages() const { return PageCount(uint64_t{1} << order_); }
  constexpr auto operator<=>(const Order&) const = default;

 private:
  uint8_t order_ = 0;
};

class PhysAddr;

// Page frame number: index of a 4 KiB frame in the machine's physical space.
class Pfn {
 public:
  constexpr Pfn() = default;
  constexpr explicit Pfn(uint64_t pfn) : pfn_(pfn) {}
  constexpr uint64_t value() const { return pfn_; }
  constexpr PhysAddr phys() const;
  constexpr auto operator<=>(const Pfn&) const = default;
  constexpr Pfn operator+(PageCount n) const { return Pfn(pfn_ + n.value()); }
  constexpr Pfn operator-(PageCount n) const { return Pfn(pfn_ - n.value()); }
  constexpr PageCount operator-(Pfn o) const { return PageCount(pfn_ - o.pfn_); }
  constexpr Pfn& operator+=(PageCount n) {
    pfn_ += n.value();
    return *this;
  }
  constexpr Pfn& operator++() {
    ++pfn_;
    return *this;
  }
  // Round down / up to a multiple of 2^order pages.
  constexpr Pfn align_down(Order o) const { return Pfn(pfn_ & ~(o.nr_pages().value() - 1)); }
  constexpr Pfn align_up(Order o) const {
    const uint64_t n = o.nr_pages().value();
    return Pfn((pfn_ + n - 1) & ~(n - 1));
  }
  constexpr bool is_aligned(Order o) const { return (pfn_ & (o.nr_pages().value() - 1)) == 0; }

 private:
  uint64_t pfn_ = 0;
};

class PhysAddr {
 public:
  constexpr PhysAddr() = default;
  constexpr explicit PhysAddr(uint64_t addr) : addr_(addr) {}
  constexpr uint64_t value() const { return addr_; }
  constexpr Pfn pfn() const { return Pfn(addr_ >> PAGE_SHIFT); }
  constexpr auto operator<=>(const PhysAddr&) const = default;

 private:
  uint64_t addr_ = 0;
};

constexpr PhysAddr Pfn::phys() const { return PhysAddr(pfn_ << PAGE_SHIFT); }

// A user (or kernel) virtual address in a simulated address space.
class VirtAddr {
 public:
  constexpr VirtAddr() = default;
  constexpr explicit VirtAddr(uint64_t addr) : addr_(addr) {}
  constexpr uint64_t value() const { return addr_; }
  constexpr VirtAddr page_align_down() const { return VirtAddr(addr_ & PAGE_MASK); }
  constexpr bool is_page_aligned() const { return (addr_ & ~PAGE_MASK) == 0; }
  constexpr auto operator<=>(const VirtAddr&) const = default;
  constexpr VirtAddr operator+(uint64_t bytes) const { return VirtAddr(addr_ + bytes); }
  constexpr uint64_t operator-(VirtAddr o) const { return addr_ - o.addr_; }

 private:
  uint64_t addr_ = 0;
};

// A size in bytes, parsed from and printed as "4KiB", "2MiB", "1GiB".
class Bytes {
 public:
  constexpr Bytes() = default;
  constexpr explicit Bytes(uint64_t n) : n_(n) {}
  static constexpr Bytes KiB(uint64_t n) { return Bytes(n << 10); }
  static constexpr Bytes MiB(uint64_t n) { return Bytes(n << 20); }
  static constexpr Bytes GiB(uint64_t n) { return Bytes(n << 30); }
  static constexpr Bytes of_pages(PageCount p) { return Bytes(p.bytes()); }

  constexpr uint64_t value() const { return n_; }
  // Whole pages (rounded down).
  constexpr PageCount pages() const { return PageCount(n_ >> PAGE_SHIFT); }
  constexpr auto operator<=>(const Bytes&) const = default;
  constexpr Bytes operator+(Bytes o) const { return Bytes(n_ + o.n_); }
  constexpr Bytes operator-(Bytes o) const { return Bytes(n_ - o.n_); }

  // Accepts "<n>", "<n>B", "<n>K|M|G|T", "<n>KiB|MiB|GiB|TiB" (binary units,
  // like the kernel's memparse). Empty optional on malformed input or overflow.
  static std::optional<Bytes> parse(std::string_view text);
  // The largest binary unit that divides the size exactly: "4GiB", "6KiB", "100B".
  std::string to_string() const;

 private:
  uint64_t n_ = 0;
};

}  // namespace pinmm
