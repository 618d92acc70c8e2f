// The result of a layer's validate(): every broken invariant, in words.
//
// validate() functions are O(n) checks that tests and the stress harness run
// between phases, at quiescent points. They read state and never change it.
#pragma once

#include <string>
#include <vector>

#include <fmt/core.h>

namespace pinmm {

class ValidationReport {
 public:
  template <typename... Args>
  void fail(fmt::format_string<Args...> format, Args&&... args) {
    if (problems_.size() < kMaxProblems) {
      problems_.push_back(fmt::format(format, std::forward<Args>(args)...));
    }
    ++count_;
  }
  void merge(const ValidationReport& other) {
    for (const auto& p : other.problems_) {
      if (problems_.size() < kMaxProblems) problems_.push_back(p);
    }
    count_ += other.count_;
  }

  bool ok() const { return count_ == 0; }
  // The first problems found (at most kMaxProblems are kept) and the total.
  const std::vector<std::string>& problems() const { return problems_; }
  size_t count() const { return count_; }
  std::string to_string() const;

 private:
  static constexpr size_t kMaxProblems = 64;
  std::vector<std::string> problems_;
  size_t count_ = 0;
};

}  // namespace pinmm
