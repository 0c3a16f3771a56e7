// Throughput of the streaming HTML rewriter (outbound rules with filterByTags) on a generated
// 10 MiB page: paragraphs of text with links, images, a script and a stylesheet every few
// hundred bytes, fed in 64 KiB pieces as reads deliver them. RewriteEveryHref replaces every
// href (and src) value; RewriteNone offers every value to a callback that declines it; the
// Unfiltered case has no filtered tag and measures the copy alone. The rewriter must not make
// a rewritten body the bottleneck of a response (target: bench/results/figures-from-comments.md).
#include <benchmark/benchmark.h>

#include <string>

#include "core/rewrite/html_rewriter.h"

namespace {

std::string make_page(size_t size) {
  std::string page =
      "<!DOCTYPE html>\n<html><head><title>Catalogue</title>"
      "<link rel=\"stylesheet\" href=\"http://internal.example/css/site.css\">"
      "<script src=\"http://internal.example/js/app.js\"></script></head>\n<body>\n";
  size_t n = 0;
  while (page.size() < size) {
    std::string id = std::to_string(n++);
    page += "<div class=\"item\" id=\"item-" + id + "\"><h2>Item " + id +
            "</h2>\n<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
            "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
            "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. "
            "<a href=\"http://internal.example/items/" +
            id + "\">Details</a> or <a class=more href='http://internal.example/more?i=" + id +
            "&amp;x=1'>more</a>.</p>\n<img src=\"http://internal.example/img/" + id +
            ".png\" alt=\"\" width=64 height=64>\n<!-- item " + id + " -->\n</div>\n";
  }
  page += "</body></html>\n";
  return page;
}

const std::string& page() {
  static const std::string p = make_page(10 * 1024 * 1024);
  return p;
}

void run(benchmark::State& state, uint16_t tags, bool rewrite) {
  const std::string& body = page();
  std::string out;
  out.reserve(body.size() * 2);
  uint64_t rewritten = 0;
  for (auto _ : state) {
    harrow::HtmlRewriter rewriter(
        tags, {},
        [rewrite](std::string_view, std::string_view, std::string_view value, std::string& o) {
          if (!rewrite || !value.starts_with("http://internal.example/")) return false;
          o.append("/").append(value.substr(24));
          return true;
        });
    out.clear();
    for (size_t at = 0; at < body.size(); at += 64 * 1024) {
      rewriter.feed(std::string_view(body).substr(at, 64 * 1024), out);
    }
    rewriter.finish(out);
    benchmark::DoNotOptimize(out.data());
    rewritten = rewriter.rewritten();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["rewritten"] = static_cast<double>(rewritten);
}

constexpr uint16_t kAllTags = 2047;

void RewriteEveryHref(benchmark::State& s) {
  run(s, kAllTags, true);
}
void RewriteNone(benchmark::State& s) {
  run(s, kAllTags, false);
}
void Unfiltered(benchmark::State& s) {
  run(s, 0, false);
}

}  // namespace

BENCHMARK(RewriteEveryHref)->Unit(benchmark::kMillisecond);
BENCHMARK(RewriteNone)->Unit(benchmark::kMillisecond);
BENCHMARK(Unfiltered)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
