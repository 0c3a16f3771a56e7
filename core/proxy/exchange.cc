#include "core/proxy/exchange.h"

#include <algorithm>

#include "core/proxy/snapshot.h"

namespace harrow {

void Exchange::clear() {
  // The state is assigned afresh, so a field added to it later is reset too; the buffers that
  // grew serving earlier requests keep their capacity.
  static_cast<ExchangeState&>(*this) = ExchangeState();
  state_fresh_ = true;
  decoder = RequestDecoder();
  epoch.reset();
  snap = nullptr;
  head.reset(0);  // nothing of another connection's request may show in a log line
  rule_header_text.clear();
  rule_variables.clear();
  rule_headers.clear();
  target.clear();
  hash_buffer.clear();
  rewritten_location.clear();
  rewritten_content_location.clear();
  outbound_replace.clear();
  outbound_add.clear();
  html_out.clear();
  text_out.clear();
  canonical_path.clear();
  outbound_rule_values.clear();
  detail_text.clear();
  response_trailers.clear();
}

ExchangePool::~ExchangePool() {
  for (Exchange* ex : free_) delete ex;
}

Exchange* ExchangePool::take_one() {
  ++in_use_;
  if (free_.empty()) return new Exchange();
  Exchange* ex = free_.back();
  free_.pop_back();
  if (free_.size() < low_) low_ = free_.size();
  return ex;
}

size_t ExchangePool::trim() {
  size_t n = std::min(low_, free_.size());
  for (size_t i = 0; i < n; ++i) delete free_[i];
  free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(n));
  if (n != 0) free_.shrink_to_fit();
  low_ = free_.size();
  return n;
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
