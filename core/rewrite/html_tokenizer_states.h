// The HTML tokenizer states HtmlRewriter moves through, shared by the tokenizer itself
// (html_tokenizer.cc: HtmlRewriter::feed) and the tag bookkeeping that chooses the state after
// a start tag (html_rewriter.cc). Internal to core/rewrite.
#pragma once

#include <cstdint>

namespace harrow::html_internal {

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

// HTML's ASCII whitespace (WHATWG Infra): TAB, LF, FF, CR and space. Not is_ascii_space: a
// vertical tab is not whitespace to an HTML tokenizer.
constexpr bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f';
}

}  // namespace harrow::html_internal
