// Typed reads of scenario YAML, each failing at its node (reader.h).
#include "reader.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "pinmm/base/types.h"

namespace pinmm {

SourcePos ScenarioReader::pos(const YAML::Node& n) const {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return SourcePos{file_, 0, 0};
  return SourcePos{file_, m.line + 1, m.column + 1};
}

void ScenarioReader::fail(const YAML::Node& n, const std::string& msg) const {
  throw ScenarioError(pos(n), msg);
}

YAML::Node ScenarioReader::need(const YAML::Node& map, const char* key) const {
  YAML::Node v = map[key];
  if (!v) fail(map, fmt::format("missing '{}'", key));
  return v;
}

std::string ScenarioReader::str(const YAML::Node& n, const std::string& what) const {
  if (!n.IsScalar()) fail(n, fmt::format("'{}' must be a string", what));
  return n.Scalar();
}

uint64_t ScenarioReader::unsigned_int(const YAML::Node& n, const std::string& what) const {
  const std::string t = str(n, what);
  uint64_t v = 0;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size())
    fail(n, fmt::format("'{}' must be a non-negative integer, not '{}'", what, t));
  return v;
}

int64_t ScenarioReader::signed_int(const YAML::Node& n, const std::string& what) const {
  const std::string t = str(n, what);
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size())
    fail(n, fmt::format("'{}' must be an integer, not '{}'", what, t));
  return v;
}

int ScenarioReader::small_int(const YAML::Node& n, const std::string& what, int lo, int hi) const {
  const int64_t v = signed_int(n, what);
  if (v < lo || v > hi) fail(n, fmt::format("'{}' must be between {} and {}", what, lo, hi));
  return static_cast<int>(v);
}

uint64_t ScenarioReader::size(const YAML::Node& n, const std::string& what) const {
  const std::string t = str(n, what);
  auto b = Bytes::parse(t);
  if (!b) fail(n, fmt::format("'{}': '{}' is not a size (examples: 4GiB, 256MiB, 4096)", what, t));
  return b->value();
}

uint64_t ScenarioReader::page_size(const YAML::Node& n, const std::string& what) const {
  const uint64_t v = size(n, what);
  if (v % PAGE_SIZE != 0) fail(n, fmt::format("'{}' must be a multiple of 4KiB", what));
  return v;
}

bool ScenarioReader::boolean(const YAML::Node& n, const std::string& what) const {
  const std::string t = str(n, what);
  if (t == "true" || t == "yes") return true;
  if (t == "false" || t == "no") return false;
  fail(n, fmt::format("'{}' must be true or false, not '{}'", what, t));
}

std::string ScenarioReader::one_of(const YAML::Node& n, const std::string& what,
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

double ScenarioReader::probability(const YAML::Node& n, const std::string& what) const {
  const std::string t = str(n, what);
  double v = -1;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || !(v >= 0.0 && v <= 1.0))
    fail(n, fmt::format("'{}' is a number from 0 to 1, not '{}'", what, t));
  return v;
}

std::string ScenarioReader::name_of(const YAML::Node& n, const char* what) const {
  const std::string v = str(n, fmt::format("{} name", what));
  if (v.empty() || v.find_first_of(". \t") != std::string::npos)
    fail(n, fmt::format("a {} name must be non-empty, without dots or spaces", what));
  return v;
}

void ScenarioReader::check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
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

std::pair<CompareOp, int64_t> ScenarioReader::comparison(const YAML::Node& value,
                                                         const std::string& what) const {
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
    fail(value, fmt::format("'{}' must be a number, optionally after ==, !=, <, <=, >, >=", what));
  return {cop, v};
}

BlockSelect ScenarioReader::blocks(const YAML::Node& n) const {
  BlockSelect b;
  const YAML::Node list = need(n, "blocks");
  if (list.IsSequence()) {
    for (const YAML::Node& id : list)
      b.ids.push_back(unsigned_int(id, "block id"));
    if (b.ids.empty()) fail(list, "an empty list of blocks");
  } else {
    b.zone = one_of(list, "blocks", {"movable", "normal", "offline"});
  }
  if (n["last"]) {
    if (!b.ids.empty()) fail(n["last"], "'last' applies to a zone's blocks, not a list");
    b.last = unsigned_int(n["last"], "last");
  }
  return b;
}

void StepReader::allow(std::initializer_list<const char*> keys, const char* kind) const {
  r.check_keys(op_, std::set<std::string>(keys.begin(), keys.end()),
               fmt::format("a '{}' step", kind));
}

RangeRef StepReader::range() const {
  RangeRef range;
  const YAML::Node m = need("mapping");
  const std::string ref = r.str(m, "mapping");
  const auto dot = ref.find('.');
  if (dot == std::string::npos) r.fail(m, "a mapping is named 'process.mapping'");
  range.process = ref.substr(0, dot);
  range.mapping = ref.substr(dot + 1);
  auto p = r.processes.find(range.process);
  if (p == r.processes.end()) r.fail(m, fmt::format("no process '{}'", range.process));
  if (!p->second.contains(range.mapping))
    r.fail(m, fmt::format("process '{}' has no mapping '{}'", range.process, range.mapping));
  if (op_["offset"]) range.offset = r.page_size(op_["offset"], "offset");
  if (op_["size"]) {
    range.size = r.page_size(op_["size"], "size");
    if (*range.size == 0) r.fail(op_["size"], "'size' cannot be 0");
  }
  return range;
}

std::string StepReader::device(std::initializer_list<DeviceType> types) const {
  const YAML::Node d = need("device");
  const std::string name = r.str(d, "device");
  auto it = r.devices.find(name);
  if (it == r.devices.end()) r.fail(d, fmt::format("no device '{}'", name));
  if (std::find(types.begin(), types.end(), it->second) == types.end())
    r.fail(d, fmt::format("device '{}' is a {}, which cannot do this", name,
                          device_type_name(it->second)));
  return name;
}

int StepReader::node(const char* key) const { return r.small_int(need(key), key, 0, r.nodes - 1); }

std::string StepReader::define(const char* kind) const {
  const YAML::Node n = need("as");
  std::string handle = r.name_of(n, kind);
  if (!r.handles.emplace(handle, kind).second)
    r.fail(n, fmt::format("'{}' is already defined", handle));
  return handle;
}

std::string StepReader::use(const char* key, const char* kind) const {
  const YAML::Node n = need(key);
  std::string ref = r.str(n, key);
  auto it = r.handles.find(ref);
  if (it == r.handles.end())
    r.fail(n, fmt::format("no {} '{}' defined before this step", kind, ref));
  if (it->second != kind) r.fail(n, fmt::format("'{}' is a {}, not a {}", ref, it->second, kind));
  return ref;
}

}  // namespace pinmm
