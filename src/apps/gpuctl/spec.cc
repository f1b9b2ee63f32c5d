#include "apps/gpuctl/spec.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "apps/gpuctl/errors.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;

std::string Where(std::string_view source, const YAML::Mark& mark) {
  // yaml-cpp marks are 0-based; editors count from 1.
  return std::string(source) + ":" + std::to_string(mark.line + 1) + ":" +
         std::to_string(mark.column + 1);
}

bool IsYamlBool(const std::string& s, bool* value) {
  static const char* const kTrue[] = {"true", "True", "TRUE"};
  static const char* const kFalse[] = {"false", "False", "FALSE"};
  for (const char* t : kTrue) {
    if (s == t) {
      *value = true;
      return true;
    }
  }
  for (const char* f : kFalse) {
    if (s == f) {
      *value = false;
      return true;
    }
  }
  return false;
}

// Integers of the YAML 1.2 core schema: decimal with an optional sign, 0o octal, 0x hex.
std::optional<json> ParseYamlInt(const std::string& s) {
  static const std::regex kDecimal("[-+]?[0-9]+");
  static const std::regex kOctal("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  int base = 10;
  std::string digits = s;
  if (std::regex_match(s, kOctal)) {
    base = 8;
    digits = s.substr(2);
  } else if (std::regex_match(s, kHex)) {
    base = 16;
    digits = s.substr(2);
  } else if (!std::regex_match(s, kDecimal)) {
    return std::nullopt;
  }
  bool negative = !digits.empty() && digits[0] == '-';
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    digits = digits.substr(1);
  }
  const char* first = digits.data();
  const char* last = digits.data() + digits.size();
  // Mirror nlohmann's own parser: non-negative integers are unsigned, negative ones signed.
  if (negative) {
    int64_t v = 0;
    if (std::from_chars(first, last, v, base).ec == std::errc() && v >= 0) {
      return json(-v);
    }
  } else {
    uint64_t v = 0;
    if (std::from_chars(first, last, v, base).ec == std::errc()) {
      return json(v);
    }
  }
  return json(std::stod(s));  // out of 64-bit range: a float, as JSON parsers do
}

enum class FloatKind { kNotFloat, kFinite, kNonFinite };

FloatKind ParseYamlFloat(const std::string& s, double* value) {
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  static const std::regex kSpecial("[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)");
  if (std::regex_match(s, kSpecial)) {
    return FloatKind::kNonFinite;
  }
  if (!std::regex_match(s, kFloat)) {
    return FloatKind::kNotFloat;
  }
  *value = std::stod(s);
  return std::isfinite(*value) ? FloatKind::kFinite : FloatKind::kNonFinite;
}

core::Result<json> ScalarToJson(const YAML::Node& node, std::string_view source) {
  const std::string& s = node.Scalar();
  // yaml-cpp tags quoted scalars "!" and plain ones "?"; only plain scalars are resolved.
  const std::string& tag = node.Tag();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") {
    return json(s);
  }
  bool b = false;
  if (IsYamlBool(s, &b)) {
    return json(b);
  }
  if (auto i = ParseYamlInt(s)) {
    return *i;
  }
  double d = 0;
  switch (ParseYamlFloat(s, &d)) {
    case FloatKind::kFinite:
      return json(d);
    case FloatKind::kNonFinite:
      return core::Fail(UsageError(Where(source, node.Mark()) + ": \"" + s +
                                   "\" is not a finite number and cannot be sent as JSON"));
    case FloatKind::kNotFloat:
      break;
  }
  return json(s);
}

core::Result<json> NodeToJson(const YAML::Node& node, std::string_view source) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return json(nullptr);
    case YAML::NodeType::Scalar:
      return ScalarToJson(node, source);
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) {
        GPUORCH_ASSIGN_OR_RETURN(json value, NodeToJson(item, source));
        out.push_back(std::move(value));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return core::Fail(
              UsageError(Where(source, kv.first.Mark()) + ": map keys must be plain strings"));
        }
        GPUORCH_ASSIGN_OR_RETURN(json value, NodeToJson(kv.second, source));
        out[kv.first.Scalar()] = std::move(value);
      }
      return out;
    }
  }
  return json(nullptr);
}

