// The scenario parser: YAML (yaml-cpp) into the model of scenario.h, with
// every check that can be made before running, each pointing at its node.
// The document, machine, processes and devices are read here; each step
// kind reads its own operands (T::parse, beside its run()), and the
// expect: section is expectations.cc's.
#include <algorithm>
#include <set>
#include <type_traits>

#include <fmt/format.h>

#include "expectations.h"
#include "pinmm/base/errno.h"
#include "pinmm/scenario/scenario.h"
#include "reader.h"

namespace pinmm {

std::string SourcePos::to_string() const { return fmt::format("{}:{}:{}", file, line, column); }

ScenarioError::ScenarioError(SourcePos pos, const std::string& message)
    : std::runtime_error(fmt::format("{}: {}", pos.to_string(), message)),
      pos_(std::move(pos)),
      message_(message) {}

namespace {

// Whether `name` is the key of a step kind.
template <size_t I = 0>
bool is_step_kind(std::string_view name) {
  if constexpr (I == std::variant_size_v<StepOp>) {
    return false;
  } else {
    return name == std::variant_alternative_t<I, StepOp>::kName || is_step_kind<I + 1>(name);
  }
}

// Reads the operands of the step kind named `name` (not a group).
template <size_t I = 0>
StepOp parse_operands(std::string_view name, StepReader& in) {
  if constexpr (I == std::variant_size_v<StepOp>) {
    in.fail(fmt::format("unknown step kind '{}'", name));
  } else {
    using Kind = std::variant_alternative_t<I, StepOp>;
    if constexpr (!std::is_same_v<Kind, ConcurrentStep>) {
      if (name == Kind::kName) return Kind::parse(in);
    }
    return parse_operands<I + 1>(name, in);
  }
}

class Parser {
 public:
  explicit Parser(std::string file) : r_(std::move(file)) {}

  // Anything yaml-cpp throws becomes a ScenarioError at its mark.
  Scenario parse(std::string_view text) {
    check_text(text);
    check_nesting(text);
    try {
      return parse_document(YAML::Load(std::string(text)));
    } catch (const YAML::Exception& e) {
      throw ScenarioError(SourcePos{r_.file(), e.mark.is_null() ? 0 : e.mark.line + 1,
                                    e.mark.is_null() ? 0 : e.mark.column + 1},
                          e.msg);
    }
  }

 private:
  // A scenario is UTF-8 text: a NUL byte or a malformed UTF-8 sequence
  // means the file is something else (yaml-cpp would report an escape).
  void check_text(std::string_view text) const {
    int line = 1, col = 1;
    for (size_t i = 0; i < text.size();) {
      const auto c = static_cast<unsigned char>(text[i]);
      size_t len = 1;
      if (c >= 0x80) {
        len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len != 0 && c != 0xc0 && c != 0xc1 && i + len <= text.size();
        for (size_t k = 1; ok && k < len; ++k)
          ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
        if (!ok)
          throw ScenarioError(SourcePos{r_.file(), line, col},
                              "not a text file: a byte that is not UTF-8");
      } else if (c == 0) {
        throw ScenarioError(SourcePos{r_.file(), line, col}, "not a text file: a NUL byte");
      }
      if (c == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
      i += len;
    }
  }

  // yaml-cpp parses recursively, one call per level of nesting: bound the
  // depth (flow brackets, and block indentation and "- " runs) well below
  // what a thread's stack holds. Scenarios need a handful of levels.
  void check_nesting(std::string_view text) const {
    constexpr int kMaxDepth = 64;
    int flow = 0, line = 1, col = 1, indent = 0;
    bool at_start = true;
    char quote = 0;
    for (char c : text) {
      if (c == '\n') {
        ++line;
        col = 1;
        indent = 0;
        at_start = true;
        continue;
      }
      if (at_start && (c == ' ' || c == '-')) {
        ++indent;
      } else {
        at_start = false;
      }
      if (quote != 0) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '[' || c == '{') {
        ++flow;
      } else if ((c == ']' || c == '}') && flow > 0) {
        --flow;
      }
      if (flow > kMaxDepth || indent > 4 * kMaxDepth)
        throw ScenarioError(SourcePos{r_.file(), line, col}, "nesting too deep");
      ++col;
    }
  }

