// HtmlRewriter::feed: the WHATWG tokenizer states that decide where tags are (see
// html_rewriter.h), run over each chunk of a body. The tag bookkeeping and the rewriting of a
// held tag's URL values are in html_rewriter.cc.
#include <cstring>
#include <string>
#include <string_view>

#include "core/base/ascii.h"
#include "core/rewrite/html_rewriter.h"
#include "core/rewrite/html_tokenizer_states.h"

namespace harrow {

using namespace html_internal;

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
        if (is_ascii_alpha(c)) {
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
        if (is_ascii_alpha(c)) {
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
        if (is_ascii_alpha(c)) {
          end_match_ = 0;
          end_ok_ = true;
          state_ = kRawEndTagName;
        } else {
          state_ = end_return_;
        }
        break;
      case kRawEndTagName:
        if (is_ascii_alpha(c)) {
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
        } else if (is_ascii_alpha(c)) {
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
        } else if (is_ascii_alpha(c)) {
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
