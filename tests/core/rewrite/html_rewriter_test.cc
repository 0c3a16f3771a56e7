#include "core/rewrite/html_rewriter.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace harrow {
namespace {

constexpr uint16_t kAllTags = 2047;

struct Call {
  std::string tag, attribute, value;
  bool operator==(const Call&) const = default;
};

// Rewrites every offered value to "[value]" (or what `replace` says) and records the calls.
struct Harness {
  std::vector<Call> calls;
  std::function<bool(std::string_view, std::string&)> replace = [](std::string_view v,
                                                                   std::string& out) {
    out.append("[").append(v).append("]");
    return true;
  };

  HtmlRewriter make(uint16_t tags, std::vector<std::pair<std::string, std::string>> custom = {},
                    size_t max_held = 64 * 1024) {
    return HtmlRewriter(
        tags, std::move(custom),
        [this](std::string_view tag, std::string_view attr, std::string_view value,
               std::string& out) {
          calls.push_back({std::string(tag), std::string(attr), std::string(value)});
          return replace(value, out);
        },
        max_held);
  }
};

std::string run(HtmlRewriter& r, std::string_view in) {
  std::string out;
  r.feed(in, out);
  r.finish(out);
  return out;
}

std::string rewrite(std::string_view in, uint16_t tags = kAllTags,
                    std::vector<std::pair<std::string, std::string>> custom = {}) {
  Harness h;
  HtmlRewriter r = h.make(tags, std::move(custom));
  return run(r, in);
}

TEST(HtmlRewriter, EveryTagAndItsAttributes) {
  struct Case {
    HtmlTag tag;
    const char* name;
    std::vector<const char*> attrs;
  };
  const std::vector<Case> cases = {
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
  const std::vector<const char*> all_attrs = {"href",    "action", "src",  "longdesc",
                                              "profile", "usemap", "title"};
  for (const Case& c : cases) {
    for (const char* attr : all_attrs) {
      std::string in = std::string("<") + c.name + " " + attr + "=\"/v\">";
      bool listed = std::find_if(c.attrs.begin(), c.attrs.end(), [&](const char* a) {
                      return std::string_view(a) == attr;
                    }) != c.attrs.end();
      std::string expected = listed ? std::string("<") + c.name + " " + attr + "=\"[/v]\">" : in;
      SCOPED_TRACE(in);
      // Filtered alone, and with every other tag but this one.
      Harness h;
      HtmlRewriter alone = h.make(static_cast<uint16_t>(c.tag));
      EXPECT_EQ(run(alone, in), expected);
      EXPECT_EQ(alone.rewritten(), listed ? 1u : 0u);
      if (listed) {
        ASSERT_EQ(h.calls.size(), 1u);
        EXPECT_EQ(h.calls[0], (Call{c.name, attr, "/v"}));
      }
      HtmlRewriter others = h.make(kAllTags & ~static_cast<uint16_t>(c.tag));
      EXPECT_EQ(run(others, in), in);
    }
  }
}

TEST(HtmlRewriter, AllAttributesOfOneTag) {
  EXPECT_EQ(rewrite("<img src=a.png longdesc='d.html' usemap=\"#m\" alt=x>"),
            "<img src=[a.png] longdesc='[d.html]' usemap=\"[#m]\" alt=x>");
  EXPECT_EQ(rewrite("<input type=image src=/b.png usemap=#m name=q>"),
            "<input type=image src=[/b.png] usemap=[#m] name=q>");
}

TEST(HtmlRewriter, QuotingStyles) {
  EXPECT_EQ(rewrite("<a href=\"x\">"), "<a href=\"[x]\">");
  EXPECT_EQ(rewrite("<a href='x'>"), "<a href='[x]'>");
  EXPECT_EQ(rewrite("<a href=x>"), "<a href=[x]>");
  EXPECT_EQ(rewrite("<a href=x title=t>"), "<a href=[x] title=t>");
  EXPECT_EQ(rewrite("<a href = \"x\" >"), "<a href = \"[x]\" >");
  EXPECT_EQ(rewrite("<a href=\"\">"), "<a href=\"[]\">");
  // Quotes of the other kind and '>' inside quoted values are part of the value.
  EXPECT_EQ(rewrite("<a title=\"a>b\" href='it\"s'>"), "<a title=\"a>b\" href='[it\"s]'>");
  // A quote character in an unquoted value is part of it (a parse error browsers accept).
  EXPECT_EQ(rewrite("<a href=x'y>"), "<a href=\"[x'y]\">");
}

TEST(HtmlRewriter, ValuelessAndEmptyUnquotedAttributesAreNotOffered) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags);
  EXPECT_EQ(run(r, "<a href><a href=><a href />"), "<a href><a href=><a href />");
  EXPECT_TRUE(h.calls.empty());
}

