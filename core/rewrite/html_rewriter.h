// Streaming HTML rewriter for URL Rewrite outbound rules with filterByTags: finds the
// URL-valued attributes of the filtered tags (and of <customTags>) in a response body as it
// streams through and lets a callback replace their values. Everything else is passed through
// byte for byte. No I/O: the response path feeds body bytes in and sends what comes out.
//
// Tokenizing follows the WHATWG tokenizer states that decide where tags are:
//  - tag and attribute names are ASCII case-insensitive; attribute values may be double-quoted,
//    single-quoted, unquoted or absent; whitespace is TAB, LF, FF, CR and space;
//  - comments (<!-- ... -->, --!>, and the abrupt <!--> and <!--->), <!DOCTYPE ...>, bogus
//    comments (<?...>, </1...>, <!x...>) and <![CDATA[ ... ]]> pass through untouched;
//  - the content of <script> (with the script-data escaped and double-escaped states, so
//    <!-- <script> ... </script> --> inside a script does not end it), <style>, <xmp>,
//    <iframe>, <noembed>, <noframes> (raw text), <textarea>, <title> (RCDATA) and <plaintext>
//    is text, not tags; the opening tag's own attributes (<script src>, <iframe src>) are
//    still filtered; end tags match case-insensitively followed by whitespace, '/' or '>';
//  - '<' not followed by a letter, '!', '/' or '?' is text.
// Deliberate simplifications (a tokenizer without a tree builder): <![CDATA[ is always a CDATA
// section ending at "]]>" (browsers treat it so only inside SVG/MathML), <noscript> content is
// parsed as markup (as with scripting disabled, so its links are rewritten), and <svg>/<math>
// content follows HTML rules (<svg><style> is still raw text there).
//
// Which attribute values are offered to the callback: those of start tags (never end tags),
// only the first occurrence of a name in a tag (a browser drops later duplicates), and only
// attributes with a value (`href=""` is offered with an empty value; `<a href>` is not).
// The callback sees the value as written (entities not decoded, no quotes) and the tag and
// attribute names in lower case.
//
// Emitting a replacement: a quoted value keeps its quotes, and a quote character of the same
// kind inside the replacement is written as &quot; or &#39;. An unquoted value stays unquoted
// unless the replacement is empty or contains whitespace, '"', '\'', '=', '<', '>' or '`' (the
// characters that end or are invalid in an unquoted value); then it is written in double quotes
// with '"' as &quot;. The callback should return the replacement HTML-encoded as it wants it
// written (as it received the value).
//
// Streaming: the output is identical however the body is split into feed() calls. Only a start
// tag of a filtered tag is held back, from its '<' to its '>' (a '<' is held only until what
// follows shows it is not one: a comment, an end tag, another tag's name, text); every other
// byte is emitted by the feed() that brings it, text in bulk (found with memchr). A filtered
// tag longer than max_held bytes (counting '<' through '>') is passed through unmodified —
// whatever the split — so memory stays bounded by max_held. The callback runs when a tag's
// '>' arrives, once per offered value, in document order, the same calls for any split.
// An HtmlRewriter may be copied or moved, also in the middle of a body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace harrow {

// Which tags' URL attributes an outbound rule looks at (IIS filterByTags). CustomTags is IIS's
// flag saying the rule also uses its customTags collection; the tags themselves are passed to
// HtmlRewriter as pairs, so the rewriter ignores this bit.
enum class HtmlTag : uint16_t {
  A = 1,
  Area = 2,
  Base = 4,
  Form = 8,
  Frame = 16,
  Head = 32,
  IFrame = 64,
  Img = 128,
  Input = 256,
  Link = 512,
  Script = 1024,
  CustomTags = 2048,
};

// Parses IIS's filterByTags text ("A, Form, Img" — case-insensitive, comma/space separated) into
// a bit set; returns false and names the bad token in `error` for an unknown one. Accepts
// "CustomTags" (sets HtmlTag::CustomTags). Empty text gives an empty set.
bool parse_filter_by_tags(std::string_view text, uint16_t& tags, std::string& error);

