#include "core/rewrite/html_rewriter.h"

#include <algorithm>
#include <cstring>

#include "core/base/ascii.h"

namespace harrow {

namespace {

// Tokenizer states (WHATWG names, shortened). Comments keep the states that decide where they
// end; the nested "<!--" states only report parse errors and end comments in the same places.
enum State : uint8_t {
  kData,
  kTagOpen,
  kEndTagOpen,
  kMarkupDecl,
  kBogusComment,  // also DOCTYPE: both end at the first '>'
  kCommentStart,
  kCommentStartDash,
  kComment,
  kCommentEndDash,
  kCommentEnd,
  kCommentEndBang,
  kCData,
  kCDataBracket,
  kCDataEnd,
  kTagName,
  kBeforeAttrName,
  kAttrName,
  kAfterAttrName,
  kBeforeAttrValue,
  kAttrValueDq,
  kAttrValueSq,
  kAttrValueUnquoted,
  kAfterAttrValueQuoted,
  kSelfClosingStart,
  kRawText,  // RAWTEXT and RCDATA (the difference, character references, does not matter here)
  kRawLt,
  kRawEndTagOpen,  // shared by raw text and script data; end_return_ says where to go back
  kRawEndTagName,
  kScriptData,
  kScriptLt,
  kScriptEscapeStart,
  kScriptEscapeStartDash,
  kScriptEscaped,
  kScriptEscapedDash,
  kScriptEscapedDashDash,
  kScriptEscapedLt,
  kScriptDoubleEscapeStart,
  kScriptDoubleEscaped,
  kScriptDoubleEscapedDash,
  kScriptDoubleEscapedDashDash,
  kScriptDoubleEscapedLt,
  kScriptDoubleEscapeEnd,
  kPlaintext,
};

constexpr bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f';
}
constexpr bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

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

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = ascii_lower(c);
  return r;
}

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
    tag = lower(tag);
    attr = lower(attr);
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

