// Smooth weighted round robin with a proven bound, at O(log n) per pick and O(1) once a cycle
// has been recorded.
//
// The order is Tijdeman's "chairman assignment" (1980): pick n+1 goes, among the servers whose
// lag (n+1)·r_i - c_i is at least s = 1/(2(k-1)), to the one whose deadline (c_i + 1 - s)/r_i
// is earliest (k available servers, shares r_i = w_i/W, c_i picks so far; ties go to the
// server first in configuration order). Tijdeman proved that after every n picks
//     |c_i - n·r_i| ≤ 1 - 1/(2(k-1))        for every server i,
// so each server is within less than one pick of its exact share at every prefix, and over a
// cycle of W = sum(reduced weights) picks each server is picked exactly its (reduced) weight.
// (nginx's current/effective-weight scheme, the usual choice, can fall 1.06 picks behind.)
//
// How it is made fast: a server's eligibility time and its deadline both move forward by a
// fixed step each time it is picked, so the scheduler is two heaps, as in WF²Q: `pending`
// (ordered by the pick number at which a server becomes eligible) and `ready` (eligible
// servers ordered by deadline). Times are kept as exact quotient + remainder, so no 128-bit
// division runs per pick and ties resolve exactly as the rational comparison would.
// The sequence repeats every W picks, so while the first cycle is generated it is also recorded
// when W is not too long (see kMaxTable): from the second cycle on a pick is one array read. The
// schedule restarts whenever the set of available servers changes.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "balancer/algorithms.h"
#include "balancer/available_set.h"
#include "balancer/min_heap.h"

namespace harrow::balancer {
namespace {

// Tijdeman's order over a fixed set of servers, generated one pick at a time.
class ChairmanSchedule {
 public:
  // weights: the available servers' weights, already divided by their gcd (each ≥ 1).
  void reset(std::vector<uint64_t> weights) {
    weights_ = std::move(weights);
    total_ = std::accumulate(weights_.begin(), weights_.end(), uint64_t{0});
    size_t k = weights_.size();
    two_k1_ = 2 * static_cast<uint64_t>(k > 1 ? k - 1 : 1);
    state_.assign(k, {});
    for (size_t i = 0; i < k; ++i) {
      uint64_t w = weights_[i];
      Timing& t = state_[i];
      // Deadline (c+1-s)/r_i in units of W/(2(k-1)): (2(k-1)(c+1) - 1) / w.
      t.deadline_step_q = two_k1_ / w;
      t.deadline_step_r = two_k1_ % w;
      // Eligible from pick number ceil(W(2(k-1)c + 1) / (2(k-1)w)).
      t.eligible_den = two_k1_ * w;
      t.eligible_step_q = total_ / w;
      t.eligible_step_r = two_k1_ * (total_ % w);
    }
    restart();
  }

  // Starts the cycle again from zero picks.
  void restart() {
    picks_done_ = 0;
    ready_.clear();
    pending_.clear();
    for (size_t i = 0; i < state_.size(); ++i) {
      Timing& t = state_[i];
      t.deadline_q = (two_k1_ - 1) / weights_[i];
      t.deadline_r = (two_k1_ - 1) % weights_[i];
      t.eligible_q = total_ / t.eligible_den;
      t.eligible_r = total_ % t.eligible_den;
      pending_.push({eligible_at(t), static_cast<uint32_t>(i)});
    }
  }

  uint64_t cycle_length() const { return total_; }

  // Position (into the weights given to reset) of the next pick.
  uint32_t next() {
    uint64_t pick_number = picks_done_ + 1;
    while (!pending_.empty() && pending_.top().at <= pick_number) push_ready(pending_.pop().pos);
    // Unreachable by Tijdeman's theorem (someone is always eligible); kept so that a broken
    // invariant degrades to "earliest eligible" rather than to a crash.
    if (ready_.empty()) push_ready(pending_.pop().pos);
    uint32_t pos = ready_.pop().pos;

    Timing& t = state_[pos];
    uint64_t w = weights_[pos];
    t.deadline_q += t.deadline_step_q;
    t.deadline_r += t.deadline_step_r;
    if (t.deadline_r >= w) {
      t.deadline_r -= w;
      ++t.deadline_q;
    }
    t.eligible_q += t.eligible_step_q;
    t.eligible_r += t.eligible_step_r;
    if (t.eligible_r >= t.eligible_den) {
      t.eligible_r -= t.eligible_den;
      ++t.eligible_q;
    }
    uint64_t at = eligible_at(t);
    if (at <= pick_number + 1) {
      push_ready(pos);  // eligible again at once: skip the pending heap
    } else {
      pending_.push({at, pos});
    }

    if (++picks_done_ == total_) restart();  // every count is exact: the cycle repeats
    return pos;
  }

