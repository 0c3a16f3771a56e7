// filterByTags parsing and HtmlRewriter's tag bookkeeping: which tags and attributes are
// filtered, holding a filtered start tag back, and writing it out with its URL values
// rewritten. The tokenizer that drives these is in html_tokenizer.cc.
#include "core/rewrite/html_rewriter.h"

#include <algorithm>

#include "core/base/ascii.h"
#include "core/rewrite/html_tokenizer_states.h"

namespace harrow {

using namespace html_internal;

namespace {

struct BuiltinTag {
  HtmlTag bit;
  std::string_view name;
  std::string_view attrs[3];
};
// IIS's attribute list per filterByTags tag.
constexpr BuiltinTag kBuiltin[] = {
    {HtmlTag::A, "a", {"href"}},
    {HtmlTag::Area, "area", {"href"}},
    {HtmlTag::Base, "base", {"href"}},
    {HtmlTag::Form, "form", {"action"}},
    {HtmlTag::Frame, "frame", {"src", "longdesc"}},
    {HtmlTag::Head, "head", {"profile"}},
    {HtmlTag::IFrame, "iframe", {"src", "longdesc"}},
    {HtmlTag::Img, "img", {"src", "longdesc", "usemap"}},
    {HtmlTag::Input, "input", {"src", "usemap"}},
    {HtmlTag::Link, "link", {"href"}},
    {HtmlTag::Script, "script", {"src"}},
};

struct RawTag {
  std::string_view name;
  State state;
};
// Start tags after which the tree builder switches the tokenizer out of the data state.
constexpr RawTag kRawTags[] = {
    {"script", kScriptData}, {"style", kRawText},   {"xmp", kRawText},
    {"iframe", kRawText},    {"noembed", kRawText}, {"noframes", kRawText},
    {"textarea", kRawText},  {"title", kRawText},   {"plaintext", kPlaintext},
};
constexpr size_t kLongestRawTag = 9;

}  // namespace

bool parse_filter_by_tags(std::string_view text, uint16_t& tags, std::string& error) {
  uint16_t result = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || is_space(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && text[j] != ',' && !is_space(text[j])) ++j;
    std::string_view token = text.substr(i, j - i);
    i = j;
    bool known = false;
    for (const BuiltinTag& tag : kBuiltin) {
      if (iequals(token, tag.name)) {
        result |= static_cast<uint16_t>(tag.bit);
        known = true;
        break;
      }
    }
    if (!known && iequals(token, "CustomTags")) {
      result |= static_cast<uint16_t>(HtmlTag::CustomTags);
      known = true;
    }
    if (!known) {
      error = "filterByTags: unknown tag '" + std::string(token) +
              "' (expected A, Area, Base, Form, Frame, Head, IFrame, Img, Input, Link, Script or "
              "CustomTags)";
      return false;
    }
  }
  tags = result;
  return true;
}

HtmlRewriter::HtmlRewriter(uint16_t tags,
                           std::vector<std::pair<std::string, std::string>> custom_tags,
                           HtmlUrlRewrite rewrite, size_t max_held)
    : rewrite_(std::move(rewrite)), max_held_(max_held) {
  auto add = [this](std::string tag, std::string attr) {
    if (tag.empty() || attr.empty()) return;
    tag = to_ascii_lower(tag);
    attr = to_ascii_lower(attr);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const TagEntry& e) { return e.name == tag; });
    if (it == entries_.end()) {
      entries_.push_back(TagEntry{std::move(tag), {}});
      it = entries_.end() - 1;
    }
    if (std::find(it->attrs.begin(), it->attrs.end(), attr) == it->attrs.end()) {
      it->attrs.push_back(std::move(attr));
    }
  };
  for (const BuiltinTag& tag : kBuiltin) {
    if (!(tags & static_cast<uint16_t>(tag.bit))) continue;
    for (std::string_view attr : tag.attrs) {
      if (!attr.empty()) add(std::string(tag.name), std::string(attr));
    }
  }
  for (auto& [tag, attr] : custom_tags) add(std::move(tag), std::move(attr));
  if (!rewrite_) entries_.clear();  // nothing to call: pass everything through

  name_cap_ = kLongestRawTag + 1;
  attr_cap_ = 1;
  for (const TagEntry& e : entries_) {
    name_cap_ = std::max(name_cap_, e.name.size() + 1);
    for (const std::string& a : e.attrs) attr_cap_ = std::max(attr_cap_, a.size() + 1);
  }
  name_.reserve(name_cap_);
  attr_.reserve(attr_cap_);
  edits_.reserve(8);
}