TEST(HtmlRewriter, ReplacementsAreWrittenSafely) {
  Harness h;
  h.replace = [](std::string_view, std::string& out) {
    out.append("a b\"c'd>e");
    return true;
  };
  HtmlRewriter r = h.make(kAllTags);
  EXPECT_EQ(run(r, "<a href=\"x\"><a href='x'><a href=x><a href=x/>"),
            "<a href=\"a b&quot;c'd>e\"><a href='a b\"c&#39;d>e'>"
            "<a href=\"a b&quot;c'd>e\"><a href=\"a b&quot;c'd>e\">");
  h.replace = [](std::string_view, std::string&) { return true; };  // empty replacement
  HtmlRewriter empty = h.make(kAllTags);
  EXPECT_EQ(run(empty, "<a href=x title=t><a href='x'>"), "<a href=\"\" title=t><a href=''>");
  h.replace = [](std::string_view, std::string& out) {
    out.append("/p?a=1&amp;b=`");
    return true;
  };
  HtmlRewriter eq = h.make(kAllTags);
  EXPECT_EQ(run(eq, "<a href=x>"), "<a href=\"/p?a=1&amp;b=`\">");
  h.replace = [](std::string_view, std::string& out) {
    out.append("/plain/path?q&amp;r");
    return true;
  };
  HtmlRewriter plain = h.make(kAllTags);
  EXPECT_EQ(run(plain, "<a href=x>"), "<a href=/plain/path?q&amp;r>");
}

TEST(HtmlRewriter, CallbackDecidesAndCountsOnlyRewrites) {
  Harness h;
  h.replace = [](std::string_view v, std::string& out) {
    if (!v.starts_with("http://old/")) {
      out.append("ignored");  // appended but declined: must not appear
      return false;
    }
    out.append("/new/").append(v.substr(11));
    return true;
  };
  HtmlRewriter r = h.make(kAllTags);
  EXPECT_EQ(run(r, "<a href=\"http://old/x\"><a href=\"/keep\"><img src='http://old/i.png'>"),
            "<a href=\"/new/x\"><a href=\"/keep\"><img src='/new/i.png'>");
  EXPECT_EQ(r.rewritten(), 2u);
  EXPECT_EQ(h.calls.size(), 3u);
}

TEST(HtmlRewriter, EntitiesAreOfferedAsWritten) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags);
  EXPECT_EQ(run(r, "<a href=\"/a?x=1&amp;y=2\">"), "<a href=\"[/a?x=1&amp;y=2]\">");
  ASSERT_EQ(h.calls.size(), 1u);
  EXPECT_EQ(h.calls[0].value, "/a?x=1&amp;y=2");
}

TEST(HtmlRewriter, UppercaseAndMixedCaseNames) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags);
  EXPECT_EQ(run(r, "<A HREF=\"x\"><IMG Src=y><ScRiPt SRC='z'></sCrIpT><FORM ACTION=f>"),
            "<A HREF=\"[x]\"><IMG Src=[y]><ScRiPt SRC='[z]'></sCrIpT><FORM ACTION=[f]>");
  ASSERT_EQ(h.calls.size(), 4u);
  EXPECT_EQ(h.calls[0], (Call{"a", "href", "x"}));
  EXPECT_EQ(h.calls[1], (Call{"img", "src", "y"}));
  EXPECT_EQ(h.calls[2], (Call{"script", "src", "z"}));
  EXPECT_EQ(h.calls[3], (Call{"form", "action", "f"}));
}

