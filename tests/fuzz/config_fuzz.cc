// libFuzzer target for the configuration loader: any bytes must produce either a Config or a
// list of positioned errors — never a crash, a hang or a sanitizer report — and a Config that
// loads must also summarize.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  harrow::config::LoadResult result = harrow::config::load_config_text(text, "fuzz.config");
  if (result.config) {
    std::string summary = harrow::config::summarize(*result.config);
    if (summary.empty()) __builtin_trap();  // a summary always names the file
  }
  for (const harrow::config::Diagnostic& error : result.errors) {
    if (error.format_error().empty()) __builtin_trap();
  }
  return 0;
}
