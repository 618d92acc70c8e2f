// The data oracle (oracle.h).
#include "oracle.h"

#include <fmt/format.h>

#include "pinmm/base/errno.h"
#include "pinmm/vm/access.h"
#include "run.h"

namespace pinmm {

namespace {

// splitmix64.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

Mapping::Mapping(MappingKind k, VirtAddr a, uint64_t nr_pages)
    : kind(k),
      addr(a),
      pages(nr_pages),
      expect(std::make_shared<std::vector<uint64_t>>(nr_pages, 0)),
      mapped(nr_pages, true) {}

bool Mapping::shared() const {
  return kind == MappingKind::kSharedAnon || kind == MappingKind::kShmem ||
         kind == MappingKind::kFile;
}

Mapping Mapping::fork() const {
  Mapping child = *this;
  if (!shared()) child.expect = std::make_shared<std::vector<uint64_t>>(*expect);
  return child;
}

uint64_t Stamps::next(uint64_t page) {
  const uint64_t v = ++writes_;
  return mix(seed_ ^ mix(v) ^ (page << 20)) | 1;
}

StepResult verify(const Target& t, Unmapped unmapped) {
  CurrentTask current(*t.proc->task);
  uint64_t bad = 0, verified = 0;
  std::string first_bad;
  for (uint64_t i = 0; i < t.pages; ++i) {
    const uint64_t page = t.first + i;
    if (!t.map->mapped[page] && unmapped == Unmapped::kSkip) continue;
    auto v = read_user<uint64_t>(*t.proc->mm, t.addr() + i * PAGE_SIZE);
    if (!v.ok()) {
      StepResult r =
          step_fail(v.error().code(),
                    fmt::format("reading page {} ({} pages verified before it)", page, verified));
      r.value = static_cast<int64_t>(verified);
      return r;
    }
    ++verified;
    const uint64_t want = (*t.map->expect)[page];
    if (*v != want && bad++ == 0)
      first_bad = fmt::format("page {}: expected {:#x}, found {:#x}", page, want, *v);
  }
  if (bad != 0) return step_fail(EIO, fmt::format("{} pages lost their data; {}", bad, first_bad));
  return step_ok(static_cast<int64_t>(verified),
                 fmt::format("{} pages read and verified", verified));
}

}  // namespace pinmm
