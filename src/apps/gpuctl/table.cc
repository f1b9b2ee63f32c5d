#include "apps/gpuctl/table.h"

#include <algorithm>

namespace gpuorch::gpuctl {
namespace {

constexpr std::string_view kColumnGap = "   ";

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

size_t DisplayWidth(std::string_view utf8) {
  return static_cast<size_t>(
      std::count_if(utf8.begin(), utf8.end(), [](char c) { return !IsContinuationByte(c); }));
}

std::string Truncate(std::string_view utf8, size_t max_width) {
  if (DisplayWidth(utf8) <= max_width) {
    return std::string(utf8);
  }
  size_t keep = max_width - 3;
  size_t points = 0;
  size_t end = 0;
  // Walk to the byte where code point number `keep` starts.
  for (; end < utf8.size(); ++end) {
    if (!IsContinuationByte(utf8[end])) {
      if (points == keep) {
        break;
      }
      ++points;
    }
  }
  return std::string(utf8.substr(0, end)) + "...";
}

std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') {
      c = ' ';
    }
  }
  return out;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  for (auto& cell : cells) {
    cell = OneLine(cell);
  }
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(row[i]));
    }
  };
  measure(headers_);
  for (const auto& row : rows_) {
    measure(row);
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) {
        line += kColumnGap;
      }
      line += row[i];
      line.append(widths[i] - DisplayWidth(row[i]), ' ');
    }
    // Padding after the last column is noise for terminals and diff tools.
    while (!line.empty() && line.back() == ' ') {
      line.pop_back();
    }
    out += line;
    out += '\n';
  };
  emit(headers_);
  for (const auto& row : rows_) {
    emit(row);
  }
  return out;
}

}  // namespace gpuorch::gpuctl
