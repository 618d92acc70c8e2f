// The scenario parser: YAML (yaml-cpp) into the model of scenario.h, with
// every check that can be made before running, each pointing at its node.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <initializer_list>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "pinmm/base/counters.h"
#include "pinmm/base/errno.h"
#include "pinmm/base/inject.h"
#include "pinmm/scenario/scenario.h"

namespace pinmm {

std::string SourcePos::to_string() const { return fmt::format("{}:{}:{}", file, line, column); }

ScenarioError::ScenarioError(SourcePos pos, const std::string& message)
    : std::runtime_error(fmt::format("{}: {}", pos.to_string(), message)),
      pos_(std::move(pos)),
      message_(message) {}

namespace {

constexpr std::pair<StepKind, const char*> kStepNames[] = {
    {StepKind::kWrite, "write"},
    {StepKind::kRead, "read"},
    {StepKind::kFork, "fork"},
    {StepKind::kExit, "exit"},
    {StepKind::kMunmap, "munmap"},
    {StepKind::kMprotect, "mprotect"},
    {StepKind::kMadvise, "madvise"},
    {StepKind::kPin, "pin"},
    {StepKind::kUnpin, "unpin"},
    {StepKind::kRegister, "register"},
    {StepKind::kDeregister, "deregister"},
    {StepKind::kDma, "dma"},
    {StepKind::kDirectIo, "direct_io"},
    {StepKind::kMirror, "mirror"},
    {StepKind::kMovePages, "move_pages"},
    {StepKind::kOffline, "offline"},
    {StepKind::kOnline, "online"},
    {StepKind::kHotAdd, "hot_add"},
    {StepKind::kCmaAlloc, "cma_alloc"},
    {StepKind::kCmaRelease, "cma_release"},
    {StepKind::kKernelAlloc, "kernel_alloc"},
    {StepKind::kKernelFree, "kernel_free"},
    {StepKind::kSnapshot, "snapshot"},
    {StepKind::kInject, "inject"},
    {StepKind::kConcurrent, "concurrent"},
};

// The operand keys each step kind accepts (besides name and expect).
const std::map<StepKind, std::set<std::string>>& step_keys() {
  static const std::map<StepKind, std::set<std::string>> keys = {
      {StepKind::kWrite, {"mapping", "offset", "size"}},
      {StepKind::kRead, {"mapping", "offset", "size"}},
      {StepKind::kFork, {"process", "child"}},
      {StepKind::kExit, {"process"}},
      {StepKind::kMunmap, {"mapping", "offset", "size"}},
      {StepKind::kMprotect, {"mapping", "offset", "size", "prot"}},
      {StepKind::kMadvise, {"mapping", "offset", "size", "advice"}},
      {StepKind::kPin,
       {"mapping", "offset", "size", "as", "label", "longterm", "fast", "write", "device"}},
      {StepKind::kUnpin, {"pin"}},
      {StepKind::kRegister, {"device", "mapping", "offset", "size", "as", "label"}},
      {StepKind::kDeregister, {"region"}},
      {StepKind::kDma, {"region", "rounds"}},
      {StepKind::kDirectIo, {"device", "mapping", "offset", "size", "direction"}},
      {StepKind::kMirror, {"device", "mapping", "offset", "size", "op"}},
      {StepKind::kMovePages, {"mapping", "offset", "size", "node"}},
      {StepKind::kOffline, {"blocks", "last", "timeout_ms", "retries"}},
      {StepKind::kOnline, {"blocks", "last", "zone"}},
      {StepKind::kHotAdd, {"size", "node"}},
      {StepKind::kCmaAlloc, {"area", "count", "as"}},
      {StepKind::kCmaRelease, {"alloc"}},
      {StepKind::kKernelAlloc, {"size", "node", "as", "label"}},
      {StepKind::kKernelFree, {"alloc"}},
      {StepKind::kSnapshot, {"label"}},
      {StepKind::kInject, {"point", "every", "nth", "probability", "delay_us", "clear"}},
  };
  return keys;
}

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  // Anything yaml-cpp throws becomes a ScenarioError at its mark.
  Scenario parse(std::string_view text) {
    check_text(text);
    check_nesting(text);
    try {
      return parse_document(YAML::Load(std::string(text)));
    } catch (const YAML::Exception& e) {
      throw ScenarioError(SourcePos{file_, e.mark.is_null() ? 0 : e.mark.line + 1,
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
          throw ScenarioError(SourcePos{file_, line, col},
                              "not a text file: a byte that is not UTF-8");
      } else if (c == 0) {
        throw ScenarioError(SourcePos{file_, line, col}, "not a text file: a NUL byte");
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
        throw ScenarioError(SourcePos{file_, line, col}, "nesting too deep");
      ++col;
    }
  }

  Scenario parse_document(const YAML::Node& root) {
    Scenario s;
    s.file = file_;
    if (!root.IsMap()) fail(root, "a scenario is a mapping with 'scenario', 'machine', 'steps' …");
    check_keys(
        root,
        {"scenario", "description", "seed", "machine", "processes", "devices", "steps", "expect"},
        "the scenario");
    s.name = str(need(root, "scenario", root), "scenario");
    if (root["description"]) s.description = str(root["description"], "description");
    if (root["seed"]) s.seed = unsigned_int(root["seed"], "seed");
    parse_machine(need(root, "machine", root), s);
    learn_machine(s.machine);
    if (root["processes"]) parse_processes(root["processes"], s);
    if (root["devices"]) parse_devices(root["devices"], s);
    const YAML::Node steps = need(root, "steps", root);
    if (!steps.IsSequence()) fail(steps, "'steps' is a list of steps");
    for (const YAML::Node& n : steps)
      s.steps.push_back(parse_step(n, false));
    if (root["expect"]) parse_expectations(root["expect"], s);
    return s;
  }

  SourcePos pos(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    if (m.is_null()) return SourcePos{file_, 0, 0};
    return SourcePos{file_, m.line + 1, m.column + 1};
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& msg) const {
    throw ScenarioError(pos(n), msg);
  }

  // ---- scalars ----

  YAML::Node need(const YAML::Node& map, const char* key, const YAML::Node& where) const {
    YAML::Node v = map[key];
    if (!v) fail(where, fmt::format("missing '{}'", key));
    return v;
  }
  std::string str(const YAML::Node& n, const std::string& what) const {
    if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a string", what));
    return n.Scalar();
  }
  uint64_t unsigned_int(const YAML::Node& n, const std::string& what) const {
    const std::string t = str(n, what);
    uint64_t v = 0;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size())
      fail(n, fmt::format("'{}' must be a non-negative integer, not '{}'", what, t));
    return v;
  }
  int64_t signed_int(const YAML::Node& n, const std::string& what) const {
    const std::string t = str(n, what);
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size())
      fail(n, fmt::format("'{}' must be an integer, not '{}'", what, t));
    return v;
  }
  int small_int(const YAML::Node& n, const std::string& what, int lo, int hi) const {
    const int64_t v = signed_int(n, what);
    if (v < lo || v > hi) fail(n, fmt::format("'{}' must be between {} and {}", what, lo, hi));
    return static_cast<int>(v);
  }
  uint64_t size(const YAML::Node& n, const std::string& what) const {
    const std::string t = str(n, what);
    auto b = Bytes::parse(t);
    if (!b)
      fail(n, fmt::format("'{}': '{}' is not a size (examples: 4GiB, 256MiB, 4096)", what, t));
    return b->value();
  }
  uint64_t page_size(const YAML::Node& n, const std::string& what) const {
    const uint64_t v = size(n, what);
    if (v % PAGE_SIZE != 0) fail(n, fmt::format("'{}' must be a multiple of 4KiB", what));
    return v;
  }
  bool boolean(const YAML::Node& n, const std::string& what) const {
    const std::string t = str(n, what);
    if (t == "true" || t == "yes") return true;
    if (t == "false" || t == "no") return false;
    fail(n, fmt::format("'{}' must be true or false, not '{}'", what, t));
  }
  std::string one_of(const YAML::Node& n, const std::string& what,
                     std::initializer_list<const char*> choices) const {
    const std::string t = str(n, what);
    for (const char* c : choices) {
      if (t == c) return t;
    }
    std::string list;
    for (const char* c : choices)
      list += fmt::format("{}{}", list.empty() ? "" : ", ", c);
    fail(n, fmt::format("'{}' must be one of {}; not '{}'", what, list, t));
  }
  void check_keys(const YAML::Node& map, std::initializer_list<const char*> allowed,
                  const std::string& what) const {
    check_keys(map, std::set<std::string>(allowed.begin(), allowed.end()), what);
  }
  void check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& what) const {
    if (!map.IsMap()) fail(map, fmt::format("{} must be a mapping", what));
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const std::string key = str(kv.first, "a key");
      if (!allowed.contains(key)) fail(kv.first, fmt::format("unknown key '{}' in {}", key, what));
      // yaml-cpp keeps both entries of a repeated key and lookups find the
      // first: the second would be silently ignored.
      if (!seen.insert(key).second)
        fail(kv.first, fmt::format("'{}' appears twice in {}", key, what));
    }
  }

  // ---- machine ----

  void parse_machine(const YAML::Node& n, Scenario& s) const {
    check_keys(
        n,
        {"memory", "nodes", "movable", "block_size", "section_size", "cma", "hugepages", "thp",
         "cpus", "min_free_kbytes", "hotplug_space", "device_space", "longterm_pin_policy",
         "online_policy", "auto_movable_ratio", "memhp_default_state", "movable_node"},
        "machine");
    const uint64_t memory = size(need(n, "memory", n), "memory");
    s.machine_pos = pos(n["memory"]);
    const int nodes = n["nodes"] ? small_int(n["nodes"], "nodes", 1, 64) : 1;
    const uint64_t movable = n["movable"] ? size(n["movable"], "movable") : 0;
    const uint64_t block = n["block_size"] ? size(n["block_size"], "block_size") : 128ull << 20;
    if (memory % static_cast<uint64_t>(nodes) != 0)
      fail(n["memory"], fmt::format("memory does not split evenly over {} nodes", nodes));
    MachineConfig c = MachineConfig::uniform(Bytes(memory), nodes, Bytes(movable), Bytes(block));
    c.section_size = Bytes(n["section_size"] ? size(n["section_size"], "section_size") : block);
    if (n["cma"]) {
      if (!n["cma"].IsSequence()) fail(n["cma"], "'cma' is a list of areas");
      for (const YAML::Node& a : n["cma"]) {
        check_keys(a, {"name", "size", "node", "order_per_bit"}, "a CMA area");
        CmaConfig area;
        area.name = a["name"] ? str(a["name"], "name") : "reserved";
        area.size = Bytes(size(need(a, "size", a), "size"));
        area.nid = a["node"] ? small_int(a["node"], "node", 0, nodes - 1) : 0;
        area.order_per_bit =
            a["order_per_bit"]
                ? static_cast<unsigned>(small_int(a["order_per_bit"], "order_per_bit", 0, 18))
                : 0;
        c.cma.push_back(area);
      }
    }
    if (n["hugepages"]) {
      if (!n["hugepages"].IsSequence()) fail(n["hugepages"], "'hugepages' is a list of pools");
      for (const YAML::Node& h : n["hugepages"]) {
        check_keys(h, {"size", "count", "node"}, "a hugetlb pool");
        HugepageConfig pool;
        pool.page_size = Bytes(size(need(h, "size", h), "size"));
        if (pool.page_size != Bytes::MiB(2) && pool.page_size != Bytes::GiB(1))
          fail(h["size"], "hugetlb pages are 2MiB or 1GiB");
        pool.count = unsigned_int(need(h, "count", h), "count");
        if (h["node"]) pool.nid = small_int(h["node"], "node", 0, nodes - 1);
        c.hugepages.push_back(pool);
      }
    }
    if (n["thp"]) {
      const std::string t = one_of(n["thp"], "thp", {"always", "madvise", "never"});
      c.thp = t == "always"    ? ThpMode::kAlways
              : t == "madvise" ? ThpMode::kMadvise
                               : ThpMode::kNever;
    }
    if (n["cpus"]) c.cpus = small_int(n["cpus"], "cpus", 1, 256);
    if (n["min_free_kbytes"])
      c.min_free_kbytes = unsigned_int(n["min_free_kbytes"], "min_free_kbytes");
    if (n["hotplug_space"]) c.hotplug.space = Bytes(size(n["hotplug_space"], "hotplug_space"));
    if (n["device_space"]) c.device_space = Bytes(size(n["device_space"], "device_space"));
    if (n["longterm_pin_policy"]) {
      c.longterm_pin_policy = one_of(n["longterm_pin_policy"], "longterm_pin_policy",
                                     {"migrate", "in-place"}) == "migrate"
                                  ? LongtermPinPolicy::kMigrate
                                  : LongtermPinPolicy::kInPlace;
    }
    if (n["online_policy"]) {
      c.hotplug.online_policy = one_of(n["online_policy"], "online_policy",
                                       {"contig-zones", "auto-movable"}) == "auto-movable"
                                    ? OnlinePolicy::kAutoMovable
                                    : OnlinePolicy::kContigZones;
    }
    if (n["auto_movable_ratio"])
      c.hotplug.auto_movable_ratio = static_cast<unsigned>(
          small_int(n["auto_movable_ratio"], "auto_movable_ratio", 0, 100000));
    if (n["memhp_default_state"]) {
      const std::string t = one_of(n["memhp_default_state"], "memhp_default_state",
                                   {"offline", "online", "online_kernel", "online_movable"});
      for (OnlineType o : {OnlineType::kOffline, OnlineType::kOnline, OnlineType::kOnlineKernel,
                           OnlineType::kOnlineMovable}) {
        if (t == online_type_name(o)) c.hotplug.default_online_type = o;
      }
    }
    if (n["movable_node"]) c.hotplug.movable_node = boolean(n["movable_node"], "movable_node");
    // An impossible machine is reported at the machine.
    if (const auto problems = c.check(); !problems.empty()) fail(n, problems.front());
    s.machine = std::move(c);
  }

  // ---- processes and devices ----

  void parse_processes(const YAML::Node& n, Scenario& s) {
    if (!n.IsSequence()) fail(n, "'processes' is a list of processes");
    for (const YAML::Node& p : n) {
      check_keys(p, {"name", "mappings"}, "a process");
      ProcessSpec proc;
      proc.pos = pos(p);
      proc.name = name_of(need(p, "name", p), "process");
      if (processes_.contains(proc.name))
        fail(p["name"], fmt::format("process '{}' is defined twice", proc.name));
      if (p["mappings"]) {
        if (!p["mappings"].IsSequence()) fail(p["mappings"], "'mappings' is a list of mappings");
        std::set<std::string> names;
        for (const YAML::Node& m : p["mappings"]) {
          proc.mappings.push_back(parse_mapping(m));
          if (!names.insert(proc.mappings.back().name).second)
            fail(m, fmt::format("process '{}' has two mappings named '{}'", proc.name,
                                proc.mappings.back().name));
        }
      }
      processes_[proc.name] = {};
      for (const MappingSpec& m : proc.mappings)
        processes_[proc.name].insert(m.name);
      s.processes.push_back(std::move(proc));
    }
  }

  MappingSpec parse_mapping(const YAML::Node& n) {
    check_keys(n, {"name", "kind", "size", "thp"}, "a mapping");
    MappingSpec m;
    m.pos = pos(n);
    m.name = name_of(need(n, "name", n), "mapping");
    const std::string kind =
        n["kind"] ? one_of(n["kind"], "kind",
                           {"anon", "shared-anon", "shmem", "hugetlb", "file", "file-private"})
                  : "anon";
    m.kind = kind == "anon"          ? MappingKind::kAnon
             : kind == "shared-anon" ? MappingKind::kSharedAnon
             : kind == "shmem"       ? MappingKind::kShmem
             : kind == "hugetlb"     ? MappingKind::kHugetlb
             : kind == "file"        ? MappingKind::kFile
                                     : MappingKind::kFilePrivate;
    m.size = page_size(need(n, "size", n), "size");
    if (m.size == 0) fail(n["size"], "a mapping cannot be empty");
    if (m.kind == MappingKind::kHugetlb && m.size % (2ull << 20) != 0)
      fail(n["size"], "a hugetlb mapping is a multiple of 2MiB");
    if (n["thp"]) m.thp = boolean(n["thp"], "thp");
    return m;
  }

  void parse_devices(const YAML::Node& n, Scenario& s) {
    if (!n.IsSequence()) fail(n, "'devices' is a list of devices");
    for (const YAML::Node& d : n) {
      check_keys(d, {"name", "type", "memory", "hot_threshold"}, "a device");
      DeviceSpec dev;
      dev.pos = pos(d);
      dev.name = name_of(need(d, "name", d), "device");
      if (devices_.contains(dev.name))
        fail(d["name"], fmt::format("device '{}' is defined twice", dev.name));
      const std::string type =
          one_of(need(d, "type", d), "type", {"rdma_nic", "dmirror", "gpu", "direct_io"});
      dev.type = type == "rdma_nic"  ? DeviceType::kRdmaNic
                 : type == "dmirror" ? DeviceType::kDmirror
                 : type == "gpu"     ? DeviceType::kGpu
                                     : DeviceType::kDirectIo;
      if (d["memory"]) {
        if (dev.type != DeviceType::kDmirror) fail(d["memory"], "only a dmirror has a memory type");
        dev.coherent = one_of(d["memory"], "memory", {"private", "coherent"}) == "coherent";
      }
      if (d["hot_threshold"]) {
        if (dev.type != DeviceType::kGpu)
          fail(d["hot_threshold"], "only a gpu has a hot_threshold");
        dev.hot_threshold =
            static_cast<unsigned>(small_int(d["hot_threshold"], "hot_threshold", 1, 1000000));
      }
      if ((dev.type == DeviceType::kDmirror || dev.type == DeviceType::kGpu) &&
          s.machine.device_space.value() == 0)
        fail(d, fmt::format("device '{}' needs device memory: set machine.device_space", dev.name));
      devices_[dev.name] = dev.type;
      s.devices.push_back(std::move(dev));
    }
  }

  std::string name_of(const YAML::Node& n, const char* what) const {
    const std::string v = str(n, fmt::format("{} name", what));
    if (v.empty() || v.find_first_of(". \t") != std::string::npos)
      fail(n, fmt::format("a {} name must be non-empty, without dots or spaces", what));
    return v;
  }

  // ---- steps ----

  // "process.mapping": both must exist (processes created by fork inherit
  // their parent's mappings).
  void parse_range(const YAML::Node& op, Step& st) {
    const YAML::Node m = need(op, "mapping", op);
    const std::string ref = str(m, "mapping");
    const auto dot = ref.find('.');
    if (dot == std::string::npos) fail(m, "a mapping is named 'process.mapping'");
    st.range.process = ref.substr(0, dot);
    st.range.mapping = ref.substr(dot + 1);
    auto p = processes_.find(st.range.process);
    if (p == processes_.end()) fail(m, fmt::format("no process '{}'", st.range.process));
    if (!p->second.contains(st.range.mapping))
      fail(m, fmt::format("process '{}' has no mapping '{}'", st.range.process, st.range.mapping));
    if (op["offset"]) st.range.offset = page_size(op["offset"], "offset");
    if (op["size"]) {
      st.range.size = page_size(op["size"], "size");
      if (*st.range.size == 0) fail(op["size"], "'size' cannot be 0");
    }
  }
  void need_device(const YAML::Node& op, Step& st, std::initializer_list<DeviceType> types) {
    const YAML::Node d = need(op, "device", op);
    st.device = str(d, "device");
    auto it = devices_.find(st.device);
    if (it == devices_.end()) fail(d, fmt::format("no device '{}'", st.device));
    if (std::find(types.begin(), types.end(), it->second) == types.end())
      fail(d, fmt::format("device '{}' is a {}, which cannot do this", st.device,
                          device_type_name(it->second)));
  }
  // Defines a handle ("as:") of `kind`; names are unique per scenario.
  void define(const YAML::Node& op, Step& st, const char* kind) {
    const YAML::Node n = need(op, "as", op);
    st.handle = name_of(n, kind);
    if (!handles_.emplace(st.handle, kind).second)
      fail(n, fmt::format("'{}' is already defined", st.handle));
  }
  void use(const YAML::Node& op, const char* key, Step& st, const char* kind) {
    const YAML::Node n = need(op, key, op);
    st.ref = str(n, key);
    auto it = handles_.find(st.ref);
    if (it == handles_.end())
      fail(n, fmt::format("no {} '{}' defined before this step", kind, st.ref));
    if (it->second != kind)
      fail(n, fmt::format("'{}' is a {}, not a {}", st.ref, it->second, kind));
  }
  void parse_blocks(const YAML::Node& op, BlockSelect& b) {
    const YAML::Node n = need(op, "blocks", op);
    if (n.IsSequence()) {
      for (const YAML::Node& id : n)
        b.ids.push_back(unsigned_int(id, "block id"));
      if (b.ids.empty()) fail(n, "an empty list of blocks");
    } else {
      b.zone = one_of(n, "blocks", {"movable", "normal", "offline"});
    }
    if (op["last"]) {
      if (!b.ids.empty()) fail(op["last"], "'last' applies to a zone's blocks, not a list");
      b.last = unsigned_int(op["last"], "last");
    }
  }

  Step parse_step(const YAML::Node& n, bool in_group) {
    if (!n.IsMap())
      fail(n, "a step is a mapping with one step kind, e.g. {write: {mapping: p.buf}}");
    Step st;
    st.pos = pos(n);
    YAML::Node op;
    bool have_kind = false;
    std::set<std::string> seen;
    for (const auto& kv : n) {
      const std::string key = str(kv.first, "a key");
      if (!seen.insert(key).second)
        fail(kv.first, fmt::format("'{}' appears twice in a step", key));
      if (key == "name" || key == "expect") continue;
      auto k = std::find_if(std::begin(kStepNames), std::end(kStepNames),
                            [&](const auto& p) { return key == p.second; });
      if (k == std::end(kStepNames)) fail(kv.first, fmt::format("unknown step kind '{}'", key));
      if (have_kind) fail(kv.first, "a step has exactly one step kind");
      have_kind = true;
      st.kind = k->first;
      op = kv.second;
    }
    if (!have_kind) fail(n, "a step needs a step kind (write, pin, offline …)");
    if (n["name"]) st.title = str(n["name"], "name");
    if (st.kind == StepKind::kConcurrent) {
      if (in_group) fail(n, "concurrent groups do not nest");
      if (!op.IsSequence() || op.size() < 2)
        fail(op, "'concurrent' is a list of at least two steps");
      for (const YAML::Node& c : op)
        st.group.push_back(parse_step(c, true));
    } else {
      if (op.IsNull()) op = YAML::Node(YAML::NodeType::Map);
      check_keys(op, step_keys().at(st.kind), fmt::format("a '{}' step", step_kind_name(st.kind)));
      parse_operands(op, st);
    }
    if (n["expect"]) st.expect = parse_step_expect(n["expect"]);
    if (st.title.empty()) st.title = step_kind_name(st.kind);
    return st;
  }

  void parse_operands(const YAML::Node& op, Step& st) {
    switch (st.kind) {
      case StepKind::kWrite:
      case StepKind::kRead:
      case StepKind::kMunmap:
        parse_range(op, st);
        break;
      case StepKind::kFork: {
        const YAML::Node p = need(op, "process", op);
        st.process = str(p, "process");
        if (!processes_.contains(st.process)) fail(p, fmt::format("no process '{}'", st.process));
        const YAML::Node c = need(op, "child", op);
        st.child = name_of(c, "process");
        if (processes_.contains(st.child))
          fail(c, fmt::format("process '{}' already exists", st.child));
        processes_[st.child] = processes_[st.process];
        break;
      }
      case StepKind::kExit: {
        const YAML::Node p = need(op, "process", op);
        st.process = str(p, "process");
        if (!processes_.contains(st.process)) fail(p, fmt::format("no process '{}'", st.process));
        break;
      }
      case StepKind::kMprotect:
        parse_range(op, st);
        st.op = one_of(need(op, "prot", op), "prot", {"none", "r", "rw"});
        break;
      case StepKind::kMadvise:
        parse_range(op, st);
        st.op = one_of(need(op, "advice", op), "advice",
                       {"dontneed", "hugepage", "nohugepage", "populate_write"});
        break;
      case StepKind::kPin:
        parse_range(op, st);
        define(op, st, "pin");
        if (op["label"]) st.label = str(op["label"], "label");
        if (op["longterm"]) st.longterm = boolean(op["longterm"], "longterm");
        if (op["fast"]) st.fast = boolean(op["fast"], "fast");
        if (op["write"]) st.write = boolean(op["write"], "write");
        if (op["device"]) {
          st.device = str(op["device"], "device");
          if (!devices_.contains(st.device))
            fail(op["device"], fmt::format("no device '{}'", st.device));
        }
        break;
      case StepKind::kUnpin:
        use(op, "pin", st, "pin");
        break;
      case StepKind::kRegister:
        need_device(op, st, {DeviceType::kRdmaNic});
        parse_range(op, st);
        define(op, st, "region");
        st.label = op["label"] ? str(op["label"], "label") : st.handle;
        break;
      case StepKind::kDeregister:
        use(op, "region", st, "region");
        break;
      case StepKind::kDma:
        use(op, "region", st, "region");
        if (op["rounds"])
          st.rounds = static_cast<unsigned>(small_int(op["rounds"], "rounds", 1, 1000000));
        break;
      case StepKind::kDirectIo:
        need_device(op, st, {DeviceType::kDirectIo});
        parse_range(op, st);
        st.op = op["direction"] ? one_of(op["direction"], "direction", {"read", "write"}) : "read";
        break;
      case StepKind::kMirror:
        need_device(op, st, {DeviceType::kDmirror, DeviceType::kGpu});
        parse_range(op, st);
        st.op = one_of(need(op, "op", op), "op",
                       {"read", "write", "migrate_to_device", "migrate_to_system", "snapshot"});
        if (devices_[st.device] == DeviceType::kGpu && st.op != "read" && st.op != "write")
          fail(op["op"], "a gpu only reads and writes (it migrates on its own)");
        break;
      case StepKind::kMovePages:
        parse_range(op, st);
        st.node = small_int(need(op, "node", op), "node", 0, nodes_ - 1);
        break;
      case StepKind::kOffline:
        parse_blocks(op, st.blocks);
        if (op["timeout_ms"]) st.timeout_ms = small_int(op["timeout_ms"], "timeout_ms", 1, 3600000);
        if (op["retries"])
          st.retries = static_cast<unsigned>(small_int(op["retries"], "retries", 1, 1000000));
        break;
      case StepKind::kOnline:
        parse_blocks(op, st.blocks);
        st.op = op["zone"]
                    ? one_of(op["zone"], "zone", {"online", "online_movable", "online_kernel"})
                    : "online_movable";
        break;
      case StepKind::kHotAdd:
        st.count = size(need(op, "size", op), "size");
        if (op["node"]) st.node = small_int(op["node"], "node", 0, nodes_ - 1);
        break;
      case StepKind::kCmaAlloc:
        st.area = str(need(op, "area", op), "area");
        if (!cma_areas_.contains(st.area))
          fail(op["area"], fmt::format("no CMA area '{}'", st.area));
        if (op["count"]) {
          if (op["count"].IsScalar() && op["count"].Scalar() == "all") {
            st.count = 0;
          } else {
            st.count = unsigned_int(op["count"], "count");
            if (st.count == 0) fail(op["count"], "'count' is a number of pages, or 'all'");
          }
        }
        define(op, st, "cma allocation");
        break;
      case StepKind::kCmaRelease:
        use(op, "alloc", st, "cma allocation");
        break;
      case StepKind::kKernelAlloc:
        st.count = page_size(need(op, "size", op), "size");
        if (st.count == 0 || (st.count & (st.count - 1)) != 0 || st.count > (4ull << 20))
          fail(op["size"], "a kernel allocation is a power of two between 4KiB and 4MiB");
        if (op["node"]) st.node = small_int(op["node"], "node", 0, nodes_ - 1);
        st.label = op["label"] ? str(op["label"], "label") : "scenario";
        define(op, st, "kernel allocation");
        break;
      case StepKind::kKernelFree:
        use(op, "alloc", st, "kernel allocation");
        break;
      case StepKind::kSnapshot:
        st.label =
            op["label"] ? str(op["label"], "label") : fmt::format("snapshot {}", ++snapshots_);
        break;
      case StepKind::kInject:
        parse_inject(op, st.inject);
        break;
      case StepKind::kConcurrent:
        break;
    }
  }

  // One point of the catalogue, and exactly one way to arm (or clear) it
  // that fits the point's kind.
  void parse_inject(const YAML::Node& op, InjectSpec& in) const {
    const YAML::Node p = need(op, "point", op);
    in.point = str(p, "point");
    const InjectPointInfo* info = find_inject_point(in.point);
    if (info == nullptr) {
      std::string names;
      for (const InjectPointInfo& i : inject_points())
        names += fmt::format("{}{}", names.empty() ? "" : ", ", i.name);
      fail(p, fmt::format("no injection point '{}' (there are: {})", in.point, names));
    }
    int modes = 0;
    for (const char* k : {"every", "nth", "probability", "delay_us", "clear"})
      modes += op[k] ? 1 : 0;
    if (modes != 1)
      fail(op, "an inject step takes one of every, nth, probability, delay_us, clear");
    const bool window = info->kind == InjectKind::kWindow;
    auto need_kind = [&](const char* key, bool for_window) {
      if (window != for_window)
        fail(op[key],
             fmt::format("'{}' is a {} point: {}", in.point, window ? "window" : "failure",
                         window ? "it takes delay_us" : "it takes every, nth or probability"));
    };
    if (op["every"]) {
      need_kind("every", false);
      in.mode = InjectSpec::Mode::kEvery;
      in.n = static_cast<uint64_t>(small_int(op["every"], "every", 1, 1000000000));
    } else if (op["nth"]) {
      need_kind("nth", false);
      in.mode = InjectSpec::Mode::kNth;
      in.n = static_cast<uint64_t>(small_int(op["nth"], "nth", 1, 1000000000));
    } else if (op["probability"]) {
      need_kind("probability", false);
      in.mode = InjectSpec::Mode::kProbability;
      const std::string t = str(op["probability"], "probability");
      double v = -1;
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (ec != std::errc() || end != t.data() + t.size() || !(v >= 0.0 && v <= 1.0))
        fail(op["probability"], fmt::format("'probability' is a number from 0 to 1, not '{}'", t));
      in.probability = v;
    } else if (op["delay_us"]) {
      need_kind("delay_us", true);
      in.mode = InjectSpec::Mode::kDelay;
      in.n = static_cast<uint64_t>(small_int(op["delay_us"], "delay_us", 1, 10000000));
    } else {
      if (!boolean(op["clear"], "clear")) fail(op["clear"], "'clear' is only ever true");
      in.mode = InjectSpec::Mode::kClear;
    }
  }

  StepExpect parse_step_expect(const YAML::Node& n) const {
    StepExpect e;
    e.pos = pos(n);
    if (n.IsScalar()) {
      e.err = errno_of(n);
      return e;
    }
    check_keys(n, {"result", "value"}, "a step's expect");
    if (n["result"]) e.err = errno_of(n["result"]);
    if (n["value"]) e.value = signed_int(n["value"], "value");
    return e;
  }
  int errno_of(const YAML::Node& n) const {
    const std::string t = str(n, "result");
    if (t == "ok" || t == "0") return 0;
    if (auto e = Errno::from_name(t)) return e->code();
    fail(n, fmt::format("'{}' is neither 'ok' nor an errno name (EBUSY, ENOMEM …)", t));
  }

  // ---- expectations ----

  void parse_expectations(const YAML::Node& n, Scenario& s) {
    check_keys(n, {"counters", "no_data_lost", "no_pages_leaked", "blocks", "zones"}, "expect");
    if (n["no_data_lost"]) s.expect.no_data_lost = boolean(n["no_data_lost"], "no_data_lost");
    if (n["no_pages_leaked"])
      s.expect.no_pages_leaked = boolean(n["no_pages_leaked"], "no_pages_leaked");
    if (n["counters"]) {
      if (!n["counters"].IsMap()) fail(n["counters"], "'counters' maps vmstat names to values");
      for (const auto& kv : n["counters"])
        s.expect.counters.push_back(parse_counter(kv.first, kv.second));
    }
    if (n["zones"]) {
      if (!n["zones"].IsSequence()) fail(n["zones"], "'zones' is a list of {node, zone, free …}");
      for (const YAML::Node& z : n["zones"]) {
        check_keys(z, {"node", "zone", "free", "managed", "present"}, "a zone expectation");
        ZoneExpect e;
        e.pos = pos(z);
        e.node = z["node"] ? small_int(z["node"], "node", 0, nodes_ - 1) : 0;
        e.movable = one_of(need(z, "zone", z), "zone", {"normal", "movable"}) == "movable";
        for (const char* field : {"free", "managed", "present"}) {
          if (!z[field]) continue;
          const auto [op, value] = comparison(z[field], field);
          e.checks.push_back(ZoneExpect::Check{field, op, value});
        }
        if (e.checks.empty()) fail(z, "a zone expectation checks free, managed or present");
        s.expect.zones.push_back(std::move(e));
      }
    }
    if (n["blocks"]) {
      if (!n["blocks"].IsSequence()) fail(n["blocks"], "'blocks' is a list of {blocks, state}");
      for (const YAML::Node& b : n["blocks"]) {
        check_keys(b, {"blocks", "last", "state"}, "a block expectation");
        BlockStateExpect e;
        e.pos = pos(b);
        parse_blocks(b, e.blocks);
        e.state = one_of(need(b, "state", b), "state", {"online", "offline"});
        s.expect.blocks.push_back(std::move(e));
      }
    }
  }

  CounterExpect parse_counter(const YAML::Node& key, const YAML::Node& value) const {
    CounterExpect c;
    c.pos = pos(key);
    c.counter = str(key, "counter");
    const std::string name = c.counter.starts_with("delta:") ? c.counter.substr(6) : c.counter;
    if (!VmStat{}.by_name(name, 512))
      fail(key, fmt::format("'{}' is not a /proc/vmstat counter", name));
    std::tie(c.op, c.value) = comparison(value, c.counter);
    return c;
  }

  // "[op] number": op is ==, !=, <, <=, >, >= (default ==).
  std::pair<CompareOp, int64_t> comparison(const YAML::Node& value, const std::string& what) const {
    std::string t = str(value, what);
    static constexpr std::pair<const char*, CompareOp> kOps[] = {
        {"==", CompareOp::kEq}, {"!=", CompareOp::kNe}, {"<=", CompareOp::kLe},
        {">=", CompareOp::kGe}, {"<", CompareOp::kLt},  {">", CompareOp::kGt}};
    CompareOp cop = CompareOp::kEq;
    for (const auto& [text, op] : kOps) {
      if (t.starts_with(text)) {
        cop = op;
        t = t.substr(std::string_view(text).size());
        break;
      }
    }
    t.erase(0, t.find_first_not_of(' '));
    int64_t v = 0;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size())
      fail(value,
           fmt::format("'{}' must be a number, optionally after ==, !=, <, <=, >, >=", what));
    return {cop, v};
  }

  std::string file_;
  int nodes_ = 1;
  std::map<std::string, std::set<std::string>> processes_;  // process → mapping names
  std::map<std::string, DeviceType> devices_;
  std::map<std::string, std::string> handles_;  // "as:" name → kind
  std::set<std::string> cma_areas_;
  int snapshots_ = 0;

  // The machine's node count and CMA areas, for the checks of steps.
  void learn_machine(const MachineConfig& c) {
    nodes_ = static_cast<int>(c.nodes.size());
    for (const CmaConfig& a : c.cma)
      cma_areas_.insert(a.name);
  }
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

const char* step_kind_name(StepKind k) {
  for (const auto& [kind, name] : kStepNames) {
    if (kind == k) return name;
  }
  return "?";
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