TEST(HtmlRewriter, WhitespaceAnywhereInTags) {
  EXPECT_EQ(rewrite("<a\nhref\n=\n\"x\"\n>"), "<a\nhref\n=\n\"[x]\"\n>");
  EXPECT_EQ(rewrite("<a\r\n\thref=x\f>"), "<a\r\n\thref=[x]\f>");
  EXPECT_EQ(rewrite("<img\tclass=c\n  src\t=\t'y'/>"), "<img\tclass=c\n  src\t=\t'[y]'/>");
}

TEST(HtmlRewriter, TagAndAttributeBoundaries) {
  // Longer names are other tags and attributes.
  EXPECT_EQ(rewrite("<abbr href=x><address href=x><a hreflang=x><a xhref=x>"),
            "<abbr href=x><address href=x><a hreflang=x><a xhref=x>");
  // '/' between attributes, after a quoted value without whitespace, and self-closing.
  EXPECT_EQ(rewrite("<a/href=x>"), "<a/href=[x]>");
  EXPECT_EQ(rewrite("<a title=\"t\"href=\"x\">"), "<a title=\"t\"href=\"[x]\">");
  EXPECT_EQ(rewrite("<img src=\"x\"/>"), "<img src=\"[x]\"/>");
  EXPECT_EQ(rewrite("<img src=x/>"), "<img src=[x/]>");  // the '/' belongs to the value
  // An attribute name may begin with '='; it is not href.
  EXPECT_EQ(rewrite("<a =href=x>"), "<a =href=x>");
  // Only the first of duplicated attributes counts (browsers drop the rest).
  EXPECT_EQ(rewrite("<a href=1 HREF=2>"), "<a href=[1] HREF=2>");
  EXPECT_EQ(rewrite("<a href href=2>"), "<a href href=2>");
}

TEST(HtmlRewriter, EndTagsAreNotRewritten) {
  EXPECT_EQ(rewrite("</a href=x><a href=y></A href=\"z>\"><a href=w>"),
            "</a href=x><a href=[y]></A href=\"z>\"><a href=[w]>");
}

TEST(HtmlRewriter, LessThanNotStartingATagIsText) {
  EXPECT_EQ(rewrite("a < b <a href=x> 1<2 <3 <> <= <a href=y>"),
            "a < b <a href=[x]> 1<2 <3 <> <= <a href=[y]>");
  EXPECT_EQ(rewrite("<<a href=x>"), "<<a href=[x]>");
  EXPECT_EQ(rewrite("</>< a href=x><a href=y>"), "</>< a href=x><a href=[y]>");
}

TEST(HtmlRewriter, CommentsPassThrough) {
  EXPECT_EQ(rewrite("<!-- <a href=x> --><a href=y>"), "<!-- <a href=x> --><a href=[y]>");
  EXPECT_EQ(rewrite("<!--><a href=y>"), "<!--><a href=[y]>");
  EXPECT_EQ(rewrite("<!---><a href=y>"), "<!---><a href=[y]>");
  EXPECT_EQ(rewrite("<!----><a href=y>"), "<!----><a href=[y]>");
  EXPECT_EQ(rewrite("<!-- -- > <a href=x> - -> <!-- <a href=x> ---><a href=y>"),
            "<!-- -- > <a href=x> - -> <!-- <a href=x> ---><a href=[y]>");
  EXPECT_EQ(rewrite("<!-- x --!><a href=y>"), "<!-- x --!><a href=[y]>");
  EXPECT_EQ(rewrite("<!-- x --!-><a href=x>--><a href=y>"),
            "<!-- x --!-><a href=x>--><a href=[y]>");
  // Unterminated: everything after is comment.
  EXPECT_EQ(rewrite("<!-- <a href=x>"), "<!-- <a href=x>");
}

