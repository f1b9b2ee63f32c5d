// Plain-text tables for gpuctl's table output: left-aligned columns separated by three spaces,
// widths measured in UTF-8 code points, no trailing blanks.
// Thread-safe: values and pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gpuorch::gpuctl {

// The number of code points in `utf8` (a fair stand-in for terminal columns for the names,
// states and messages gpuctl shows).
size_t DisplayWidth(std::string_view utf8);

// `utf8` cut to at most `max_width` code points, ending in "..." when cut; never splits a
// multi-byte character. REQUIRES: max_width >= 3.
std::string Truncate(std::string_view utf8, size_t max_width);

// `text` with newlines, carriage returns and tabs replaced by spaces, so a cell stays on one line.
std::string OneLine(std::string_view text);

class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // Adds a row; cells are flattened with OneLine. Missing cells print empty, extra ones are
  // dropped.
  void AddRow(std::vector<std::string> cells);

  size_t row_count() const { return rows_.size(); }

  // The header line and every row, each ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace gpuorch::gpuctl
