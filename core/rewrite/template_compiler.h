// Compiling URL Rewrite's expansion strings ("http://shop/{ToLower:{R:1}}", condition inputs,
// server-variable values) into templates, and rule patterns into CompiledPattern: every name
// is resolved here, once per config, so evaluation never compares names. Internal to
// core/rewrite.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/rewrite/compiled_rules.h"

namespace harrow::router_internal {

// What parse_template needs to resolve names: the config's rewrite maps and the variables that
// rules set.
struct TemplateContext {
  const std::vector<std::unique_ptr<Router::CompiledMap>>& maps;
  const std::vector<std::unique_ptr<Router::Variable>>& variables;
  bool* reads_local_addr = nullptr;  // set when a template reads the local address
};

// "RESPONSE_Content_Type" → "content-type": the response header an outbound rule reads.
std::string response_header_for_variable(std::string_view name);

// The built-in source of server variable `name`; for Var::Header, `header` receives the
// lower-case request header name (HTTP_X_FOO → "x-foo").
Var builtin_variable(std::string_view name, std::string& header);

// "HTTP_X_FOO_BAR" → "X-Foo-Bar": the request header a <set name> writes; empty for names that
// are not HTTP_*.
std::string header_for_variable(std::string_view name);

// Index of the settable variable called `name` (case-insensitive), or -1.
int find_variable(const TemplateContext& ctx, std::string_view name);

// Compiles an expansion string: literal text with {…} references, which may nest
// ("{ToLower:{HTTP_HOST}}"). A '{' without its matching '}' is literal text.
void parse_template(std::string_view text, const TemplateContext& ctx, Template& out);

}  // namespace harrow::router_internal