TEST(HtmlRewriter, DoctypeBogusCommentsAndCData) {
  EXPECT_EQ(rewrite("<!DOCTYPE html><a href=y>"), "<!DOCTYPE html><a href=[y]>");
  EXPECT_EQ(rewrite("<!doctype html PUBLIC \"<a href=x>\"><a href=y>"),
            "<!doctype html PUBLIC \"<a href=x>\"><a href=[y]>");  // the first '>' ends it
  EXPECT_EQ(rewrite("<?xml version=\"1.0\"?><a href=y>"), "<?xml version=\"1.0\"?><a href=[y]>");
  EXPECT_EQ(rewrite("<!x <a href=x><a href=y>"), "<!x <a href=x><a href=[y]>");
  EXPECT_EQ(rewrite("<!><a href=y>"), "<!><a href=[y]>");
  EXPECT_EQ(rewrite("</1 <a href=x><a href=y>"), "</1 <a href=x><a href=[y]>");
  EXPECT_EQ(rewrite("<![CDATA[ <a href=x> ]] > ] ]]><a href=y>"),
            "<![CDATA[ <a href=x> ]] > ] ]]><a href=[y]>");
  EXPECT_EQ(rewrite("<![CDATA[ x ]]]><a href=y>"), "<![CDATA[ x ]]]><a href=[y]>");
}

TEST(HtmlRewriter, ScriptContentIsText) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags);
  EXPECT_EQ(run(r,
                "<script src=\"/app.js\">var s = \"<a href='x'>\"; if (a<b) {}</scripty>"
                "<img src=x></script><a href=y>"),
            "<script src=\"[/app.js]\">var s = \"<a href='x'>\"; if (a<b) {}</scripty>"
            "<img src=x></script><a href=[y]>");
  EXPECT_EQ(h.calls.size(), 2u);
  // End tags: any case, whitespace, attributes or '/' before '>'.
  EXPECT_EQ(rewrite("<script><a href=x></SCRIPT ><a href=y>"),
            "<script><a href=x></SCRIPT ><a href=[y]>");
  EXPECT_EQ(rewrite("<script><a href=x></script\nfoo=\">\"><a href=y>"),
            "<script><a href=x></script\nfoo=\">\"><a href=[y]>");
  EXPECT_EQ(rewrite("<script><a href=x></script/><a href=y>"),
            "<script><a href=x></script/><a href=[y]>");
  // A self-closing <script/> still starts script data.
  EXPECT_EQ(rewrite("<script/><a href=x></script><a href=y>"),
            "<script/><a href=x></script><a href=[y]>");
  // Unterminated script: the rest is script.
  EXPECT_EQ(rewrite("<script><a href=x>"), "<script><a href=x>");
}

TEST(HtmlRewriter, ScriptEscapedAndDoubleEscaped) {
  // In "<!-- <script>" the first </script> only leaves the double-escaped state.
  EXPECT_EQ(rewrite("<script><!-- <script> </script> <a href=in> --></script><a href=out>"),
            "<script><!-- <script> </script> <a href=in> --></script><a href=[out]>");
  // Escaped (no inner <script>): </script> ends it.
  EXPECT_EQ(rewrite("<script><!-- x </script><a href=out>"),
            "<script><!-- x </script><a href=[out]>");
  // "-->" leaves the escape; a later </script> ends the element.
  EXPECT_EQ(rewrite("<script><!-- <scriptx> --> </script><a href=out>"),
            "<script><!-- <scriptx> --> </script><a href=[out]>");
  EXPECT_EQ(rewrite("<script><!--<script>--></script><a href=out>"),
            "<script><!--<script>--></script><a href=[out]>");
}