void HtmlRewriter::feed(std::string_view in, std::string& out) {
  const char* p = in.data();
  const size_t n = in.size();
  size_t i = 0;
  out_from_ = 0;
  if (entries_.empty()) {  // nothing filtered
    out.append(in);
    base_ += n;
    return;
  }
  while (i < n) {
    char c = p[i];
    switch (state_) {
      case kData: {
        const void* lt = std::memchr(p + i, '<', n - i);
        if (lt == nullptr) {
          i = n;
          break;
        }
        i = static_cast<size_t>(static_cast<const char*>(lt) - p);
        // Hold from '<' in case this is a filtered start tag.
        out.append(p + out_from_, i - out_from_);
        out_from_ = i;
        holding_ = true;
        tag_begin_ = base_ + i;
        state_ = kTagOpen;
        ++i;
        break;
      }
      case kTagOpen:
        if (is_alpha(c)) {
          is_end_ = false;
          name_.clear();
          name_long_ = false;
          state_ = kTagName;
          break;
        }
        release_hold(out);
        if (c == '!') {
          md_len_ = 0;
          state_ = kMarkupDecl;
          ++i;
        } else if (c == '/') {
          state_ = kEndTagOpen;
          ++i;
        } else if (c == '?') {
          state_ = kBogusComment;
          ++i;
        } else {
          state_ = kData;  // the '<' was text
        }
        break;
      case kEndTagOpen:
        if (is_alpha(c)) {
          is_end_ = true;
          state_ = kTagName;
        } else if (c == '>') {
          state_ = kData;  // "</>" is dropped by browsers; passed through here
          ++i;
        } else {
          state_ = kBogusComment;
        }
        break;
      case kMarkupDecl: {
        md_buf_[md_len_++] = c;
        std::string_view md(md_buf_, md_len_);
        auto prefix_of = [&md](std::string_view word, bool fold) {
          return md.size() <= word.size() &&
                 (fold ? iequals(md, word.substr(0, md.size())) : word.starts_with(md));
        };
        if (md == "--") {
          state_ = kCommentStart;
          ++i;
        } else if (md.size() == 7 && iequals(md, "doctype")) {
          state_ = kBogusComment;
          ++i;
        } else if (md == "[CDATA[") {
          state_ = kCData;
          ++i;
        } else if (prefix_of("--", false) || prefix_of("doctype", true) ||
                   prefix_of("[CDATA[", false)) {
          ++i;
        } else {
          state_ = kBogusComment;  // reconsume: only this byte can be the '>' that ends it
        }
        break;
      }
      case kBogusComment: {
        const void* gt = std::memchr(p + i, '>', n - i);
        if (gt == nullptr) {
          i = n;
        } else {
          i = static_cast<size_t>(static_cast<const char*>(gt) - p) + 1;
          state_ = kData;
        }
        break;
      }
      case kCommentStart:
        if (c == '-') {
          state_ = kCommentStartDash;
          ++i;
        } else if (c == '>') {
          state_ = kData;  // <!-->
          ++i;
        } else {
          state_ = kComment;
        }
        break;
      case kCommentStartDash:
        if (c == '-') {
          state_ = kCommentEnd;
          ++i;
        } else if (c == '>') {
          state_ = kData;  // <!--->
          ++i;
        } else {
          state_ = kComment;
        }
        break;
      case kComment: {
        const void* dash = std::memchr(p + i, '-', n - i);
        if (dash == nullptr) {
          i = n;
        } else {
          i = static_cast<size_t>(static_cast<const char*>(dash) - p) + 1;
          state_ = kCommentEndDash;
        }
        break;
      }
      case kCommentEndDash:
        if (c == '-') {
          state_ = kCommentEnd;
          ++i;
        } else {
          state_ = kComment;
        }
        break;
      case kCommentEnd:
        if (c == '>') {
          state_ = kData;
          ++i;
        } else if (c == '!') {
          state_ = kCommentEndBang;
          ++i;
        } else if (c == '-') {
          ++i;
        } else {
          state_ = kComment;
        }
        break;
      case kCommentEndBang:
        if (c == '-') {
          state_ = kCommentEndDash;
          ++i;
        } else if (c == '>') {
          state_ = kData;
          ++i;
        } else {
          state_ = kComment;
        }
        break;
      case kCData: {
        const void* br = std::memchr(p + i, ']', n - i);
        if (br == nullptr) {
          i = n;
        } else {
          i = static_cast<size_t>(static_cast<const char*>(br) - p) + 1;
          state_ = kCDataBracket;
        }
        break;
      }
      case kCDataBracket:
        if (c == ']') {
          state_ = kCDataEnd;
          ++i;
        } else {
          state_ = kCData;
        }
        break;
      case kCDataEnd:
        if (c == '>') {
          state_ = kData;
          ++i;
        } else if (c == ']') {
          ++i;
        } else {
          state_ = kCData;
        }
        break;

      case kTagName: {
        // The name runs to whitespace, '/' or '>'.
        size_t j = i;
        while (j < n && !is_space(p[j]) && p[j] != '/' && p[j] != '>') ++j;
        if (!is_end_) {
          for (size_t k = i; k < j; ++k) {
            if (name_.size() < name_cap_) {
              name_.push_back(ascii_lower(p[k]));
            } else {
              name_long_ = true;
            }
          }
        }
        i = j;
        if (i == n) break;
        c = p[i];
        step_tag_name_end(out);
        if (c == '>') {
          state_ = emit_tag(p, i, out);
        } else {
          state_ = c == '/' ? kSelfClosingStart : kBeforeAttrName;
        }
        ++i;
        break;
      }
      case kBeforeAttrName:
        if (is_space(c)) {
          ++i;
        } else if (c == '/' || c == '>') {
          state_ = kAfterAttrName;
        } else {
          begin_attr();
          state_ = kAttrName;
          if (c == '=') {  // '=' here starts the name
            if (holding_) attr_.push_back('=');
            ++i;
          }
        }
        break;
      case kAttrName: {
        size_t j = i;
        while (j < n && !is_space(p[j]) && p[j] != '/' && p[j] != '>' && p[j] != '=') ++j;
        if (holding_) {
          for (size_t k = i; k < j; ++k) {
            if (attr_.size() < attr_cap_) {
              attr_.push_back(ascii_lower(p[k]));
            } else {
              attr_long_ = true;
            }
          }
        }
        i = j;
        if (i == n) break;
        end_attr_name();
        if (p[i] == '=') {
          state_ = kBeforeAttrValue;
          ++i;
        } else {
          state_ = kAfterAttrName;
        }
        break;
      }
      case kAfterAttrName:
        if (is_space(c)) {
          ++i;
        } else if (c == '/') {
          state_ = kSelfClosingStart;
          ++i;
        } else if (c == '=') {
          state_ = kBeforeAttrValue;
          ++i;
        } else if (c == '>') {
          state_ = emit_tag(p, i, out);
          ++i;
        } else {
          begin_attr();
          state_ = kAttrName;
        }
        break;
      case kBeforeAttrValue:
        if (is_space(c)) {
          ++i;
        } else if (c == '"') {
          state_ = kAttrValueDq;
          value_begin_ = base_ + i + 1;
          ++i;
        } else if (c == '\'') {
          state_ = kAttrValueSq;
          value_begin_ = base_ + i + 1;
          ++i;
        } else if (c == '>') {
          cur_attr_ = -1;  // "href=>": an empty value with nothing to replace
          state_ = emit_tag(p, i, out);
          ++i;
        } else {
          state_ = kAttrValueUnquoted;
          value_begin_ = base_ + i;
        }
        break;
      case kAttrValueDq:
      case kAttrValueSq: {
        char quote = state_ == kAttrValueDq ? '"' : '\'';
        const void* q = std::memchr(p + i, quote, n - i);
        if (q == nullptr) {
          i = n;
        } else {
          i = static_cast<size_t>(static_cast<const char*>(q) - p);
          push_value(base_ + i, quote);
          state_ = kAfterAttrValueQuoted;
          ++i;
        }
        break;
      }
      case kAttrValueUnquoted: {
        size_t j = i;
        while (j < n && !is_space(p[j]) && p[j] != '>') ++j;
        i = j;
        if (i == n) break;
        push_value(base_ + i, 0);
        if (p[i] == '>') {
          state_ = emit_tag(p, i, out);
        } else {
          state_ = kBeforeAttrName;
        }
        ++i;
        break;
      }
      case kAfterAttrValueQuoted:
        if (is_space(c)) {
          state_ = kBeforeAttrName;
          ++i;
        } else if (c == '/') {
          state_ = kSelfClosingStart;
          ++i;
        } else if (c == '>') {
          state_ = emit_tag(p, i, out);
          ++i;
        } else {
          state_ = kBeforeAttrName;
        }
        break;
      case kSelfClosingStart:
        if (c == '>') {
          state_ = emit_tag(p, i, out);
          ++i;
        } else {
          state_ = kBeforeAttrName;
        }
        break;

      case kRawText: {
        const void* lt = std::memchr(p + i, '<', n - i);
        if (lt == nullptr) {
          i = n;
        } else {
          i = static_cast<size_t>(static_cast<const char*>(lt) - p) + 1;
          state_ = kRawLt;
        }
        break;
      }
      case kRawLt:
        if (c == '/') {
          end_return_ = kRawText;
          state_ = kRawEndTagOpen;
          ++i;
        } else {
          state_ = kRawText;
        }
        break;
      case kRawEndTagOpen:
        if (is_alpha(c)) {
          end_match_ = 0;
          end_ok_ = true;
          state_ = kRawEndTagName;
        } else {
          state_ = end_return_;
        }
        break;
      case kRawEndTagName:
        if (is_alpha(c)) {
          if (end_ok_ && end_match_ < raw_name_.size() && ascii_lower(c) == raw_name_[end_match_]) {
            ++end_match_;
          } else {
            end_ok_ = false;
          }
          ++i;
        } else if ((is_space(c) || c == '/' || c == '>') && end_ok_ &&
                   end_match_ == raw_name_.size()) {
          // The appropriate end tag: back to tag states, then to data.
          is_end_ = true;
          if (c == '>') {
            state_ = emit_tag(p, i, out);
          } else {
            state_ = c == '/' ? kSelfClosingStart : kBeforeAttrName;
          }
          ++i;
        } else {
          state_ = end_return_;
        }
        break;

      case kScriptData: {
        const void* lt = std::memchr(p + i, '<', n - i);
        if (lt == nullptr) {
          i = n;
        } else {
          i = static_cast<size_t>(static_cast<const char*>(lt) - p) + 1;
          state_ = kScriptLt;
        }
        break;
      }
      case kScriptLt:
        if (c == '/') {
          end_return_ = kScriptData;
          state_ = kRawEndTagOpen;
          ++i;
        } else if (c == '!') {
          state_ = kScriptEscapeStart;
          ++i;
        } else {
          state_ = kScriptData;
        }
        break;
      case kScriptEscapeStart:
        if (c == '-') {
          state_ = kScriptEscapeStartDash;
          ++i;
        } else {
          state_ = kScriptData;
        }
        break;
      case kScriptEscapeStartDash:
        if (c == '-') {
          state_ = kScriptEscapedDashDash;
          ++i;
        } else {
          state_ = kScriptData;
        }
        break;
      case kScriptEscaped:
      case kScriptDoubleEscaped: {
        size_t j = i;
        while (j < n && p[j] != '-' && p[j] != '<') ++j;
        i = j;
        if (i == n) break;
        bool dbl = state_ == kScriptDoubleEscaped;
        if (p[i] == '-') {
          state_ = dbl ? kScriptDoubleEscapedDash : kScriptEscapedDash;
        } else {
          state_ = dbl ? kScriptDoubleEscapedLt : kScriptEscapedLt;
        }
        ++i;
        break;
      }
      case kScriptEscapedDash:
        state_ = c == '-' ? kScriptEscapedDashDash : c == '<' ? kScriptEscapedLt : kScriptEscaped;
        ++i;
        break;
      case kScriptEscapedDashDash:
        if (c == '-') {
        } else if (c == '<') {
          state_ = kScriptEscapedLt;
        } else if (c == '>') {
          state_ = kScriptData;
        } else {
          state_ = kScriptEscaped;
        }
        ++i;
        break;
      case kScriptEscapedLt:
        if (c == '/') {
          end_return_ = kScriptEscaped;
          state_ = kRawEndTagOpen;
          ++i;
        } else if (is_alpha(c)) {
          end_match_ = 0;
          end_ok_ = true;
          state_ = kScriptDoubleEscapeStart;
        } else {
          state_ = kScriptEscaped;
        }
        break;
      case kScriptDoubleEscapeStart:
      case kScriptDoubleEscapeEnd: {
        bool start = state_ == kScriptDoubleEscapeStart;
        if (is_space(c) || c == '/' || c == '>') {
          bool script = end_ok_ && end_match_ == 6;
          if (start) {
            state_ = script ? kScriptDoubleEscaped : kScriptEscaped;
          } else {
            state_ = script ? kScriptEscaped : kScriptDoubleEscaped;
          }
          ++i;
        } else if (is_alpha(c)) {
          if (end_ok_ && end_match_ < 6 && ascii_lower(c) == "script"[end_match_]) {
            ++end_match_;
          } else {
            end_ok_ = false;
          }
          ++i;
        } else {
          state_ = start ? kScriptEscaped : kScriptDoubleEscaped;
        }
        break;
      }
      case kScriptDoubleEscapedDash:
        state_ = c == '-'   ? kScriptDoubleEscapedDashDash
                 : c == '<' ? kScriptDoubleEscapedLt
                            : kScriptDoubleEscaped;
        ++i;
        break;
      case kScriptDoubleEscapedDashDash:
        if (c == '-') {
        } else if (c == '<') {
          state_ = kScriptDoubleEscapedLt;
        } else if (c == '>') {
          state_ = kScriptData;
        } else {
          state_ = kScriptDoubleEscaped;
        }
        ++i;
        break;
      case kScriptDoubleEscapedLt:
        if (c == '/') {
          end_match_ = 0;
          end_ok_ = true;
          state_ = kScriptDoubleEscapeEnd;
          ++i;
        } else {
          state_ = kScriptDoubleEscaped;
        }
        break;
      case kPlaintext:
        i = n;
        break;
    }
  }

  // End of chunk: what is not held goes out now.
  if (holding_) {
    size_t rest = n - out_from_;
    if (held_.size() + rest > max_held_) {
      // Too long to hold: pass it through unmodified; the tokenizer keeps its place.
      out.append(held_);
      out.append(p + out_from_, rest);
      held_.clear();
      holding_ = false;
      entry_ = -1;
      edits_.clear();
    } else {
      held_.append(p + out_from_, rest);
    }
  } else {
    out.append(p + out_from_, n - out_from_);
  }
  out_from_ = 0;
  base_ += n;
}

void HtmlRewriter::finish(std::string& out) {
  out.append(held_);
  held_.clear();
  holding_ = false;
  entry_ = -1;
  edits_.clear();
  state_ = kData;
  raw_name_ = {};
  raw_state_ = kData;
  base_ = 0;
}

}  // namespace harrow
