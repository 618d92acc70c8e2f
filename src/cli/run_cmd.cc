// `pinmm run` and `pinmm scenarios` (run_cmd.h).
#include "run_cmd.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "pinmm/base/errno.h"
#include "pinmm/base/host.h"
#include "pinmm/base/locks.h"
#include "pinmm/report/html_report.h"
#include "pinmm/report/json_report.h"
#include "pinmm/scenario/runner.h"

namespace pinmm::cli {

namespace {

std::string format_ns(uint64_t ns) {
  if (ns >= 10'000'000'000ull) return fmt::format("{:.1f} s", static_cast<double>(ns) / 1e9);
  if (ns >= 1'000'000ull) return fmt::format("{:.1f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.0f} us", static_cast<double>(ns) / 1e3);
}

// While a step runs longer than half a second on a terminal, a status
// line shows it and its elapsed time (rewritten in place, erased before
// the step's own line). Off a terminal, only the per-step lines appear.
class Progress {
 public:
  Progress() : enabled_(::isatty(STDOUT_FILENO) == 1) {
    if (enabled_) thread_ = std::thread([this] { loop(); });
  }
  ~Progress() {
    if (!enabled_) return;
    {
      MutexGuard g(lock_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void start(const std::string& id, const std::string& title) EXCLUDES(lock_) {
    MutexGuard g(lock_);
    label_ = fmt::format("[{:>4}] running  {}", id, title);
    since_ = std::chrono::steady_clock::now();
    active_ = true;
  }
  // Erases the status line (before a step's result is printed).
  void finish() EXCLUDES(lock_) {
    MutexGuard g(lock_);
    active_ = false;
    if (shown_) {
      fmt::print("\r\033[K");
      shown_ = false;
    }
  }

 private:
  void loop() EXCLUDES(lock_) {
    MutexGuard g(lock_);
    while (!stop_) {
      cv_.wait_for(lock_, std::chrono::milliseconds(200));
      if (!active_) continue;
      const auto elapsed = std::chrono::steady_clock::now() - since_;
      if (elapsed < std::chrono::milliseconds(500)) continue;
      const double s = std::chrono::duration<double>(elapsed).count();
      // The step's length is not known in advance: the bar fills over ten
      // seconds and starts again.
      const auto filled = static_cast<size_t>(s * 2) % 21;
      fmt::print("\r\033[K{} [{:<20}] {:.1f} s", label_, std::string(filled, '#'), s);
      std::fflush(stdout);
      shown_ = true;
    }
  }

  const bool enabled_;
  Mutex lock_{LockRank::kLeaf};
  std::condition_variable_any cv_;
  std::thread thread_;
  std::string label_ GUARDED_BY(lock_);
  std::chrono::steady_clock::time_point since_ GUARDED_BY(lock_);
  bool active_ GUARDED_BY(lock_) = false;
  bool shown_ GUARDED_BY(lock_) = false;
  bool stop_ GUARDED_BY(lock_) = false;
};

void print_step(const StepOutcome& o) {
  const std::string result = o.err == 0 ? "ok" : Errno(o.err).name();
  fmt::print("[{:>4}] {:<7} {:>9}  {}: {}\n", o.id, o.expectation_ok ? result : result + "!",
             format_ns(o.elapsed_ns), o.title, o.detail);
  if (!o.expectation_ok)
    fmt::print("        FAILED: expected {}, got {}, value {}\n", o.expectation, result, o.value);
  for (const ExpectationOutcome& c : o.checks) {
    fmt::print("        {} {}: {}{}\n", c.ok ? "ok  " : "FAIL", c.what, c.detail,
               c.pos.line > 0 ? fmt::format(" ({})", c.pos.to_string()) : "");
  }
  if (o.err != 0 || !o.expectation_ok) {
    // The first few; the JSON report has them all.
    constexpr size_t kShown = 6;
    for (size_t i = 0; i < o.blockers.size() && i < kShown; ++i)
      fmt::print("        who pins: {}\n", o.blockers[i]);
    if (o.blockers.size() > kShown)
      fmt::print("        who pins: … {} more lines in the JSON report\n",
                 o.blockers.size() - kShown);
  }
  std::fflush(stdout);
}

void print_summary(const RunReport& r) {
  // The counters that moved most (by absolute change).
  std::vector<CounterChange> moved = r.counters;
  std::stable_sort(moved.begin(), moved.end(), [](const CounterChange& a, const CounterChange& b) {
    return std::abs(a.after - a.before) > std::abs(b.after - b.before);
  });
  if (moved.size() > 12) moved.resize(12);
  fmt::print("counters that moved:\n");
  for (const CounterChange& c : moved)
    fmt::print("  {:<32} {:>12} -> {:<12} ({:+})\n", c.name, c.before, c.after, c.after - c.before);
  fmt::print("expectations:\n");
  for (const ExpectationOutcome& e : r.expectations) {
    fmt::print("  {} {}: {}{}\n", e.ok ? "ok  " : "FAIL", e.what, e.detail,
               e.pos.line > 0 ? fmt::format(" ({})", e.pos.to_string()) : "");
  }
  const auto failed_steps = std::count_if(r.steps.begin(), r.steps.end(),
                                          [](const StepOutcome& o) { return !o.expectation_ok; });
  if (failed_steps > 0)
    fmt::print("  FAIL {} step(s) did not do what was expected\n", failed_steps);
  // Who pins what, for every step that failed on pins.
  for (const StepOutcome& o : r.steps) {
    if (o.expectation_ok || o.blockers.empty()) continue;
    fmt::print("who pins (step {}, {}):\n", o.id, o.title);
    for (size_t i = 0; i < o.blockers.size() && i < 10; ++i)
      fmt::print("  {}\n", o.blockers[i]);
    if (o.blockers.size() > 10)
      fmt::print("  … {} more in the JSON report\n", o.blockers.size() - 10);
  }
}

}  // namespace

Scenario load_scenario_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ScenarioError(SourcePos{path, 0, 0}, "cannot read the file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_scenario(text.str(), path);
}

RunCommand::RunCommand(CLI::App& app) {
  cmd_ = app.add_subcommand("run", "Run a scenario (the built-in 'default' if none is given)");
  cmd_->add_option("file", file_, "A scenario file (docs/scenarios.md)");
  cmd_->add_option("--builtin", builtin_, "Run a built-in scenario (see `pinmm scenarios`)");
  cmd_->add_option("--seed", seed_, "Seed (overrides the scenario's)")
      ->check(CLI::NonNegativeNumber);
  cmd_->add_option("--json", json_, "Write the JSON report to this file");
  cmd_->add_option("--html", html_, "Write the HTML report (one self-contained page) to this file");
  cmd_->add_option("--trace", trace_, "Write the run's trace events as ftrace text to this file");
  cmd_->add_flag("--quiet", quiet_, "Print nothing; the exit status tells");
  cmd_->add_flag("--ignore-host-memory", ignore_host_memory_,
                 "Run even if the machine needs more host memory than is available");
}

int RunCommand::run() {
  if (!file_.empty() && !builtin_.empty()) {
    fmt::print(stderr, "pinmm: error: give a scenario file or --builtin, not both\n");
    return 2;
  }
  if (cmd_->count("--builtin") > 0 && builtin_.empty()) {
    fmt::print(stderr, "pinmm: error: --builtin needs a name (see `pinmm scenarios`)\n");
    return 2;
  }
  Scenario s;
  try {
    if (!file_.empty()) {
      s = load_scenario_file(file_);
    } else {
      const std::string name = builtin_.empty() ? "default" : builtin_;
      const BuiltinScenario* b = find_builtin_scenario(name);
      if (b == nullptr) {
        fmt::print(stderr, "pinmm: error: no built-in scenario '{}' (see `pinmm scenarios`)\n",
                   name);
        return 2;
      }
      s = parse_scenario(b->yaml, fmt::format("builtin:{}", name));
    }
  } catch (const ScenarioError& e) {
    fmt::print(stderr, "pinmm: error: {}\n", e.what());
    return 2;
  }
  if (!ignore_host_memory_) {
    if (auto why = host_memory_problem(s.machine.host_bytes_at_boot(), "the scenario's machine")) {
      fmt::print(stderr, "pinmm: error: {}: {}\n", s.machine_pos.to_string(), *why);
      return 2;
    }
  }
  if (!quiet_) {
    fmt::print("pinmm run: scenario '{}' ({})\n", s.name, s.file);
    if (!s.description.empty()) fmt::print("  {}\n", s.description);
  }
  RunOptions opts;
  opts.seed = seed_;
  opts.trace = !trace_.empty();
  std::optional<Progress> progress;
  if (!quiet_) {
    progress.emplace();
    opts.on_step_start = [&progress](const std::string& id, const std::string& title) {
      progress->start(id, title);
    };
    opts.on_step = [&progress](const StepOutcome& o) {
      progress->finish();
      print_step(o);
    };
  }
  RunReport r;
  try {
    r = run_scenario(s, opts);
  } catch (const ScenarioError& e) {
    fmt::print(stderr, "pinmm: error: {}\n", e.what());
    return 2;
  }
  const std::pair<const std::string*, std::string> outputs[] = {
      {&json_, json_.empty() ? "" : scenario_report_json(r)},
      {&html_, html_.empty() ? "" : scenario_report_html(r)},
      {&trace_, r.trace_text},
  };
  for (const auto& [path, text] : outputs) {
    if (path->empty()) continue;
    std::ofstream out(*path);
    out << text;
    if (!out) {
      fmt::print(stderr, "pinmm: error: cannot write {}\n", *path);
      return 2;
    }
  }
  if (!quiet_) {
    print_summary(r);
    if (!json_.empty()) fmt::print("report: {}\n", json_);
    if (!html_.empty()) fmt::print("report: {}\n", html_);
    if (!trace_.empty()) fmt::print("trace: {} (ftrace text; Perfetto opens it)\n", trace_);
    fmt::print("{}: scenario '{}' {} in {}\n", r.passed ? "PASS" : "FAIL", r.scenario,
               r.passed ? "held every expectation" : "did not hold", format_ns(r.total_ns));
  }
  return r.passed ? 0 : 1;
}

int list_scenarios() {
  for (const BuiltinScenario& b : builtin_scenarios())
    fmt::print("{:<14} {}\n", b.name, b.summary);
  return 0;
}

}  // namespace pinmm::cli