core::Result<json> ParseYaml(std::string_view text, std::string_view source) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // e.msg lacks the "yaml-cpp: error at line..." prefix of e.what(); we add our own location.
    return core::Fail(UsageError("cannot parse " + std::string(source) +
                                 " as YAML: " + Where(source, e.mark) + ": " + e.msg));
  }
  if (docs.empty()) {
    return core::Fail(UsageError(std::string(source) + " is empty; expected a job spec"));
  }
  if (docs.size() > 1) {
    return core::Fail(UsageError(std::string(source) + " holds " + std::to_string(docs.size()) +
                                 " YAML documents; expected one job spec"));
  }
  try {
    return NodeToJson(docs[0], source);
  } catch (const YAML::Exception& e) {
    return core::Fail(UsageError("cannot read " + std::string(source) +
                                 " as YAML: " + Where(source, e.mark) + ": " + e.msg));
  }
}

core::Result<json> ParseJson(std::string_view text, std::string_view source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at line L, column C: ...".
    std::string what = e.what();
    auto pos = what.find("] ");
    if (pos != std::string::npos) {
      what = what.substr(pos + 2);
    }
    return core::Fail(UsageError("cannot parse " + std::string(source) + " as JSON: " + what));
  }
}

const char* KindName(const json& value) {
  if (value.is_array()) {
    return "a list";
  }
  if (value.is_null()) {
    return "empty";
  }
  if (value.is_string()) {
    return "a string";
  }
  return "a scalar";
}

SpecFormat FormatFor(std::string_view path, std::string_view text) {
  auto ends_with = [&](std::string_view suffix) {
    return path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix;
  };
  if (ends_with(".json") || ends_with(".JSON")) {
    return SpecFormat::kJson;
  }
  if (ends_with(".yaml") || ends_with(".yml") || ends_with(".YAML") || ends_with(".YML")) {
    return SpecFormat::kYaml;
  }
  auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{' ? SpecFormat::kJson
                                                               : SpecFormat::kYaml;
}

// Whole numbers go out as JSON integers so that `--memory-gb 16` sends 16, not 16.0.
json NumberJson(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) {
    return json(static_cast<int64_t>(v));
  }
  return json(v);
}

core::Status ApplyConfigOverrides(json& config, const SubmitOverrides& o) {
  if (o.gpu_type) {
    config["gpu_type"] = *o.gpu_type;
  }
  if (o.gpu_count) {
    config["gpu_count"] = *o.gpu_count;
  }
  if (o.memory_gb) {
    config["memory_gb"] = NumberJson(*o.memory_gb);
  }
  if (o.docker_image) {
    config["docker_image"] = *o.docker_image;
  }
  if (o.command_string) {
    config["command"] = *o.command_string;
  } else if (!o.command_argv.empty()) {
    config["command"] = o.command_argv;
  }
  if (!o.env.empty()) {
    GPUORCH_ASSIGN_OR_RETURN(auto env, ParseEnvAssignments(o.env));
    json& target = config["env"];
    if (target.is_null()) {
      target = json::object();
    }
    if (!target.is_object()) {
      return core::Fail(
          UsageError("cannot apply --env: the spec's config.env is not a mapping", "config.env"));
    }
    for (auto& [key, value] : env) {
      target[key] = value;
    }
  }
  return core::Ok();
}

bool HasConfigOverrides(const SubmitOverrides& o) {
  return o.gpu_type || o.gpu_count || o.memory_gb || o.docker_image || o.command_string ||
         !o.command_argv.empty() || !o.env.empty();
}

}  // namespace

