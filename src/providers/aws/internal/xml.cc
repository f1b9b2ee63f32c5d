#include "providers/aws/internal/xml.h"

#include <cstdint>

namespace gpuorch::providers::aws::internal {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

class Parser {
 public:
  Parser(std::string_view text, XmlLimits limits) : s_(text), limits_(limits) {}

  core::Result<XmlNode> Document() {
    if (s_.size() > limits_.max_bytes) {
      return Malformed("document too large");
    }
    if (s_.starts_with("\xEF\xBB\xBF")) {
      pos_ = 3;
    }
    GPUORCH_TRY(SkipMisc(/*allow_doctype=*/true));
    if (!At("<")) {
      return Malformed("no root element");
    }
    XmlNode root;
    GPUORCH_TRY(Element(root, 1));
    GPUORCH_TRY(SkipMisc(/*allow_doctype=*/false));
    if (pos_ != s_.size()) {
      return Malformed("content after the root element");
    }
    return root;
  }

 private:
  static tl::unexpected<core::Error> Malformed(std::string what) {
    return core::Fail(core::Code::kInvalidArgument, "malformed XML: " + what, "", "malformed_xml");
  }

  bool At(std::string_view prefix) const { return s_.substr(pos_).starts_with(prefix); }

  void SkipSpace() {
    while (pos_ < s_.size() && IsSpace(s_[pos_])) {
      ++pos_;
    }
  }

  // Moves past the next `terminator`; false when there is none.
  bool SkipPast(std::string_view terminator) {
    size_t end = s_.find(terminator, pos_);
    if (end == std::string_view::npos) {
      return false;
    }
    pos_ = end + terminator.size();
    return true;
  }

  core::Status SkipMisc(bool allow_doctype) {
    for (;;) {
      SkipSpace();
      if (At("<?")) {
        if (!SkipPast("?>")) {
          return Malformed("unterminated processing instruction");
        }
      } else if (At("<!--")) {
        if (!SkipPast("-->")) {
          return Malformed("unterminated comment");
        }
      } else if (allow_doctype && At("<!DOCTYPE")) {
        // Internal subsets ("[...]") may hold '>' inside; entity definitions are not honoured.
        size_t bracket = s_.find('[', pos_);
        size_t close = s_.find('>', pos_);
        if (bracket != std::string_view::npos && close != std::string_view::npos &&
            bracket < close) {
          pos_ = bracket;
          if (!SkipPast("]")) {
            return Malformed("unterminated DOCTYPE");
          }
        }
        if (!SkipPast(">")) {
          return Malformed("unterminated DOCTYPE");
        }
      } else {
        return core::Ok();
      }
    }
  }