  Scenario parse_document(const YAML::Node& root) {
    Scenario s;
    s.file = r_.file();
    if (!root.IsMap())
      r_.fail(root, "a scenario is a mapping with 'scenario', 'machine', 'steps' …");
    r_.check_keys(
        root,
        {"scenario", "description", "seed", "machine", "processes", "devices", "steps", "expect"},
        "the scenario");
    s.name = r_.str(r_.need(root, "scenario"), "scenario");
    if (root["description"]) s.description = r_.str(root["description"], "description");
    if (root["seed"]) s.seed = r_.unsigned_int(root["seed"], "seed");
    parse_machine(r_.need(root, "machine"), s);
    r_.nodes = static_cast<int>(s.machine.nodes.size());
    for (const CmaConfig& a : s.machine.cma)
      r_.cma_areas.insert(a.name);
    if (root["processes"]) parse_processes(root["processes"], s);
    if (root["devices"]) parse_devices(root["devices"], s);
    const YAML::Node steps = r_.need(root, "steps");
    if (!steps.IsSequence()) r_.fail(steps, "'steps' is a list of steps");
    for (const YAML::Node& n : steps)
      s.steps.push_back(parse_step(n, false));
    if (root["expect"]) parse_expectations(r_, root["expect"], s.expect);
    return s;
  }

  // ---- machine ----

  void parse_machine(const YAML::Node& n, Scenario& s) const {
    r_.check_keys(
        n,
        {"memory", "nodes", "movable", "block_size", "section_size", "cma", "hugepages", "thp",
         "cpus", "min_free_kbytes", "hotplug_space", "device_space", "longterm_pin_policy",
         "online_policy", "auto_movable_ratio", "memhp_default_state", "movable_node"},
        "machine");
    const uint64_t memory = r_.size(r_.need(n, "memory"), "memory");
    s.machine_pos = r_.pos(n["memory"]);
    const int nodes = n["nodes"] ? r_.small_int(n["nodes"], "nodes", 1, 64) : 1;
    const uint64_t movable = n["movable"] ? r_.size(n["movable"], "movable") : 0;
    const uint64_t block = n["block_size"] ? r_.size(n["block_size"], "block_size") : 128ull << 20;
    if (memory % static_cast<uint64_t>(nodes) != 0)
      r_.fail(n["memory"], fmt::format("memory does not split evenly over {} nodes", nodes));
    MachineConfig c = MachineConfig::uniform(Bytes(memory), nodes, Bytes(movable), Bytes(block));
    c.section_size = Bytes(n["section_size"] ? r_.size(n["section_size"], "section_size") : block);
    if (n["cma"]) {
      if (!n["cma"].IsSequence()) r_.fail(n["cma"], "'cma' is a list of areas");
      for (const YAML::Node& a : n["cma"]) {
        r_.check_keys(a, {"name", "size", "node", "order_per_bit"}, "a CMA area");
        CmaConfig area;
        area.name = a["name"] ? r_.str(a["name"], "name") : "reserved";
        area.size = Bytes(r_.size(r_.need(a, "size"), "size"));
        area.nid = a["node"] ? r_.small_int(a["node"], "node", 0, nodes - 1) : 0;
        area.order_per_bit =
            a["order_per_bit"]
                ? static_cast<unsigned>(r_.small_int(a["order_per_bit"], "order_per_bit", 0, 18))
                : 0;
        c.cma.push_back(area);
      }
    }
    if (n["hugepages"]) {
      if (!n["hugepages"].IsSequence()) r_.fail(n["hugepages"], "'hugepages' is a list of pools");
      for (const YAML::Node& h : n["hugepages"]) {
        r_.check_keys(h, {"size", "count", "node"}, "a hugetlb pool");
        HugepageConfig pool;
        pool.page_size = Bytes(r_.size(r_.need(h, "size"), "size"));
        if (pool.page_size != Bytes::MiB(2) && pool.page_size != Bytes::GiB(1))
          r_.fail(h["size"], "hugetlb pages are 2MiB or 1GiB");
        pool.count = r_.unsigned_int(r_.need(h, "count"), "count");
        if (h["node"]) pool.nid = r_.small_int(h["node"], "node", 0, nodes - 1);
        c.hugepages.push_back(pool);
      }
    }
    if (n["thp"]) {
      const std::string t = r_.one_of(n["thp"], "thp", {"always", "madvise", "never"});
      c.thp = t == "always"    ? ThpMode::kAlways
              : t == "madvise" ? ThpMode::kMadvise
                               : ThpMode::kNever;
    }
    if (n["cpus"]) c.cpus = r_.small_int(n["cpus"], "cpus", 1, 256);
    if (n["min_free_kbytes"])
      c.min_free_kbytes = r_.unsigned_int(n["min_free_kbytes"], "min_free_kbytes");
    if (n["hotplug_space"]) c.hotplug.space = Bytes(r_.size(n["hotplug_space"], "hotplug_space"));
    if (n["device_space"]) c.device_space = Bytes(r_.size(n["device_space"], "device_space"));
    if (n["longterm_pin_policy"]) {
      c.longterm_pin_policy = r_.one_of(n["longterm_pin_policy"], "longterm_pin_policy",
                                        {"migrate", "in-place"}) == "migrate"
                                  ? LongtermPinPolicy::kMigrate
                                  : LongtermPinPolicy::kInPlace;
    }
    if (n["online_policy"]) {
      c.hotplug.online_policy = r_.one_of(n["online_policy"], "online_policy",
                                          {"contig-zones", "auto-movable"}) == "auto-movable"
                                    ? OnlinePolicy::kAutoMovable
                                    : OnlinePolicy::kContigZones;
    }
    if (n["auto_movable_ratio"])
      c.hotplug.auto_movable_ratio = static_cast<unsigned>(
          r_.small_int(n["auto_movable_ratio"], "auto_movable_ratio", 0, 100000));
    if (n["memhp_default_state"]) {
      const std::string t = r_.one_of(n["memhp_default_state"], "memhp_default_state",
                                      {"offline", "online", "online_kernel", "online_movable"});
      for (OnlineType o : {OnlineType::kOffline, OnlineType::kOnline, OnlineType::kOnlineKernel,
                           OnlineType::kOnlineMovable}) {
        if (t == online_type_name(o)) c.hotplug.default_online_type = o;
      }
    }
    if (n["movable_node"]) c.hotplug.movable_node = r_.boolean(n["movable_node"], "movable_node");
    // An impossible machine is reported at the machine.
    if (const auto problems = c.check(); !problems.empty()) r_.fail(n, problems.front());
    s.machine = std::move(c);
  }

