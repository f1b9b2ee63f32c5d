#include "apps/gpuctl/format.h"

#include <gtest/gtest.h>

#include "apps/gpuctl/table.h"

namespace gpuorch::gpuctl {
namespace {

using nlohmann::json;
using std::chrono::seconds;

core::SystemTime At(const char* rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return t.value_or(core::SystemTime{});
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TEST(TableTest, AlignsColumnsAndTrimsTrailingBlanks) {
  Table table({"ID", "NAME", "STATUS"});
  table.AddRow({"job-1", "a", "queued"});
  table.AddRow({"job-22", "long-name", "running"});
  EXPECT_EQ(table.Render(),
            "ID       NAME        STATUS\n"
            "job-1    a           queued\n"
            "job-22   long-name   running\n");
}

TEST(TableTest, MeasuresUtf8ByCodePointAndFlattensNewlines) {
  Table table({"A", "B"});
  table.AddRow({"ünï", "x"});
  table.AddRow({"line1\nline2", "y"});
  auto lines = Lines(table.Render());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "ünï           x");
  EXPECT_EQ(lines[2], "line1 line2   y");
}

TEST(TableTest, TruncateKeepsWholeCharacters) {
  EXPECT_EQ(Truncate("short", 10), "short");
  EXPECT_EQ(Truncate("exactly-10", 10), "exactly-10");
  EXPECT_EQ(Truncate("this is too long", 10), "this is...");
  EXPECT_EQ(Truncate("ääääääääääää", 5), "ää...");
  EXPECT_EQ(DisplayWidth(Truncate("ääääääääääää", 5)), 5u);
}

TEST(FormatTest, CellTextShowsNullsAsDash) {
  EXPECT_EQ(CellText(json()), "-");
  EXPECT_EQ(CellText(json::array()), "-");
  EXPECT_EQ(CellText(json({0, 1})), "0,1");
  EXPECT_EQ(CellText(json(3)), "3");
  EXPECT_EQ(CellText(json(false)), "false");
  EXPECT_EQ(CellText(json("x")), "x");
  EXPECT_EQ(Field(json({{"a", nullptr}}), "a"), "-");
  EXPECT_EQ(Field(json({{"a", 1}}), "missing"), "-");
  EXPECT_EQ(Field(json("not an object"), "a"), "-");
}

TEST(FormatTest, ParsesRfc3339) {
  auto base = At("2026-11-28T19:43:01Z");
  EXPECT_EQ(At("2026-11-28T19:43:01.500Z") - base, std::chrono::milliseconds(500));
  EXPECT_EQ(At("2026-11-28T21:43:01+02:00"), base);
  EXPECT_EQ(At("2026-11-28T18:43:01-01:00"), base);
  EXPECT_FALSE(ParseRfc3339("2026-11-28"));
  EXPECT_FALSE(ParseRfc3339("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("yesterday"));
}

TEST(FormatTest, Age) {
  EXPECT_EQ(FormatAge(seconds(-5)), "0s");
  EXPECT_EQ(FormatAge(seconds(42)), "42s");
  EXPECT_EQ(FormatAge(seconds(119)), "119s");
  EXPECT_EQ(FormatAge(seconds(17 * 60)), "17m");
  EXPECT_EQ(FormatAge(seconds(5 * 3600)), "5h");
  EXPECT_EQ(FormatAge(seconds(3 * 86400)), "3d");
}

TEST(FormatTest, ShellJoinQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(ShellJoin(json({"sh", "-c", "echo $X it's"})), "sh -c 'echo $X it'\\''s'");
  EXPECT_EQ(ShellJoin(json({"python", "train.py", "--lr=0.1"})), "python train.py --lr=0.1");
}

json Job(const char* id, const char* name, const char* status, json message, json config) {
  return json{{"job_id", id},
              {"name", name},
              {"job_type", "custom"},
              {"status", status},
              {"status_message", message},
              {"priority", 10},
              {"config", config},
              {"created_at", "2026-11-28T19:43:01.123Z"}};
}

TEST(FormatTest, JobTableAlignsTruncatesAndShowsNulls) {
  std::string long_message(100, 'm');
  json jobs = {
      Job("job-1", "hello", "queued", "waiting: needs 2 x RTX4090",
          {{"gpu_type", "RTX4090"}, {"gpu_count", 2}}),
      Job("job-22", "x", "running", long_message, {{"gpu_type", nullptr}, {"gpu_count", 1}}),
      Job("job-333", "y", "succeeded", nullptr, json::object()),
  };
  jobs[2]["created_at"] = nullptr;
  std::string table = FormatJobTable(jobs, At("2026-11-28T19:48:01Z"), 20);
  auto lines = Lines(table);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            "JOB ID    NAME    TYPE     STATUS      GPUS        PRIORITY   AGE   MESSAGE");
  EXPECT_EQ(
      lines[1],
      "job-1     hello   custom   queued      2xRTX4090   10         4m    waiting: needs 2 ...");
  EXPECT_EQ(
      lines[2],
      "job-22    x       custom   running     1           10         4m    mmmmmmmmmmmmmmmmm...");
  EXPECT_EQ(lines[3], "job-333   y       custom   succeeded   -           10         -     -");
  // Every column starts at the same offset on every line.
  for (const auto& line : lines) {
    EXPECT_EQ(line.find_first_not_of(' ', 10), 10u) << line;
  }
}

TEST(FormatTest, JobDetailListsFieldsAndTransitions) {
  json job = Job("job-1", "hello", "running", "started on local",
                 {{"gpu_type", "RTX4090"},
                  {"gpu_count", 2},
                  {"command", {"sh", "-c", "echo $X"}},
                  {"env", {{"MODE", "test"}}}});
  job["gpu_indices"] = {0, 1};
  job["node_id"] = "local";
  job["exit_code"] = nullptr;
  job["transitions"] = {
      {{"from", nullptr},
       {"to", "queued"},
       {"at", "2026-11-28T19:43:01.123Z"},
       {"attempt", 0},
       {"message", "submitted"}},
      {{"from", "queued"},
       {"to", "running"},
       {"at", "2026-11-28T19:43:02.000Z"},
       {"attempt", 0},
       {"message", "started on local"}},
  };
  std::string text = FormatJobDetail(job, At("2026-11-28T19:48:01Z"));
  EXPECT_NE(text.find("Job ID:           job-1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Status:           running\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Status message:   started on local\n"), std::string::npos) << text;
  EXPECT_NE(text.find("GPUs:             2 x RTX4090 (indices 0,1)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Node:             local\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Exit code:        -\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Command:          sh -c 'echo $X'\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Env:              MODE=test\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Created:          2026-11-28T19:43:01.123Z (4m ago)\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("Finished:         -\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find("Transitions:\n"
                "  AT                         FROM     TO        ATTEMPT   MESSAGE\n"
                "  2026-11-28T19:43:01.123Z   -        queued    0         submitted\n"
                "  2026-11-28T19:43:02.000Z   queued   running   0         started on local\n"),
      std::string::npos)
      << text;
}

TEST(FormatTest, InstanceTable) {
  json instances = {{{"instance_id", "local"},
                     {"provider", "local"},
                     {"status", "running"},
                     {"gpu_type", "RTX4090"},
                     {"gpu_count", 6},
                     {"gpus_free", 4}},
                    {{"instance_id", "rp-1"}, {"provider", "runpod"}, {"status", "pending"}}};
  EXPECT_EQ(FormatInstanceTable(instances),
            "ID      PROVIDER   STATUS    GPU TYPE   GPUS   FREE\n"
            "local   local      running   RTX4090    6      4\n"
            "rp-1    runpod     pending   -          -      -\n");
}

TEST(FormatTest, TemplateTable) {
  json templates = {{{"name", "llava-1.6-34b"},
                     {"title", "LLaVA 1.6 34B"},
                     {"job_type", "llava"},
                     {"config", {{"gpu_type", "A100"}, {"gpu_count", 2}}}}};
  EXPECT_EQ(FormatTemplateTable(templates),
            "NAME            JOB TYPE   GPUS     TITLE\n"
            "llava-1.6-34b   llava      2xA100   LLaVA 1.6 34B\n");
}

}  // namespace
}  // namespace gpuorch::gpuctl