TEST(HtmlRewriter, RawTextAndRcdataElements) {
  for (const char* tag : {"style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"}) {
    std::string t(tag);
    std::string in = "<" + t + "><a href=x></" + t + "x><img src=x></" + t + "><a href=y>";
    std::string out = "<" + t + "><a href=x></" + t + "x><img src=x></" + t + "><a href=[y]>";
    EXPECT_EQ(rewrite(in), out) << tag;
  }
  // The opening tag's own attribute is filtered.
  EXPECT_EQ(rewrite("<iframe src=/f><a href=x></iframe>"), "<iframe src=[/f]><a href=x></iframe>");
  // <plaintext> never ends.
  EXPECT_EQ(rewrite("<plaintext><a href=x></plaintext><a href=y>"),
            "<plaintext><a href=x></plaintext><a href=y>");
  // <noscript> content is markup (scripting-disabled parsing).
  EXPECT_EQ(rewrite("<noscript><img src=x></noscript>"), "<noscript><img src=[x]></noscript>");
}

TEST(HtmlRewriter, UnfinishedTagAtEndIsPassedThrough) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags);
  std::string out;
  r.feed("text <a href=\"x", out);
  EXPECT_EQ(out, "text ");
  EXPECT_EQ(r.held(), 10u);
  r.finish(out);
  EXPECT_EQ(out, "text <a href=\"x");
  EXPECT_TRUE(h.calls.empty());
  EXPECT_EQ(r.held(), 0u);
}

TEST(HtmlRewriter, OnlyFilteredStartTagsAreHeld) {
  Harness h;
  HtmlRewriter r = h.make(static_cast<uint16_t>(HtmlTag::A));
  std::string out;
  r.feed("<div class=\"long", out);
  EXPECT_EQ(out, "<div class=\"long");  // not a filtered tag: emitted at once
  r.feed("\"><!-- c", out);
  EXPECT_EQ(out, "<div class=\"long\"><!-- c");
  r.feed("--><a hr", out);
  EXPECT_EQ(out, "<div class=\"long\"><!-- c-->");
  EXPECT_EQ(r.held(), 5u);
  r.feed("ef=x>", out);
  EXPECT_EQ(out, "<div class=\"long\"><!-- c--><a href=[x]>");
  EXPECT_EQ(r.held(), 0u);
}

TEST(HtmlRewriter, SplitAtEveryByte) {
  const std::string doc =
      "<!DOCTYPE html>\n<HTML><Head profile=\"http://old/p\"><base href='http://old/'>"
      "<link rel=stylesheet href=http://old/s.css><title>a <a href=x> b</title>"
      "<script src=\"http://old/a.js\">if (a<b && c>d) document.write('<a href=\"z\">');"
      "<!-- <script>x</script> --></script><style>a{}</style></head>\n<body>"
      "<!-- comment <a href=q> --><!--><![CDATA[<a href=c>]]>"
      "<a\nhref = \"http://old/1\" title='t>'>one</a> <IMG SRC=http://old/i.png longdesc='d'>"
      "<form action=\"/post\"><input type=image src=x usemap=#m></form>"
      "<iframe src=/f longdesc=/d><a href=in></iframe><frame src=s><area href=ar>"
      "1 < 2 <textarea><a href=t></textarea><a href=last>";
  Harness h;
  HtmlRewriter whole = h.make(kAllTags);
  std::string expected = run(whole, doc);
  const size_t calls = h.calls.size();
  EXPECT_EQ(calls, 15u);
  EXPECT_EQ(whole.rewritten(), calls);
  // Byte by byte.
  {
    HtmlRewriter r = h.make(kAllTags);
    std::string out;
    for (char c : doc) r.feed(std::string_view(&c, 1), out);
    r.finish(out);
    EXPECT_EQ(out, expected);
  }
  // Every split point into two and three pieces.
  for (size_t a = 0; a <= doc.size(); ++a) {
    HtmlRewriter r = h.make(kAllTags);
    std::string out;
    r.feed(std::string_view(doc).substr(0, a), out);
    r.feed(std::string_view(doc).substr(a), out);
    r.finish(out);
    ASSERT_EQ(out, expected) << "split at " << a;
    size_t b = (a * 7 + 3) % (doc.size() + 1);
    if (b < a) continue;
    HtmlRewriter r3 = h.make(kAllTags);
    std::string out3;
    r3.feed(std::string_view(doc).substr(0, a), out3);
    r3.feed(std::string_view(doc).substr(a, b - a), out3);
    r3.feed(std::string_view(doc).substr(b), out3);
    r3.finish(out3);
    ASSERT_EQ(out3, expected) << "split at " << a << ", " << b;
  }
  // The calls are the same, in the same order, however it is split.
  EXPECT_EQ(h.calls.size() % calls, 0u);
  for (size_t k = 0; k < h.calls.size(); ++k) EXPECT_EQ(h.calls[k], h.calls[k % calls]);
}

