#include "apps/gpuctl/format.h"

#include <cstdio>
#include <regex>
#include <vector>

#include "apps/gpuctl/table.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;

constexpr std::string_view kNone = "-";

const json& Get(const json& object, std::string_view key) {
  static const json kNull;
  if (!object.is_object()) {
    return kNull;
  }
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// "2 x RTX4090", "2", or "-".
std::string GpuText(const json& config, std::string_view separator) {
  const json& count = Get(config, "gpu_count");
  const json& type = Get(config, "gpu_type");
  if (count.is_null()) {
    return type.is_null() ? std::string(kNone) : CellText(type);
  }
  if (type.is_null()) {
    return CellText(count);
  }
  return CellText(count) + std::string(separator) + CellText(type);
}

std::string AgeSince(const json& timestamp, core::SystemTime now) {
  if (!timestamp.is_string()) {
    return std::string(kNone);
  }
  auto t = ParseRfc3339(timestamp.get<std::string>());
  if (!t) {
    return std::string(kNone);
  }
  return FormatAge(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
}

// "2026-11-28T19:43:01.123Z (5m ago)", or "-".
std::string TimeWithAge(const json& timestamp, core::SystemTime now) {
  if (!timestamp.is_string()) {
    return std::string(kNone);
  }
  std::string age = AgeSince(timestamp, now);
  return timestamp.get<std::string>() + (age == kNone ? "" : " (" + age + " ago)");
}

std::string CommandText(const json& command) {
  if (command.is_array()) {
    return ShellJoin(command);
  }
  return CellText(command);
}

std::string EnvText(const json& env) {
  if (!env.is_object() || env.empty()) {
    return std::string(kNone);
  }
  std::string out;
  for (auto it = env.begin(); it != env.end(); ++it) {
    out += (out.empty() ? "" : " ") + it.key() + "=" + CellText(it.value());
  }
  return out;
}

std::string TransitionsTable(const json& transitions) {
  Table table({"AT", "FROM", "TO", "ATTEMPT", "MESSAGE"});
  for (const auto& t : transitions) {
    table.AddRow({Field(t, "at"), Field(t, "from"), Field(t, "to"), Field(t, "attempt"),
                  Field(t, "message")});
  }
  // Indent the table under its "Transitions:" heading.
  std::string rendered = table.Render();
  std::string out;
  size_t start = 0;
  while (start < rendered.size()) {
    size_t end = rendered.find('\n', start);
    out += "  " + rendered.substr(start, end - start + 1);
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string CellText(const json& value) {
  if (value.is_null()) {
    return std::string(kNone);
  }
  if (value.is_string()) {
    return value.get<std::string>();
  }
  if (value.is_array()) {
    if (value.empty()) {
      return std::string(kNone);
    }
    std::string out;
    for (const auto& item : value) {
      out += (out.empty() ? "" : ",") + CellText(item);
    }
    return out;
  }
  return value.dump();
}

std::string Field(const json& object, std::string_view key) { return CellText(Get(object, key)); }

std::optional<core::SystemTime> ParseRfc3339(std::string_view text) {
  static const std::regex kPattern(
      "(\\d{4})-(\\d{2})-(\\d{2})[Tt ](\\d{2}):(\\d{2}):(\\d{2})(\\.(\\d+))?"
      "([Zz]|([+-])(\\d{2}):(\\d{2}))");
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_match(text.begin(), text.end(), m, kPattern)) {
    return std::nullopt;
  }
  auto num = [&](int i) { return std::stoi(m[i].str()); };
  using namespace std::chrono;
  year_month_day date{year{num(1)}, month{static_cast<unsigned>(num(2))},
                      day{static_cast<unsigned>(num(3))}};
  if (!date.ok() || num(4) > 23 || num(5) > 59 || num(6) > 60) {
    return std::nullopt;
  }
  auto t = sys_days{date} + hours{num(4)} + minutes{num(5)} + seconds{num(6)};
  core::SystemTime result = time_point_cast<core::SystemTime::duration>(t);
  if (m[8].matched) {
    std::string frac = (m[8].str() + "000000000").substr(0, 9);
    result += duration_cast<core::SystemTime::duration>(nanoseconds{std::stoll(frac)});
  }
  if (m[10].matched) {
    auto offset = hours{num(11)} + minutes{num(12)};
    result += m[10].str() == "+" ? -offset : offset;
  }
  return result;
}

std::string FormatAge(std::chrono::seconds age) {
  int64_t s = std::max<int64_t>(0, age.count());
  if (s < 120) {
    return std::to_string(s) + "s";
  }
  if (s < 120 * 60) {
    return std::to_string(s / 60) + "m";
  }
  if (s < 48 * 3600) {
    return std::to_string(s / 3600) + "h";
  }
  return std::to_string(s / 86400) + "d";
}

std::string ShellJoin(const json& argv) {
  static const std::regex kSafe("[A-Za-z0-9_@%+=:,./-]+");
  std::string out;
  for (const auto& word_json : argv) {
    std::string word = CellText(word_json);
    if (!std::regex_match(word, kSafe)) {
      std::string quoted = "'";
      for (char c : word) {
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
      }
      word = quoted + "'";
    }
    out += (out.empty() ? "" : " ") + word;
  }
  return out.empty() ? std::string(kNone) : out;
}

std::string FormatJobTable(const json& jobs, core::SystemTime now, size_t message_width) {
  Table table({"JOB ID", "NAME", "TYPE", "STATUS", "GPUS", "PRIORITY", "AGE", "MESSAGE"});
  if (jobs.is_array()) {
    for (const auto& job : jobs) {
      table.AddRow({Field(job, "job_id"), Field(job, "name"), Field(job, "job_type"),
                    Field(job, "status"), GpuText(Get(job, "config"), "x"), Field(job, "priority"),
                    AgeSince(Get(job, "created_at"), now),
                    Truncate(OneLine(Field(job, "status_message")), message_width)});
    }
  }
  return table.Render();
}

std::string FormatJobDetail(const json& job, core::SystemTime now) {
  const json& config = Get(job, "config");
  std::string gpus = GpuText(config, " x ");
  std::string indices = Field(job, "gpu_indices");
  if (indices != kNone) {
    gpus += " (indices " + indices + ")";
  }
  std::vector<std::pair<std::string, std::string>> rows = {
      {"Job ID", Field(job, "job_id")},
      {"Name", Field(job, "name")},
      {"Type", Field(job, "job_type")},
      {"Template", Field(job, "template")},
      {"Owner", Field(job, "owner")},
      {"Status", Field(job, "status")},
      {"Status message", Field(job, "status_message")},
      {"Priority", Field(job, "priority")},
      {"Attempt", Field(job, "attempt")},
      {"Max retries", Field(job, "max_retries")},
      {"Timeout seconds", Field(job, "timeout_seconds")},
      {"GPUs", gpus},
      {"Memory GB", Field(config, "memory_gb")},
      {"Node", Field(job, "node_id")},
      {"Exit code", Field(job, "exit_code")},
      {"Image", Field(config, "docker_image")},
      {"Model", Field(config, "model_name")},
      {"Command", CommandText(Get(config, "command"))},
      {"Env", EnvText(Get(config, "env"))},
      {"Created", TimeWithAge(Get(job, "created_at"), now)},
      {"Started", TimeWithAge(Get(job, "started_at"), now)},
      {"Finished", TimeWithAge(Get(job, "finished_at"), now)},
      {"Updated", TimeWithAge(Get(job, "updated_at"), now)},
  };
  size_t width = 0;
  for (const auto& [key, value] : rows) {
    width = std::max(width, key.size() + 1);
  }
  std::string out;
  for (const auto& [key, value] : rows) {
    std::string label = key + ":";
    out += label + std::string(width - label.size() + 2, ' ') + OneLine(value) + "\n";
  }
  const json& transitions = Get(job, "transitions");
  if (transitions.is_array() && !transitions.empty()) {
    out += "\nTransitions:\n" + TransitionsTable(transitions);
  }
  return out;
}

std::string FormatTemplateTable(const json& templates) {
  Table table({"NAME", "JOB TYPE", "GPUS", "TITLE"});
  if (templates.is_array()) {
    for (const auto& t : templates) {
      table.AddRow({Field(t, "name"), Field(t, "job_type"), GpuText(Get(t, "config"), "x"),
                    Truncate(OneLine(Field(t, "title")), kDefaultMessageWidth)});
    }
  }
  return table.Render();
}

std::string FormatInstanceTable(const json& instances) {
  Table table({"ID", "PROVIDER", "STATUS", "GPU TYPE", "GPUS", "FREE"});
  if (instances.is_array()) {
    for (const auto& i : instances) {
      table.AddRow({Field(i, "instance_id"), Field(i, "provider"), Field(i, "status"),
                    Field(i, "gpu_type"), Field(i, "gpu_count"), Field(i, "gpus_free")});
    }
  }
  return table.Render();
}

}  // namespace gpuorch::gpuctl