void HtmlRewriter::release_hold(std::string& out) {
  if (!holding_) return;
  holding_ = false;
  entry_ = -1;
  edits_.clear();
  // A tag that began in an earlier chunk: its first bytes are in held_ and go out before
  // anything of this chunk (out_from_ is still 0). A tag that began in this chunk is emitted
  // with the rest of the chunk from out_from_.
  if (!held_.empty()) {
    out.append(held_);
    held_.clear();
  }
}

void HtmlRewriter::step_tag_name_end(std::string& out) {
  if (is_end_) return;
  entry_ = -1;
  raw_state_ = kData;
  raw_name_ = {};
  if (!name_long_) {
    for (size_t k = 0; k < entries_.size(); ++k) {
      if (entries_[k].name == name_) {
        entry_ = static_cast<int>(k);
        break;
      }
    }
    if (name_.size() <= kLongestRawTag) {
      for (const RawTag& r : kRawTags) {
        if (r.name == name_) {
          raw_state_ = r.state;
          raw_name_ = r.name;
          break;
        }
      }
    }
  }
  if (entry_ < 0) {
    release_hold(out);
  } else {
    cur_attr_ = -1;
    seen_ = 0;
    edits_.clear();
  }
}

void HtmlRewriter::begin_attr() {
  attr_.clear();
  attr_long_ = false;
  cur_attr_ = -1;
}

void HtmlRewriter::end_attr_name() {
  cur_attr_ = -1;
  if (!holding_ || attr_long_) return;
  const auto& attrs = entries_[entry_].attrs;
  for (size_t k = 0; k < attrs.size(); ++k) {
    if (attrs[k] != attr_) continue;
    uint64_t bit = k < 64 ? (uint64_t{1} << k) : 0;
    if (seen_ & bit) return;  // a duplicate: the browser keeps the first
    seen_ |= bit;
    cur_attr_ = static_cast<int>(k);
    return;
  }
}

void HtmlRewriter::push_value(uint64_t end, char quote) {
  if (holding_ && cur_attr_ >= 0) {
    edits_.push_back(Edit{static_cast<uint32_t>(cur_attr_), quote, value_begin_, end});
  }
  cur_attr_ = -1;
}

uint8_t HtmlRewriter::emit_tag(const char* p, size_t i, std::string& out) {
  uint8_t next = is_end_ ? uint8_t{kData} : raw_state_;
  if (!is_end_) {
    raw_state_ = kData;
  } else {
    raw_name_ = {};
  }
  if (!holding_) return next;
  uint64_t length = base_ + i + 1 - tag_begin_;
  if (edits_.empty() || length > max_held_) {
    release_hold(out);
    return next;
  }
  std::string_view tag;
  if (held_.empty()) {
    tag = std::string_view(p + out_from_, i + 1 - out_from_);
  } else {
    held_.append(p, i + 1);
    tag = held_;
  }
  write_tag(tag, out);
  out_from_ = i + 1;
  held_.clear();
  holding_ = false;
  entry_ = -1;
  edits_.clear();
  return next;
}

void HtmlRewriter::write_tag(std::string_view tag, std::string& out) {
  size_t cursor = 0;
  for (const Edit& e : edits_) {
    size_t b = static_cast<size_t>(e.begin - tag_begin_);
    size_t len = static_cast<size_t>(e.end - e.begin);
    scratch_.clear();
    if (!rewrite_(entries_[entry_].name, entries_[entry_].attrs[e.attr], tag.substr(b, len),
                  scratch_))
      continue;
    ++rewritten_;
    out.append(tag.data() + cursor, b - cursor);
    append_value(out, scratch_, e.quote);
    cursor = b + len;
  }
  out.append(tag.data() + cursor, tag.size() - cursor);
}

void HtmlRewriter::append_value(std::string& out, std::string_view value, char quote) {
  auto escaped = [&out](std::string_view v, char q, std::string_view entity) {
    size_t from = 0;
    for (size_t at = v.find(q); at != std::string_view::npos; at = v.find(q, from)) {
      out.append(v.data() + from, at - from);
      out.append(entity);
      from = at + 1;
    }
    out.append(v.data() + from, v.size() - from);
  };
  if (quote == '"') {
    escaped(value, '"', "&quot;");
  } else if (quote == '\'') {
    escaped(value, '\'', "&#39;");
  } else if (value.empty() || value.find_first_of(" \t\n\r\f\"'=<>`") != std::string_view::npos) {
    out.push_back('"');
    escaped(value, '"', "&quot;");
    out.push_back('"');
  } else {
    out.append(value);
  }
}

}  // namespace harrow