 private:
  struct Timing {
    uint64_t deadline_q = 0, deadline_r = 0, deadline_step_q = 0, deadline_step_r = 0;
    uint64_t eligible_q = 0, eligible_r = 0, eligible_den = 1;
    uint64_t eligible_step_q = 0, eligible_step_r = 0;
  };
  struct ReadyEntry {
    uint64_t q;  // deadline = q + r/w
    uint32_t r;
    uint32_t w;
    uint32_t pos;
  };
  struct PendingEntry {
    uint64_t at;  // first pick number at which the server is eligible
    uint32_t pos;
  };
  // Earlier deadline first, then configuration order; evaluated without branches (& and |
  // on bools), since deadlines tie and interleave unpredictably.
  struct ReadyFirst {
    bool operator()(const ReadyEntry& a, const ReadyEntry& b) const {
      uint64_t ra = uint64_t{a.r} * b.w, rb = uint64_t{b.r} * a.w;
      return (a.q < b.q) | ((a.q == b.q) & ((ra < rb) | ((ra == rb) & (a.pos < b.pos))));
    }
  };
  struct PendingFirst {
    bool operator()(const PendingEntry& a, const PendingEntry& b) const { return a.at < b.at; }
  };

  static uint64_t eligible_at(const Timing& t) { return t.eligible_q + (t.eligible_r != 0); }

  void push_ready(uint32_t pos) {
    const Timing& t = state_[pos];
    ready_.push({t.deadline_q, static_cast<uint32_t>(t.deadline_r),
                 static_cast<uint32_t>(weights_[pos]), pos});
  }

  std::vector<uint64_t> weights_;
  std::vector<Timing> state_;
  MinHeap<ReadyEntry, ReadyFirst> ready_;
  MinHeap<PendingEntry, PendingFirst> pending_;
  uint64_t total_ = 0;
  uint64_t two_k1_ = 2;
  uint64_t picks_done_ = 0;
};

// A cycle is recorded when it is at most max(65,536, 1,024 per server) picks long, and never
// above 2^20 (4 MiB): equal weights, and the weights people write (100, 200, 50…) once divided
// by their gcd, all fit; huge co-prime weights stay on the heaps.
constexpr uint64_t kMaxTable = uint64_t{1} << 20;

class WeightedRoundRobin final : public Balancer {
 public:
  explicit WeightedRoundRobin(const std::vector<uint32_t>& weights)
      : set_(std::vector<uint64_t>(weights.begin(), weights.end())) {}

  std::optional<size_t> pick(const PickContext& ctx) override {
    if (set_.refresh(ctx.availability)) restart();
    if (set_.empty()) return std::nullopt;
    if (ctx.exclude.empty()) return next();
    return next_not_excluded(ctx.exclude);
  }

 private:
  void restart() {
    std::span<const uint32_t> servers = set_.servers();
    table_.clear();
    table_pos_ = 0;
    recording_ = false;
    if (servers.size() < 2) return;
    uint64_t g = 0;
    for (uint32_t s : servers) g = std::gcd(g, set_.weight(s));
    std::vector<uint64_t> reduced;
    reduced.reserve(servers.size());
    for (uint32_t s : servers) reduced.push_back(set_.weight(s) / g);
    schedule_.reset(std::move(reduced));
    uint64_t table_limit =
        std::min<uint64_t>(kMaxTable, std::max<uint64_t>(1 << 16, 1024 * servers.size()));
    recording_ = schedule_.cycle_length() <= table_limit;
    if (recording_) table_.reserve(schedule_.cycle_length());
  }

  // The next server in the smooth order (the set is not empty).
  size_t next() {
    std::span<const uint32_t> servers = set_.servers();
    if (servers.size() == 1) return servers[0];
    if (!recording_ && !table_.empty()) {
      uint32_t s = table_[table_pos_];
      if (++table_pos_ == table_.size()) table_pos_ = 0;
      return s;
    }
    uint32_t s = servers[schedule_.next()];
    if (recording_) {
      table_.push_back(s);
      if (table_.size() == schedule_.cycle_length()) recording_ = false;  // cycle complete
    }
    return s;
  }

  // Failover: the next servers in order until one not excluded. Excluded servers lose the
  // turns skipped over (they just failed this request). Bounded: a heavy excluded server can
  // hold many consecutive turns, so after a while take the heaviest candidate instead.
  std::optional<size_t> next_not_excluded(std::span<const size_t> exclude) {
    if (set_.count_candidates(exclude) == 0) return std::nullopt;
    for (size_t tries = 0; tries < 4 * set_.size() + 64; ++tries) {
      size_t s = next();
      if (!is_excluded(s, exclude)) return s;
    }
    std::optional<size_t> best;
    for (uint32_t s : set_.servers()) {
      if (is_excluded(s, exclude)) continue;
      if (!best || set_.weight(s) > set_.weight(*best)) best = s;
    }
    return best;
  }

  AvailableSet set_;
  ChairmanSchedule schedule_;
  std::vector<uint32_t> table_;  // one recorded cycle (when short enough)
  size_t table_pos_ = 0;
  bool recording_ = false;
};

}  // namespace

std::unique_ptr<Balancer> make_weighted_round_robin(const std::vector<uint32_t>& weights) {
  return std::make_unique<WeightedRoundRobin>(weights);
}

}  // namespace harrow::balancer
