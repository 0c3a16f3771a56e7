// libFuzzer target for the W3C log reader behind --replay (IIS u_ex*.log and Harrow's own
// access log). Any bytes must give, line by line, a directive, a blank, a malformed line with a
// reason, or a request whose method is a token and whose URL is absolute without whitespace —
// never a crash, a hang or a sanitizer report. Replaying the same text through a configuration
// must account for every line: each request line is routed or counted malformed, once.
//
// Input: the log text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "core/daemon/replay.h"

namespace {

constexpr std::string_view kConfig = R"xml(<configuration>
  <webFarms>
    <webFarm name="shop"><server address="10.0.0.11" /></webFarm>
    <webFarm name="api"><server address="10.0.0.21" /></webFarm>
    <webFarm name="off"><server address="10.0.0.31" enabled="false" /></webFarm>
  </webFarms>
  <system.webServer>
    <rewrite>
      <globalRules>
        <rule name="api" patternSyntax="Wildcard" stopProcessing="true">
          <match url="api/*" />
          <action type="Rewrite" url="http://api/{R:0}" />
        </rule>
        <rule name="legacy" stopProcessing="true">
          <match url="^catalog/(\w+)\.aspx$" />
          <action type="Rewrite" url="http://shop/products/{R:1}" />
        </rule>
        <rule name="moved" stopProcessing="true">
          <match url="^login$" />
          <action type="Redirect" url="/signin" />
        </rule>
        <rule name="off" patternSyntax="Wildcard" stopProcessing="true">
          <match url="off/*" />
          <action type="Rewrite" url="http://off/{R:0}" />
        </rule>
        <rule name="shop" stopProcessing="true">
          <match url="^(shop/.*|products/.*|signin)$" />
          <action type="Rewrite" url="http://shop/{R:0}" />
        </rule>
      </globalRules>
    </rewrite>
  </system.webServer>
</configuration>)xml";

// Names the broken property before stopping, so a crash file explains itself.
#define check(ok)                                              \
  do {                                                         \
    if (!(ok)) {                                               \
      std::fprintf(stderr, "w3c_log_fuzz: broken: %s\n", #ok); \
      __builtin_trap();                                        \
    }                                                          \
  } while (false)

const harrow::Snapshot& snapshot() {
  static std::shared_ptr<const harrow::Snapshot> snap = [] {
    harrow::config::LoadResult loaded = harrow::config::load_config_text(kConfig, "fuzz.config");
    if (!loaded.config) std::abort();
    std::vector<std::string> warnings;
    return harrow::build_snapshot(
        std::make_shared<harrow::config::Config>(std::move(*loaded.config)), 1, nullptr, warnings,
        {}, false);
  }();
  return *snap;
}

bool is_token_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '"' && c != ',' && c != '/' &&
         c != ':' && c != ';' && c != '<' && c != '=' && c != '>' && c != '?' && c != '@' &&
         c != '[' && c != '\\' && c != ']' && c != '{' && c != '}';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  harrow::W3cLogReader reader;
  harrow::LoggedRequest request;
  std::string error;
  uint64_t requests = 0, malformed = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    error.clear();
    switch (reader.read(line, request, error)) {
      case harrow::W3cLogReader::Line::Request: {
        ++requests;
        check(!request.method.empty());
        for (char c : request.method) check(is_token_char(c));
        std::string_view url = request.url;
        check(url.starts_with("http://") || url.starts_with("https://"));
        for (char c : url) check(c != ' ' && c != '\t' && c != '\n');
        check(request.status >= 0 && request.status <= 999);
        for (const std::string& h : request.headers) check(h.find(": ") != std::string::npos);
        break;
      }
      case harrow::W3cLogReader::Line::Malformed:
        ++malformed;
        check(!error.empty());
        break;
      case harrow::W3cLogReader::Line::Directive:
      case harrow::W3cLogReader::Line::Blank:
        break;
    }
  }

  harrow::ReplaySummary summary;
  harrow::replay_text(snapshot(), text, "fuzz.log", summary);
  // Every request line is routed or (when --explain cannot read it) counted malformed.
  check(summary.requests + summary.malformed == requests + malformed);
  uint64_t outcomes = 0;
  for (const auto& [name, n] : summary.outcomes) outcomes += n;
  check(outcomes == summary.requests);
  check(summary.unroutable.size() <= harrow::ReplaySummary::kListed);
  check(!harrow::render_replay_summary(summary).empty());
  return 0;
}
