#include "pinmm/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace pinmm {
namespace {
std::atomic<uint64_t> g_warn_count{0};
}  // namespace

void mm_bug(const char* cond, const char* file, int line, const std::string& state) {
  std::fprintf(stderr, "pinmm BUG at %s:%d: %s\n", file, line, cond);
  if (!state.empty()) std::fprintf(stderr, "%s\n", state.c_str());
  std::fflush(stderr);
  std::abort();
}

void mm_warn(const char* cond, const char* file, int line, bool first, const std::string& state) {
  g_warn_count.fetch_add(1, std::memory_order_relaxed);
  if (!first) return;
  std::fprintf(stderr, "pinmm WARNING at %s:%d: %s\n", file, line, cond);
  if (!state.empty()) std::fprintf(stderr, "%s\n", state.c_str());
}

uint64_t mm_warn_count() { return g_warn_count.load(std::memory_order_relaxed); }

}  // namespace pinmm