TEST(HtmlRewriter, OversizeTagPassesThroughUnmodified) {
  const size_t max_held = 40;
  auto tag = [](size_t pad) { return "<a href=\"/x\" title=\"" + std::string(pad, 'e') + "\">"; };
  auto rewritten = [](size_t pad) {
    return "<a href=\"[/x]\" title=\"" + std::string(pad, 'e') + "\">";
  };
  ASSERT_EQ(tag(18).size(), max_held);  // exactly max_held: still rewritten
  const std::string big = "<a title=\"" + std::string(100, 't') + "\" href=\"/x\">";
  const std::string doc = tag(5) + tag(18) + tag(19) + big + tag(5);
  const std::string expected = rewritten(5) + rewritten(18) + tag(19) + big + rewritten(5);
  for (size_t step :
       {size_t{1}, size_t{3}, size_t{17}, size_t{39}, size_t{40}, size_t{41}, doc.size()}) {
    Harness h;
    HtmlRewriter r = h.make(kAllTags, {}, max_held);
    std::string out;
    for (size_t at = 0; at < doc.size(); at += step) {
      r.feed(std::string_view(doc).substr(at, step), out);
      EXPECT_LE(r.held(), max_held);
    }
    r.finish(out);
    EXPECT_EQ(out, expected) << "step " << step;
    EXPECT_EQ(r.rewritten(), 3u);
    EXPECT_EQ(h.calls.size(), 3u);  // the oversize tag's value is never offered
  }
}

TEST(HtmlRewriter, OversizeScriptTagStillStartsScriptData) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags, {}, 16);
  std::string doc = "<script src=\"" + std::string(50, 's') + "\"><a href=x></script><a href=y>";
  std::string out;
  for (char c : doc) r.feed(std::string_view(&c, 1), out);
  r.finish(out);
  EXPECT_EQ(out, "<script src=\"" + std::string(50, 's') + "\"><a href=x></script><a href=[y]>");
}

TEST(HtmlRewriter, MemoryStaysBoundedOnAHugeTag) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags, {}, 1024);
  std::string out;
  r.feed("<a href=\"", out);
  std::string chunk(4096, 'x');
  size_t total = 9;
  for (int k = 0; k < 256; ++k) {
    r.feed(chunk, out);
    total += chunk.size();
    EXPECT_LE(r.held(), 1024u);
  }
  r.feed("\">", out);
  total += 2;
  r.finish(out);
  EXPECT_EQ(out.size(), total);
  EXPECT_EQ(r.rewritten(), 0u);
}

TEST(HtmlRewriter, CustomTags) {
  Harness h;
  HtmlRewriter r =
      h.make(0, {{"DIV", "Data-Src"}, {"img", "srcset"}, {"video", "poster"}, {"video", "src"}});
  EXPECT_EQ(run(r,
                "<div data-src=/a><IMG SRCSET='/b 2x' src=/c><video src=v poster=p>"
                "<a href=x><div data-srcx=y>"),
            "<div data-src=[/a]><IMG SRCSET='[/b 2x]' src=/c><video src=[v] poster=[p]>"
            "<a href=x><div data-srcx=y>");
  ASSERT_EQ(h.calls.size(), 4u);
  EXPECT_EQ(h.calls[0], (Call{"div", "data-src", "/a"}));
  EXPECT_EQ(h.calls[1], (Call{"img", "srcset", "/b 2x"}));
  // Together with the built-in list for the same tag.
  HtmlRewriter both = h.make(static_cast<uint16_t>(HtmlTag::Img), {{"img", "srcset"}});
  EXPECT_EQ(run(both, "<img src=a srcset=b alt=c>"), "<img src=[a] srcset=[b] alt=c>");
  // A custom raw-text tag name is still raw text; its own attribute is filtered.
  HtmlRewriter style = h.make(0, {{"style", "data-href"}, {"div", "data-href"}});
  EXPECT_EQ(run(style, "<style data-href=s><div data-href=x></style>"),
            "<style data-href=[s]><div data-href=x></style>");
}