  // ---- processes and devices ----

  void parse_processes(const YAML::Node& n, Scenario& s) {
    if (!n.IsSequence()) r_.fail(n, "'processes' is a list of processes");
    for (const YAML::Node& p : n) {
      r_.check_keys(p, {"name", "mappings"}, "a process");
      ProcessSpec proc;
      proc.pos = r_.pos(p);
      proc.name = r_.name_of(r_.need(p, "name"), "process");
      if (r_.processes.contains(proc.name))
        r_.fail(p["name"], fmt::format("process '{}' is defined twice", proc.name));
      if (p["mappings"]) {
        if (!p["mappings"].IsSequence()) r_.fail(p["mappings"], "'mappings' is a list of mappings");
        std::set<std::string> names;
        for (const YAML::Node& m : p["mappings"]) {
          proc.mappings.push_back(parse_mapping(m));
          if (!names.insert(proc.mappings.back().name).second)
            r_.fail(m, fmt::format("process '{}' has two mappings named '{}'", proc.name,
                                   proc.mappings.back().name));
        }
      }
      r_.processes[proc.name] = {};
      for (const MappingSpec& m : proc.mappings)
        r_.processes[proc.name].insert(m.name);
      s.processes.push_back(std::move(proc));
    }
  }

  MappingSpec parse_mapping(const YAML::Node& n) {
    r_.check_keys(n, {"name", "kind", "size", "thp"}, "a mapping");
    MappingSpec m;
    m.pos = r_.pos(n);
    m.name = r_.name_of(r_.need(n, "name"), "mapping");
    const std::string kind =
        n["kind"] ? r_.one_of(n["kind"], "kind",
                              {"anon", "shared-anon", "shmem", "hugetlb", "file", "file-private"})
                  : "anon";
    m.kind = kind == "anon"          ? MappingKind::kAnon
             : kind == "shared-anon" ? MappingKind::kSharedAnon
             : kind == "shmem"       ? MappingKind::kShmem
             : kind == "hugetlb"     ? MappingKind::kHugetlb
             : kind == "file"        ? MappingKind::kFile
                                     : MappingKind::kFilePrivate;
    m.size = r_.page_size(r_.need(n, "size"), "size");
    if (m.size == 0) r_.fail(n["size"], "a mapping cannot be empty");
    if (m.kind == MappingKind::kHugetlb && m.size % (2ull << 20) != 0)
      r_.fail(n["size"], "a hugetlb mapping is a multiple of 2MiB");
    if (n["thp"]) m.thp = r_.boolean(n["thp"], "thp");
    return m;
  }

