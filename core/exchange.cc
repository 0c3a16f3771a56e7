#include "core/exchange.h"

#include "core/snapshot.h"

namespace harrow {

void Exchange::clear() {
  // Reassigning a fresh Exchange resets every field, including any added later; the buffers
  // that grew serving earlier requests are carried over so the next one does not allocate.
  MessageHead kept_head = std::move(head);
  std::vector<std::pair<std::string, std::string>> kept_rule_header_text =
      std::move(rule_header_text);
  std::vector<HeaderField> kept_rule_headers = std::move(rule_headers);
  std::string kept_target = std::move(target);
  std::string kept_hash_buffer = std::move(hash_buffer);
  std::string kept_location = std::move(rewritten_location);
  std::string kept_content_location = std::move(rewritten_content_location);
  std::vector<HeaderField> kept_replace = std::move(outbound_replace);
  std::vector<HeaderField> kept_add = std::move(outbound_add);
  std::string kept_html_out = std::move(html_out);

  *this = Exchange();

  head = std::move(kept_head);
  head.reset(0);  // nothing of another connection's request may show in a log line
  rule_header_text = std::move(kept_rule_header_text);
  rule_header_text.clear();
  rule_headers = std::move(kept_rule_headers);
  rule_headers.clear();
  target = std::move(kept_target);
  target.clear();
  hash_buffer = std::move(kept_hash_buffer);
  hash_buffer.clear();
  rewritten_location = std::move(kept_location);
  rewritten_location.clear();
  rewritten_content_location = std::move(kept_content_location);
  rewritten_content_location.clear();
  outbound_replace = std::move(kept_replace);
  outbound_replace.clear();
  outbound_add = std::move(kept_add);
  outbound_add.clear();
  html_out = std::move(kept_html_out);
  html_out.clear();
}

ExchangePool::~ExchangePool() {
  for (Exchange* ex : free_) delete ex;
}

Exchange* ExchangePool::take() {
  ++in_use_;
  if (free_.empty()) return new Exchange();
  Exchange* ex = free_.back();
  free_.pop_back();
  return ex;
}

void ExchangePool::give_back(Exchange* ex) {
  --in_use_;
  if (free_.size() >= max_free_) {
    delete ex;
    return;
  }
  ex->clear();
  free_.push_back(ex);
}

}  // namespace harrow
