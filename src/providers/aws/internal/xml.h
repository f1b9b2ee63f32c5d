// A small XML reader for EC2 Query API answers: elements, text (with the five named entities,
// numeric character references and CDATA), attributes skipped, comments, processing instructions
// and a DOCTYPE skipped (no entity definitions are honoured). Namespace prefixes are dropped from
// element names. Built for untrusted input: bounded depth, size and node count; anything malformed
// is an error, never a crash. Pure; thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace gpuorch::providers::aws::internal {

struct XmlNode {
  std::string name;  // local name, e.g. "instanceId"
  std::string text;  // the concatenated character data directly inside this element
  std::vector<XmlNode> children;

  // The first child named `name`, or nullptr.
  const XmlNode* Child(std::string_view child_name) const;
  // The text of the first child named `name`, or "" when there is none.
  std::string ChildText(std::string_view child_name) const;
  // Follows a path of first children, e.g. Find({"instanceState", "name"}); nullptr if absent.
  const XmlNode* Find(std::initializer_list<std::string_view> path) const;
  // The `<item>` children of the child named `set_name` (EC2's list shape); empty when absent.
  std::vector<const XmlNode*> Items(std::string_view set_name) const;
};

struct XmlLimits {
  size_t max_bytes = 16 * 1024 * 1024;
  int max_depth = 64;
  size_t max_nodes = 200'000;
};

// The document's root element. kInvalidArgument (reason "malformed_xml") when `text` is not
// well-formed within `limits`.
[[nodiscard]] core::Result<XmlNode> ParseXml(std::string_view text, XmlLimits limits = {});

// `text` with & < > " ' escaped for element content or attribute values.
std::string XmlEscape(std::string_view text);

}  // namespace gpuorch::providers::aws::internal
