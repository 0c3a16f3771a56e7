// Router: compiles a config's rewrite maps, inbound rules, preconditions and outbound rules
// once per snapshot. Evaluation is in inbound_rules.cc (route) and outbound_rules.cc.
#include "core/rewrite/router.h"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/ascii.h"
#include "core/rewrite/compiled_rules.h"
#include "core/rewrite/html_rewriter.h"
#include "core/rewrite/rule_evaluator.h"
#include "core/rewrite/template_compiler.h"
#include "core/rewrite/text_functions.h"

namespace harrow {

using router_internal::builtin_variable;
using router_internal::find_variable;
using router_internal::header_for_variable;
using router_internal::parse_template;
using router_internal::response_header_for_variable;
using router_internal::ServerVariableAssignment;
using router_internal::TemplateContext;

std::string_view Router::failed_rule(const RouteScratch& scratch) const {
  const CompiledPattern* p = scratch.impl_->error_pattern;
  if (p == nullptr) return {};
  auto owns = [p](const auto& rule) {
    if (&rule.match == p) return true;
    for (const auto& c : rule.conditions) {
      if (c.get() == p) return true;
    }
    return false;
  };
  for (const RuleSet* set : {&rules_, &distributed_rules_}) {
    for (const auto& rule : *set) {
      if (owns(*rule)) return rule->config->name;
    }
  }
  for (const RuleSet& set : site_rules_) {
    for (const auto& rule : set) {
      if (owns(*rule)) return rule->config->name;
    }
  }
  for (const auto& rule : outbound_rules_) {
    if (owns(*rule)) return rule->config->name;
  }
  for (const auto& pre : pre_conditions_) {
    for (const auto& c : pre->conditions) {
      if (c.get() == p) return pre->config->name;
    }
  }
  return {};
}

namespace {

template <typename NeedPairs>
std::unique_ptr<Router::CompiledRule> compile_rule(const config::RuleConfig& r,
                                                   const TemplateContext& ctx,
                                                   NeedPairs& need_pairs) {
  {
    auto rule = std::make_unique<Router::CompiledRule>();
    rule->config = &r;
    rule->match.compile(r.match_url, r.pattern_syntax, r.match_ignore_case, r.match_negate);
    need_pairs(rule->match);
    for (const config::ConditionConfig& c : r.conditions) {
      auto p = std::make_unique<Router::CompiledPattern>();
      p->compile(c.pattern, r.pattern_syntax, c.ignore_case, c.negate);
      need_pairs(*p);
      rule->conditions.push_back(std::move(p));
      parse_template(c.input, ctx, rule->condition_inputs.emplace_back());
    }
    for (const config::ServerVariableSet& set : r.server_variables) {
      ServerVariableAssignment& a = rule->sets.emplace_back();
      a.slot = find_variable(ctx, set.name);
      a.replace = set.replace;
      parse_template(set.value, ctx, a.value);
    }
    parse_template(r.action_url, ctx, rule->action_url);
    parse_template(r.status_reason, ctx, rule->status_reason);
    parse_template(r.status_description, ctx, rule->status_description);
    return rule;
  }
}

}  // namespace

// Compiles maps, then the set of variables the rules write, then every rule's patterns and
// templates. `config` must outlive the Router (rules keep pointers into it). Throws
// std::runtime_error for an ECMAScript pattern that does not compile, which the loader rejects
// first.
Router::Router(const config::Config& config) : config_(config) {
  for (const config::RewriteMapConfig& m : config.rewrite_maps) {
    auto map = std::make_unique<CompiledMap>();
    map->name = m.name;
    map->default_value = m.default_value;
    map->entries = m.entries;
    // Stable, so of two keys that differ only in case the first defined wins.
    std::stable_sort(map->entries.begin(), map->entries.end(),
                     [](const auto& a, const auto& b) { return iless(a.first, b.first); });
    maps_.push_back(std::move(map));
  }
  // Every variable a rule sets gets a slot before any template is compiled, so a reference in
  // an earlier rule to a variable set by a later one still finds it (for the next request it
  // simply reads the built-in value).
  std::vector<const std::vector<config::RuleConfig>*> rule_lists{&config.global_rules,
                                                                 &config.distributed_rules};
  for (const config::SiteConfig& site : config.sites) rule_lists.push_back(&site.rules);
  auto add_variable = [&](const std::string& name) {
    bool known = std::any_of(variables_.begin(), variables_.end(),
                             [&](const auto& v) { return iequals(v->name, name); });
    if (known) return;
    auto v = std::make_unique<Variable>();
    v->name = name;
    v->header = header_for_variable(name);
    v->builtin = builtin_variable(name, v->builtin_header);
    variables_.push_back(std::move(v));
  };
  for (const auto* list : rule_lists) {
    for (const config::RuleConfig& r : *list) {
      if (!r.enabled) continue;
      for (const config::ServerVariableSet& set : r.server_variables) add_variable(set.name);
    }
  }
  // Outbound rules may rewrite a request variable (serverVariable="HTTP_ACCEPT_ENCODING"):
  // what they write is what the outbound rules after them read.
  std::vector<const config::OutboundConfig*> outbound_sections{&config.outbound};
  for (const config::SiteConfig& site : config.sites) outbound_sections.push_back(&site.outbound);
  for (const config::OutboundConfig* section : outbound_sections) {
    for (const config::OutboundRuleConfig& r : section->rules) {
      if (r.enabled && !r.server_variable.empty() && !istarts_with(r.server_variable, "RESPONSE_"))
        add_variable(r.server_variable);
    }
  }
  TemplateContext ctx{maps_, variables_, &reads_local_addr_};
  auto need_pairs = [&](const CompiledPattern& p) {
    max_capture_pairs_ = std::max<size_t>(max_capture_pairs_, p.capture_count + 1);
  };
  auto compile_rules = [&](const std::vector<config::RuleConfig>& list, RuleSet& into) {
    for (const config::RuleConfig& r : list) {
      // A rule that reads a rewrite provider never matches: Harrow runs no providers.
      if (!r.enabled || !r.provider.empty()) continue;
      into.push_back(compile_rule(r, ctx, need_pairs));
    }
  };
  compile_rules(config.global_rules, rules_);
  compile_rules(config.distributed_rules, distributed_rules_);
  site_rules_.resize(config.sites.size());
  for (size_t i = 0; i < config.sites.size(); ++i)
    compile_rules(config.sites[i].rules, site_rules_[i]);
  // Outbound rules: server level for every site, then each site's own. Preconditions are looked
  // up in the rule's own section first, then at server level (sites inherit them).
  auto compile_pre = [&](const config::OutboundConfig& section) {
    std::vector<const CompiledPreCondition*> out;
    for (const config::PreConditionConfig& pc : section.pre_conditions) {
      auto pre = std::make_unique<CompiledPreCondition>();
      pre->config = &pc;
      for (const config::ConditionConfig& c : pc.conditions) {
        auto p = std::make_unique<CompiledPattern>();
        p->compile(c.pattern, pc.pattern_syntax, c.ignore_case, c.negate);
        need_pairs(*p);
        pre->conditions.push_back(std::move(p));
        parse_template(c.input, ctx, pre->inputs.emplace_back());
      }
      out.push_back(pre.get());
      pre_conditions_.push_back(std::move(pre));
    }
    return out;
  };
  auto find_pre = [](const std::vector<const CompiledPreCondition*>& list,
                     std::string_view name) -> const CompiledPreCondition* {
    for (const CompiledPreCondition* p : list) {
      if (iequals(p->config->name, name)) return p;
    }
    return nullptr;
  };
  auto compile_outbound = [&](const config::OutboundConfig& section,
                              const std::vector<const CompiledPreCondition*>& own,
                              const std::vector<const CompiledPreCondition*>& inherited) {
    std::vector<const CompiledOutboundRule*> out;
    for (const config::OutboundRuleConfig& r : section.rules) {
      if (!r.enabled || !r.provider.empty()) continue;
      auto rule = std::make_unique<CompiledOutboundRule>();
      rule->config = &r;
      if (!r.pre_condition.empty()) {
        rule->pre_condition = find_pre(own, r.pre_condition);
        if (rule->pre_condition == nullptr)
          rule->pre_condition = find_pre(inherited, r.pre_condition);
        if (rule->pre_condition != nullptr && !rule->pre_condition->config->provider.empty())
          continue;  // its preCondition reads a provider: it never holds
      }
      rule->match.compile(r.pattern, r.pattern_syntax, r.ignore_case, r.negate);
      need_pairs(rule->match);
      for (const config::ConditionConfig& c : r.conditions) {
        auto p = std::make_unique<CompiledPattern>();
        p->compile(c.pattern, r.pattern_syntax, c.ignore_case, c.negate);
        need_pairs(*p);
        rule->conditions.push_back(std::move(p));
        parse_template(c.input, ctx, rule->condition_inputs.emplace_back());
      }
      parse_template(r.value, ctx, rule->value);
      if (r.whole_body) {
        int error = 0;
        PCRE2_SIZE offset = 0;
        rule->body_code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(r.pattern.data()),
                                            r.pattern.size(), r.ignore_case ? PCRE2_CASELESS : 0u,
                                            &error, &offset, nullptr));
        if (rule->body_code == nullptr) throw std::runtime_error("pattern does not compile");
        pcre2_pattern_info(rule->body_code.get(), PCRE2_INFO_MAXLOOKBEHIND, &rule->max_lookbehind);
        uint32_t groups = 0;
        pcre2_pattern_info(rule->body_code.get(), PCRE2_INFO_CAPTURECOUNT, &groups);
        max_capture_pairs_ = std::max<size_t>(max_capture_pairs_, groups + 1);
      } else if (!r.server_variable.empty() && !istarts_with(r.server_variable, "RESPONSE_")) {
        rule->slot = find_variable(ctx, r.server_variable);
      } else if (!r.server_variable.empty()) {
        rule->header = response_header_for_variable(r.server_variable);
      } else {
        std::string error;
        parse_filter_by_tags(r.filter_by_tags, rule->tags, error);  // validated by the loader
        for (const std::vector<config::CustomTagsConfig>* sets :
             {&section.custom_tags, &config.outbound.custom_tags}) {
          for (const config::CustomTagsConfig& set : *sets) {
            if (iequals(set.name, r.custom_tags) && rule->custom_tags.empty())
              rule->custom_tags = set.tags;
          }
        }
      }
      out.push_back(rule.get());
      outbound_rules_.push_back(std::move(rule));
    }
    return out;
  };
  std::vector<const CompiledPreCondition*> server_pre = compile_pre(config.outbound);
  std::vector<const CompiledOutboundRule*> server_rules =
      compile_outbound(config.outbound, server_pre, {});
  outbound_by_site_.push_back(server_rules);
  for (const config::SiteConfig& site : config.sites) {
    std::vector<const CompiledPreCondition*> own = compile_pre(site.outbound);
    std::vector<const CompiledOutboundRule*> rules = server_rules;
    for (const CompiledOutboundRule* r : compile_outbound(site.outbound, own, server_pre)) {
      rules.push_back(r);
    }
    outbound_by_site_.push_back(std::move(rules));
  }
}

Router::~Router() = default;

}  // namespace harrow