TEST(HtmlRewriter, NothingFilteredCopies) {
  Harness h;
  HtmlRewriter r = h.make(0);
  EXPECT_FALSE(r.active());
  EXPECT_EQ(run(r, "<a href=x>"), "<a href=x>");
  EXPECT_TRUE(h.calls.empty());
  HtmlRewriter no_callback(kAllTags, {}, nullptr);
  EXPECT_EQ(run(no_callback, "<a href=x>"), "<a href=x>");
}

TEST(HtmlRewriter, CopiedOrMovedMidTagKeepsGoing) {
  Harness h;
  std::string out;
  std::optional<HtmlRewriter> original(h.make(kAllTags));
  original->feed("<p><a hr", out);
  HtmlRewriter copy = *original;
  HtmlRewriter moved = std::move(*original);
  original.reset();
  std::string out_copy = out;
  copy.feed("ef=x>", out_copy);
  copy.finish(out_copy);
  EXPECT_EQ(out_copy, "<p><a href=[x]>");
  moved.feed("ef=y>", out);
  moved.finish(out);
  EXPECT_EQ(out, "<p><a href=[y]>");
}

TEST(HtmlRewriter, ReusableAfterFinish) {
  Harness h;
  HtmlRewriter r = h.make(kAllTags);
  std::string out;
  r.feed("<script><a href=x", out);
  r.finish(out);
  EXPECT_EQ(out, "<script><a href=x");
  out.clear();
  r.feed("<a href=y>", out);
  r.finish(out);
  EXPECT_EQ(out, "<a href=[y]>");
  EXPECT_EQ(r.rewritten(), 1u);
}

TEST(ParseFilterByTags, AcceptsIisSpelling) {
  uint16_t tags = 0;
  std::string error;
  ASSERT_TRUE(
      parse_filter_by_tags("A, Area, Base, Form, Frame, Head, IFrame, Img, Input, Link, "
                           "Script",
                           tags, error));
  EXPECT_EQ(tags, 2047);
  ASSERT_TRUE(parse_filter_by_tags("a,IMG  iframe,\tform", tags, error));
  EXPECT_EQ(tags, static_cast<uint16_t>(HtmlTag::A) | static_cast<uint16_t>(HtmlTag::Img) |
                      static_cast<uint16_t>(HtmlTag::IFrame) |
                      static_cast<uint16_t>(HtmlTag::Form));
  ASSERT_TRUE(parse_filter_by_tags("A, CustomTags", tags, error));
  EXPECT_EQ(tags, static_cast<uint16_t>(HtmlTag::A) | static_cast<uint16_t>(HtmlTag::CustomTags));
  ASSERT_TRUE(parse_filter_by_tags("", tags, error));
  EXPECT_EQ(tags, 0);
  ASSERT_TRUE(parse_filter_by_tags(" , ", tags, error));
  EXPECT_EQ(tags, 0);
}

TEST(ParseFilterByTags, NamesTheUnknownToken) {
  uint16_t tags = 99;
  std::string error;
  EXPECT_FALSE(parse_filter_by_tags("A, Div, Img", tags, error));
  EXPECT_NE(error.find("'Div'"), std::string::npos) << error;
  EXPECT_EQ(tags, 99);  // untouched on error
  EXPECT_FALSE(parse_filter_by_tags("A;Img", tags, error));
  EXPECT_NE(error.find("'A;Img'"), std::string::npos) << error;
  EXPECT_FALSE(parse_filter_by_tags("Anchor", tags, error));
  EXPECT_NE(error.find("'Anchor'"), std::string::npos) << error;
}

}  // namespace
}  // namespace harrow