  void parse_devices(const YAML::Node& n, Scenario& s) {
    if (!n.IsSequence()) r_.fail(n, "'devices' is a list of devices");
    for (const YAML::Node& d : n) {
      r_.check_keys(d, {"name", "type", "memory", "hot_threshold"}, "a device");
      DeviceSpec dev;
      dev.pos = r_.pos(d);
      dev.name = r_.name_of(r_.need(d, "name"), "device");
      if (r_.devices.contains(dev.name))
        r_.fail(d["name"], fmt::format("device '{}' is defined twice", dev.name));
      const std::string type =
          r_.one_of(r_.need(d, "type"), "type", {"rdma_nic", "dmirror", "gpu", "direct_io"});
      dev.type = type == "rdma_nic"  ? DeviceType::kRdmaNic
                 : type == "dmirror" ? DeviceType::kDmirror
                 : type == "gpu"     ? DeviceType::kGpu
                                     : DeviceType::kDirectIo;
      if (d["memory"]) {
        if (dev.type != DeviceType::kDmirror)
          r_.fail(d["memory"], "only a dmirror has a memory type");
        dev.coherent = r_.one_of(d["memory"], "memory", {"private", "coherent"}) == "coherent";
      }
      if (d["hot_threshold"]) {
        if (dev.type != DeviceType::kGpu)
          r_.fail(d["hot_threshold"], "only a gpu has a hot_threshold");
        dev.hot_threshold =
            static_cast<unsigned>(r_.small_int(d["hot_threshold"], "hot_threshold", 1, 1000000));
      }
      if ((dev.type == DeviceType::kDmirror || dev.type == DeviceType::kGpu) &&
          s.machine.device_space.value() == 0)
        r_.fail(d,
                fmt::format("device '{}' needs device memory: set machine.device_space", dev.name));
      r_.devices[dev.name] = dev.type;
      s.devices.push_back(std::move(dev));
    }
  }

  // ---- steps ----

  Step parse_step(const YAML::Node& n, bool in_group) {
    if (!n.IsMap())
      r_.fail(n, "a step is a mapping with one step kind, e.g. {write: {mapping: p.buf}}");
    Step st;
    st.pos = r_.pos(n);
    std::string kind;
    YAML::Node op;
    std::set<std::string> seen;
    for (const auto& kv : n) {
      const std::string key = r_.str(kv.first, "a key");
      if (!seen.insert(key).second)
        r_.fail(kv.first, fmt::format("'{}' appears twice in a step", key));
      if (key == "name" || key == "expect") continue;
      if (!is_step_kind(key)) r_.fail(kv.first, fmt::format("unknown step kind '{}'", key));
      if (!kind.empty()) r_.fail(kv.first, "a step has exactly one step kind");
      kind = key;
      op = kv.second;
    }
    if (kind.empty()) r_.fail(n, "a step needs a step kind (write, pin, offline …)");
    if (n["name"]) st.title = r_.str(n["name"], "name");
    if (kind == ConcurrentStep::kName) {
      if (in_group) r_.fail(n, "concurrent groups do not nest");
      if (!op.IsSequence() || op.size() < 2)
        r_.fail(op, "'concurrent' is a list of at least two steps");
      ConcurrentStep group;
      for (const YAML::Node& c : op)
        group.group.push_back(parse_step(c, true));
      st.op = std::move(group);
    } else {
      if (op.IsNull()) op = YAML::Node(YAML::NodeType::Map);
      StepReader in(r_, op);
      st.op = parse_operands(kind, in);
    }
    if (n["expect"]) st.expect = parse_step_expect(r_, n["expect"]);
    if (st.title.empty()) st.title = kind;
    return st;
  }

  ScenarioReader r_;
};

}  // namespace

const char* device_type_name(DeviceType t) {
  switch (t) {
    case DeviceType::kRdmaNic:
      return "rdma_nic";
    case DeviceType::kDmirror:
      return "dmirror";
    case DeviceType::kGpu:
      return "gpu";
    case DeviceType::kDirectIo:
      return "direct_io";
  }
  return "?";
}

const char* Step::kind() const {
  return std::visit([](const auto& s) { return std::decay_t<decltype(s)>::kName; }, op);
}

const char* compare_op_name(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return "==";
    case CompareOp::kNe:
      return "!=";
    case CompareOp::kLt:
      return "<";
    case CompareOp::kLe:
      return "<=";
    case CompareOp::kGt:
      return ">";
    case CompareOp::kGe:
      return ">=";
  }
  return "?";
}

Scenario parse_scenario(std::string_view yaml, const std::string& file) {
  return Parser(file).parse(yaml);
}

}  // namespace pinmm