core::Result<json> ParseSpec(std::string_view text, SpecFormat format, std::string_view source) {
  if (format == SpecFormat::kAuto) {
    format = FormatFor("", text);
  }
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return core::Fail(UsageError(std::string(source) + " is empty; expected a job spec"));
  }
  GPUORCH_ASSIGN_OR_RETURN(
      json spec, format == SpecFormat::kJson ? ParseJson(text, source) : ParseYaml(text, source));
  if (!spec.is_object()) {
    return core::Fail(UsageError(
        std::string(source) + ": a job spec must be a mapping of fields, not " + KindName(spec)));
  }
  // Environment values are strings on the wire; a spec that writes `DEBUG: 1` or `VERBOSE: true`
  // means "1" and "true".
  if (spec.contains("config") && spec["config"].is_object() &&
      spec["config"].contains("env") && spec["config"]["env"].is_object()) {
    for (auto& [key, value] : spec["config"]["env"].items()) {
      if (value.is_number() || value.is_boolean()) {
        value = value.dump();
      }
    }
  }
  return spec;
}

core::Result<json> LoadSpecFile(const std::string& path, std::istream& stdin_stream) {
  std::ostringstream text;
  std::string source = path;
  if (path == "-") {
    source = "<stdin>";
    text << stdin_stream.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return core::Fail(
          UsageError("cannot read spec file \"" + path + "\": " + std::strerror(errno), "-f"));
    }
    text << in.rdbuf();
    if (in.bad()) {
      return core::Fail(UsageError("cannot read spec file \"" + path + "\": read error", "-f"));
    }
  }
  std::string content = text.str();
  return ParseSpec(content, FormatFor(path == "-" ? "" : path, content), source);
}

core::Result<std::map<std::string, std::string>> ParseEnvAssignments(
    const std::vector<std::string>& assignments) {
  std::map<std::string, std::string> env;
  for (const auto& a : assignments) {
    auto eq = a.find('=');
    if (eq == std::string::npos) {
      return core::Fail(UsageError("bad --env \"" + a + "\": expected KEY=VALUE", "--env"));
    }
    if (eq == 0) {
      return core::Fail(UsageError("bad --env \"" + a + "\": the KEY is empty", "--env"));
    }
    env[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return env;
}

core::Result<json> BuildSubmitBody(const json& base, const SubmitOverrides& o) {
  if (o.command_string && !o.command_argv.empty()) {
    return core::Fail(
        UsageError("give the command either as --command \"STRING\" or after --, "
                   "not both",
                   "--command"));
  }
  if (o.command_string && o.command_string->empty()) {
    return core::Fail(UsageError("--command must not be empty", "--command"));
  }
  bool has_base = !base.is_null();
  if (!has_base && !o.template_name && !o.command_string && o.command_argv.empty()) {
    return core::Fail(
        UsageError("nothing to submit: give -f FILE, --template NAME, or a command after --"));
  }
  if (has_base && !base.is_object()) {
    return core::Fail(UsageError("a job spec must be a mapping of fields"));
  }
  json body = has_base ? base : json::object();
  if (o.name) {
    body["name"] = *o.name;
  }
  if (o.job_type) {
    body["job_type"] = *o.job_type;
  }
  if (o.template_name) {
    body["template"] = *o.template_name;
  }
  if (o.priority) {
    body["priority"] = *o.priority;
  }
  if (o.timeout_seconds) {
    body["timeout_seconds"] = *o.timeout_seconds;
  }
  if (o.max_retries) {
    body["max_retries"] = *o.max_retries;
  }
  if (!has_base || HasConfigOverrides(o)) {
    json& config = body["config"];
    if (config.is_null()) {
      config = json::object();
    }
    if (!config.is_object()) {
      return core::Fail(
          UsageError("cannot apply flags: the spec's config is not a mapping", "config"));
    }
    GPUORCH_TRY(ApplyConfigOverrides(config, o));
  }
  return body;
}

}  // namespace gpuorch::gpuctl
