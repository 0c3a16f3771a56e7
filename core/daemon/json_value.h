// A small JSON reader (RFC 8259) for the answers of Harrow's own admin API, which `harrow ctl`
// turns into tables.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace harrow {

// A parsed JSON value, enough for the admin API's answers. `raw` is the value's own text in the
// document it was parsed from (so --json can pass a part of an answer through unchanged).
struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string text;              // String: the decoded string
  std::vector<JsonValue> items;  // Array
  // Object: names and values in document order. (Two vectors, not one of pairs: a pair member
  // needs JsonValue complete, a vector of JsonValue does not.)
  std::vector<std::string> keys;
  std::vector<JsonValue> values;
  std::string_view raw;

  const JsonValue* get(std::string_view key) const;  // Object member or null
  std::string str(std::string_view key) const;       // member as text ("" when absent)
};

// False with `error` (and the byte offset) when `text` is not one JSON value.
bool parse_json(std::string_view text, JsonValue& out, std::string& error);

// `text` as a JSON string literal, quotes included: `"` and `\` escaped, control bytes as \u00XX;
// other bytes pass as they are (the callers' text is UTF-8 or the API rejects it).
std::string json_quoted(std::string_view text);

}  // namespace harrow