  core::Result<std::string> Name() {
    size_t start = pos_;
    while (pos_ < s_.size() && !IsSpace(s_[pos_]) && s_[pos_] != '/' && s_[pos_] != '>' &&
           s_[pos_] != '=' && s_[pos_] != '<' && s_[pos_] != '"' && s_[pos_] != '\'') {
      ++pos_;
    }
    if (pos_ == start) {
      return Malformed("expected a name");
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  static std::string LocalName(const std::string& name) {
    size_t colon = name.find(':');
    return colon == std::string::npos ? name : name.substr(colon + 1);
  }

  // Skips attributes; true when the tag closed itself ("/>").
  core::Result<bool> Attributes() {
    for (;;) {
      SkipSpace();
      if (pos_ >= s_.size()) {
        return Malformed("unterminated tag");
      }
      if (At("/>")) {
        pos_ += 2;
        return true;
      }
      if (s_[pos_] == '>') {
        ++pos_;
        return false;
      }
      GPUORCH_TRY(Name());
      SkipSpace();
      if (!At("=")) {
        return Malformed("attribute without a value");
      }
      ++pos_;
      SkipSpace();
      if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
        return Malformed("unquoted attribute value");
      }
      const char quote = s_[pos_++];
      size_t end = s_.find(quote, pos_);
      if (end == std::string_view::npos ||
          s_.substr(pos_, end - pos_).find('<') != std::string_view::npos) {
        return Malformed("bad attribute value");
      }
      pos_ = end + 1;
    }
  }

  core::Status Entity(std::string& out) {
    size_t end = s_.find(';', pos_);
    if (end == std::string_view::npos || end - pos_ > 12) {
      return Malformed("bad entity");
    }
    std::string_view name = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    if (name == "lt") {
      out.push_back('<');
    } else if (name == "gt") {
      out.push_back('>');
    } else if (name == "amp") {
      out.push_back('&');
    } else if (name == "quot") {
      out.push_back('"');
    } else if (name == "apos") {
      out.push_back('\'');
    } else if (name.size() >= 2 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      std::string_view digits = name.substr(hex ? 2 : 1);
      if (digits.empty()) {
        return Malformed("bad character reference");
      }
      uint32_t cp = 0;
      for (char c : digits) {
        int v = -1;
        if (c >= '0' && c <= '9') {
          v = c - '0';
        } else if (hex && c >= 'a' && c <= 'f') {
          v = c - 'a' + 10;
        } else if (hex && c >= 'A' && c <= 'F') {
          v = c - 'A' + 10;
        }
        if (v < 0) {
          return Malformed("bad character reference");
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
        if (cp > 0x10FFFF) {
          return Malformed("bad character reference");
        }
      }
      if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return Malformed("bad character reference");
      }
      AppendUtf8(out, cp);
    } else {
      return Malformed("unknown entity");
    }
    return core::Ok();
  }

  core::Status Element(XmlNode& node, int depth) {
    if (depth > limits_.max_depth) {
      return Malformed("nested too deeply");
    }
    if (++nodes_ > limits_.max_nodes) {
      return Malformed("too many elements");
    }
    ++pos_;  // '<'
    GPUORCH_ASSIGN_OR_RETURN(std::string raw_name, Name());
    node.name = LocalName(raw_name);
    GPUORCH_ASSIGN_OR_RETURN(bool self_closed, Attributes());
    if (self_closed) {
      return core::Ok();
    }
    for (;;) {
      if (pos_ >= s_.size()) {
        return Malformed("unterminated element <" + node.name + ">");
      }
      if (At("</")) {
        pos_ += 2;
        GPUORCH_ASSIGN_OR_RETURN(std::string closing, Name());
        SkipSpace();
        if (closing != raw_name || !At(">")) {
          return Malformed("mismatched closing tag");
        }
        ++pos_;
        return core::Ok();
      }
      if (At("<!--")) {
        if (!SkipPast("-->")) {
          return Malformed("unterminated comment");
        }
      } else if (At("<![CDATA[")) {
        pos_ += 9;
        size_t end = s_.find("]]>", pos_);
        if (end == std::string_view::npos) {
          return Malformed("unterminated CDATA");
        }
        node.text.append(s_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (At("<?")) {
        if (!SkipPast("?>")) {
          return Malformed("unterminated processing instruction");
        }
      } else if (At("<!")) {
        return Malformed("unexpected declaration");
      } else if (s_[pos_] == '<') {
        node.children.emplace_back();
        GPUORCH_TRY(Element(node.children.back(), depth + 1));
      } else if (s_[pos_] == '&') {
        GPUORCH_TRY(Entity(node.text));
      } else {
        size_t end = s_.find_first_of("<&", pos_);
        if (end == std::string_view::npos) {
          end = s_.size();
        }
        node.text.append(s_.substr(pos_, end - pos_));
        pos_ = end;
      }
    }
  }

  std::string_view s_;
  XmlLimits limits_;
  size_t pos_ = 0;
  size_t nodes_ = 0;
};

}  // namespace

const XmlNode* XmlNode::Child(std::string_view child_name) const {
  for (const XmlNode& child : children) {
    if (child.name == child_name) {
      return &child;
    }
  }
  return nullptr;
}

std::string XmlNode::ChildText(std::string_view child_name) const {
  const XmlNode* child = Child(child_name);
  return child == nullptr ? std::string() : std::string(TrimView(child->text));
}

const XmlNode* XmlNode::Find(std::initializer_list<std::string_view> path) const {
  const XmlNode* node = this;
  for (std::string_view name : path) {
    node = node->Child(name);
    if (node == nullptr) {
      return nullptr;
    }
  }
  return node;
}

std::vector<const XmlNode*> XmlNode::Items(std::string_view set_name) const {
  std::vector<const XmlNode*> items;
  const XmlNode* set = Child(set_name);
  if (set == nullptr) {
    return items;
  }
  for (const XmlNode& child : set->children) {
    if (child.name == "item") {
      items.push_back(&child);
    }
  }
  return items;
}

core::Result<XmlNode> ParseXml(std::string_view text, XmlLimits limits) {
  return Parser(text, limits).Document();
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace gpuorch::providers::aws::internal
