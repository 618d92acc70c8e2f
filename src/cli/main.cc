// pinmm: the command line.
#include <cstdio>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "gup_test_cmd.h"
#include "machine_options.h"
#include "pinmm/base/inject.h"
#include "pinmm/gup/gup.h"
#include "pinmm/machine/machine.h"
#include "pinmm/migrate/target.h"
#include "pinmm/phys/memory_map.h"
#include "pinmm/report/proc.h"
#include "pinmm/report/sysfs.h"
#include "pinmm_version.h"
#include "run_cmd.h"
#include "stress_cmd.h"

namespace {

// Bad user input: say what is wrong, exit with status 2.
int usage_error(const std::vector<std::string>& problems) {
  for (const auto& p : problems)
    fmt::print(stderr, "pinmm: error: {}\n", p);
  return 2;
}

int dump(const pinmm::MachineConfig& config, const std::string& what) {
  auto booted = pinmm::Machine::boot(config);
  if (!booted.ok()) {
    fmt::print(stderr, "pinmm: cannot boot the machine: {}\n", booted.error().name());
    return 1;
  }
  pinmm::Machine& m = **booted;
  if (what == "buddyinfo") fmt::print("{}", pinmm::proc_buddyinfo(m.ms()));
  if (what == "pagetypeinfo") fmt::print("{}", pinmm::proc_pagetypeinfo(m.ms()));
  if (what == "zoneinfo") fmt::print("{}", pinmm::proc_zoneinfo(m.ms()));
  if (what == "vmstat") fmt::print("{}", pinmm::proc_vmstat(m.ms()));
  if (what == "memmap")
    fmt::print("{}", pinmm::format_memory_map(m.ms(), pinmm::snapshot_memory_map(m.ms())));
  if (what == "memory-blocks") fmt::print("{}", pinmm::sysfs_memory_blocks(m.hotplug()));
  if (what == "cma") fmt::print("{}", pinmm::sysfs_cma(m.cma()));
  return 0;
}

void print_policies(const char* title, std::span<const pinmm::PolicyInfo> list) {
  fmt::print("{}:\n", title);
  for (const pinmm::PolicyInfo& p : list)
    fmt::print("  {:<24} {}\n", p.name, p.description);
}

// The named policies of each layer: name and what it does.
int policies() {
  print_policies("migration targets (migrate/)", pinmm::migration_target_policies());
  print_policies("long-term pins (gup/, --longterm-pin-policy)", pinmm::longterm_pin_policies());
  print_policies("online zone choice (hotplug/, --online-policy)", pinmm::online_policies());
  print_policies("offline retries (hotplug/, OfflineOptions)", pinmm::offline_retry_policies());
  return 0;
}

// The fault-injection points scenarios (`inject:`) and stress can arm.
int inject_points() {
  for (const pinmm::InjectPointInfo& p : pinmm::inject_points()) {
    fmt::print("{:<24} {:<7} {:<8} {}\n", p.name,
               p.kind == pinmm::InjectKind::kFail ? "fail" : "window", p.layer, p.what);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pinmm: Linux page pinning and migration as a user-space engine"};
  app.set_version_flag("--version", std::string("pinmm ") + PINMM_VERSION);
  app.require_subcommand(1);

  auto* dump_cmd =
      app.add_subcommand("dump", "Print a /proc or sysfs file of a freshly booted machine");
  std::string what;
  dump_cmd
      ->add_option("what", what,
                   "buddyinfo, pagetypeinfo, zoneinfo, vmstat (/proc), memory-blocks, cma "
                   "(sysfs) or memmap (the physical memory map)")
      ->required()
      ->check(CLI::IsMember(
          {"buddyinfo", "pagetypeinfo", "zoneinfo", "vmstat", "memory-blocks", "cma", "memmap"}));
  pinmm::cli::MachineOptions dump_machine;
  dump_machine.add_to(*dump_cmd);
  std::string dump_scenario;
  dump_cmd->add_option("--scenario", dump_scenario,
                       "Boot the machine of this scenario file instead (machine options ignored)");

  pinmm::cli::RunCommand run_cmd(app);
  auto* scenarios_cmd = app.add_subcommand("scenarios", "List the built-in scenarios");

  auto* policies_cmd = app.add_subcommand("policies", "List the named policies pinmm can use");
  auto* inject_cmd = app.add_subcommand(
      "inject-points", "List the fault-injection points scenarios and stress can arm");
  auto* help_cmd = app.add_subcommand("help", "Print this help (each command has --help too)");
  pinmm::cli::GupTestCommand gup_test(app);
  pinmm::cli::StressCommand stress_cmd(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (help_cmd->parsed()) {
    // app.help() would describe the selected subcommand ("help") itself.
    fmt::print("{}", app.get_formatter()->make_help(&app, "pinmm", CLI::AppFormatMode::Normal));
    return 0;
  }
  if (policies_cmd->parsed()) return policies();
  if (inject_cmd->parsed()) return inject_points();
  if (gup_test.parsed()) return gup_test.run();
  if (stress_cmd.parsed()) return stress_cmd.run();
  if (run_cmd.parsed()) return run_cmd.run();
  if (scenarios_cmd->parsed()) return pinmm::cli::list_scenarios();
  if (dump_cmd->parsed() && !dump_scenario.empty()) {
    try {
      return dump(pinmm::cli::load_scenario_file(dump_scenario).machine, what);
    } catch (const pinmm::ScenarioError& e) {
      return usage_error({e.what()});
    }
  }
  // The one command left: dump, with the machine its options describe.
  auto config = dump_machine.to_config();
  if (auto* problems = std::get_if<std::vector<std::string>>(&config))
    return usage_error(*problems);
  return dump(std::get<pinmm::MachineConfig>(config), what);
}