// Called for each URL attribute value of a filtered tag (value with entities as written, without
// quotes). Append the replacement to `out` and return true to rewrite, or return false to keep
// the original bytes unchanged.
using HtmlUrlRewrite = std::function<bool(std::string_view tag, std::string_view attribute,
                                          std::string_view value, std::string& out)>;

class HtmlRewriter {
 public:
  // custom_tags: extra (tag, attribute) pairs (IIS <customTags>), names case-insensitive.
  HtmlRewriter(uint16_t tags, std::vector<std::pair<std::string, std::string>> custom_tags,
               HtmlUrlRewrite rewrite, size_t max_held = 64 * 1024);
  // Feeds the next body bytes; appends output to `out`. Holds back at most max_held bytes (an
  // unfinished tag); a tag longer than that is passed through unmodified (bounded memory beats
  // rewriting a pathological tag).
  void feed(std::string_view in, std::string& out);
  // End of body: appends anything held back. The rewriter is then ready for a new body
  // (rewritten() keeps counting).
  void finish(std::string& out);
  uint64_t rewritten() const { return rewritten_; }  // attribute values rewritten so far

  // Bytes held back right now (never more than max_held).
  size_t held() const { return held_.size(); }
  // True if some tag or attribute is filtered at all (false: feed() only copies).
  bool active() const { return !entries_.empty(); }

 private:
  struct TagEntry {
    std::string name;                // lower case
    std::vector<std::string> attrs;  // lower case
  };
  struct Edit {
    uint32_t attr;   // index into the entry's attrs
    char quote;      // '"', '\'' or 0 (unquoted)
    uint64_t begin;  // stream offsets of the value
    uint64_t end;
  };

  void step_tag_name_end(std::string& out);
  void release_hold(std::string& out);
  void begin_attr();
  void end_attr_name();
  void push_value(uint64_t end, char quote);
  // The '>' of a tag is at in[i]; returns the state after it.
  uint8_t emit_tag(const char* p, size_t i, std::string& out);
  void write_tag(std::string_view tag, std::string& out);
  void append_value(std::string& out, std::string_view value, char quote);

  std::vector<TagEntry> entries_;
  HtmlUrlRewrite rewrite_;
  size_t max_held_;
  size_t name_cap_ = 0;  // longest name worth comparing, + 1
  size_t attr_cap_ = 0;
  uint64_t rewritten_ = 0;

  // Tokenizer state.
  uint8_t state_ = 0;
  uint8_t end_return_ = 0;  // state to go back to when a raw-text end tag does not match
  uint8_t md_len_ = 0;      // bytes matched after "<!"
  char md_buf_[8] = {};
  bool is_end_ = false;   // the current tag is an end tag
  bool holding_ = false;  // bytes from tag_begin_ are not emitted yet
  bool name_long_ = false;
  bool attr_long_ = false;
  bool end_ok_ = false;  // the raw-text end tag name so far matches raw_name_
  size_t end_match_ = 0;
  std::string_view raw_name_;  // "script", "style", ... while inside such an element
  uint8_t raw_state_ = 0;      // state after the current start tag (raw text kinds)
  int entry_ = -1;  // index into entries_ of the current start tag (an index: copies stay valid)
  int cur_attr_ = -1;
  uint64_t seen_ = 0;  // attrs of entry_ already seen in this tag
  uint64_t value_begin_ = 0;
  uint64_t tag_begin_ = 0;  // stream offset of the held tag's '<'
  uint64_t base_ = 0;       // stream offset of the current chunk
  size_t out_from_ = 0;     // bytes of the current chunk before this are emitted or held
  std::string name_;
  std::string attr_;
  std::vector<Edit> edits_;
  std::string held_;
  std::string scratch_;
};

}  // namespace harrow
