// `pinmm stress` (stress_cmd.h).
#include "stress_cmd.h"

#include <cstdio>

#include <fmt/format.h>

#include "pinmm/stress/stress.h"

namespace pinmm::cli {

StressCommand::StressCommand(CLI::App& app) {
  cmd_ = app.add_subcommand(
      "stress", "Threads run a seeded random mix of everything, checked all along (see --help)");
  cmd_->add_option("--seconds", seconds_, "How long to run")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  cmd_->add_option("--threads", threads_, "Actor threads")
      ->check(CLI::Range(1u, 64u))
      ->capture_default_str();
  cmd_->add_option("--seed", seed_, "Seed of the actors' choices")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd_->add_option("--validate-every-ms", validate_every_ms_,
                   "Stop the actors and validate every layer this often")
      ->check(CLI::Range(10u, 3600000u))
      ->capture_default_str();
  cmd_->add_flag("--quiet", quiet_, "Print only the last line");
  machine_.memory = "1GiB";
  machine_.nodes = 2;
  machine_.movable = "512MiB";
  machine_.cma = {"64MiB"};
  machine_.hotplug_space = "256MiB";
  machine_.device_space = "128MiB";
  machine_.add_to(*cmd_);
}

int StressCommand::run() {
  auto config = machine_.to_config();
  if (auto* problems = std::get_if<std::vector<std::string>>(&config)) {
    for (const auto& p : *problems)
      fmt::print(stderr, "pinmm stress: error: {}\n", p);
    return 2;
  }
  stress::StressOptions opts;
  opts.machine = std::get<MachineConfig>(config);
  opts.threads = threads_;
  opts.seed = seed_;
  opts.duration = std::chrono::milliseconds(static_cast<int64_t>(seconds_ * 1000));
  opts.validate_every = std::chrono::milliseconds(validate_every_ms_);
  if (!quiet_) {
    fmt::print("pinmm stress: {} thread(s) for {:.1f} s, seed {}, {} machine\n", threads_, seconds_,
               seed_, opts.machine.total_memory().to_string());
    opts.on_check = [](MemorySystem&, uint64_t ops) {
      fmt::print("  checked at {} ops\n", ops);
      std::fflush(stdout);
    };
  }
  const stress::StressResult r = stress::run_stress(opts);
  if (!quiet_) {
    fmt::print("ops by kind:");
    for (const auto& [kind, n] : r.ops_by_kind)
      fmt::print(" {} {}", kind, n);
    fmt::print("\n{} quiescent checks\n", r.checks);
    for (const std::string& p : r.problems)
      fmt::print("problem: {}\n", p);
  }
  fmt::print("{}\n", r.summary());
  return r.ok() ? 0 : 1;
}

}  // namespace pinmm::cli
