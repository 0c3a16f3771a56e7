// Cost of one balancer pick, per algorithm and farm size (2, 16, 256, 1,000 and 4,096 servers,
// all available, equal weights unless the name says otherwise). Feedback algorithms are
// measured with their bookkeeping: every pick is announced with on_start and an earlier one
// ends with on_finish (eight requests in flight), with the clock advancing, so the number is
// what a request costs the balancer. A pick runs once per proxied request on the worker's
// thread, so it must stay small next to the request's own work (targets:
// bench/results/figures-from-comments.md).
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <vector>

#include "balancer/balancer.h"

namespace {

using harrow::balancer::Algorithm;
using harrow::balancer::AllAvailable;
using harrow::balancer::BalancedFarm;
using harrow::balancer::Finish;
using harrow::balancer::Outcome;
using harrow::balancer::PickContext;
using harrow::balancer::Random;

enum class Weights { Equal, Small, Huge };

BalancedFarm farm(Algorithm algorithm, size_t n, Weights weights) {
  BalancedFarm spec;
  spec.algorithm = algorithm;
  Random rng(99);
  for (size_t i = 0; i < n; ++i) {
    uint32_t weight = 100;
    if (weights == Weights::Small) weight = static_cast<uint32_t>(1 + rng.below(1000));
    if (weights == Weights::Huge) weight = static_cast<uint32_t>(1 + rng.below(4'000'000'000u));
    spec.servers.push_back(
        {"10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080", weight});
  }
  return spec;
}

void run(benchmark::State& state, Algorithm algorithm, Weights weights = Weights::Equal,
         double balance_factor = 0) {
  BalancedFarm spec = farm(algorithm, static_cast<size_t>(state.range(0)), weights);
  spec.hash_balance_factor = balance_factor;
  auto balancer = harrow::balancer::make_balancer(spec);
  AllAvailable all;
  Random rng(1);
  std::vector<uint64_t> hashes(1024);
  for (uint64_t& h : hashes) h = rng.next();
  std::array<size_t, 8> outstanding{};
  uint64_t now = 1'000'000'000, n = 0;
  for (size_t& s : outstanding) {
    s = *balancer->pick(PickContext{all, rng, now, hashes[0]});
    balancer->on_start(s);
  }
  for (auto _ : state) {
    now += 100'000;
    auto chosen = balancer->pick(PickContext{all, rng, now, hashes[n & 1023]});
    benchmark::DoNotOptimize(chosen);
    balancer->on_start(*chosen);
    size_t& oldest = outstanding[n & 7];
    balancer->on_finish(
        oldest, Finish{Outcome::Success, 1'000'000 + (n & 0xFFFF) * 50, 2000 + (n & 0x3FF), now});
    oldest = *chosen;
    ++n;
  }
}

void WeightedRoundRobin(benchmark::State& s) {
  run(s, Algorithm::WeightedRoundRobin);
}
// Weights 1..1000: a cycle of ~500 picks per server, recorded after the first cycle.
void WeightedRoundRobinWeighted(benchmark::State& s) {
  run(s, Algorithm::WeightedRoundRobin, Weights::Small);
}
// Weights up to 4·10^9 with no common divisor: the cycle is never recorded (heaps only).
void WeightedRoundRobinHugeWeights(benchmark::State& s) {
  run(s, Algorithm::WeightedRoundRobin, Weights::Huge);
}
void LeastRequests(benchmark::State& s) {
  run(s, Algorithm::LeastRequests);
}
void LeastRequestsWeighted(benchmark::State& s) {
  run(s, Algorithm::LeastRequests, Weights::Small);
}
void LeastResponseTime(benchmark::State& s) {
  run(s, Algorithm::LeastResponseTime);
}
void WeightedTotalTraffic(benchmark::State& s) {
  run(s, Algorithm::WeightedTotalTraffic);
}
void RequestHash(benchmark::State& s) {
  run(s, Algorithm::RequestHash);
}
void RequestHashBounded(benchmark::State& s) {
  run(s, Algorithm::RequestHash, Weights::Equal, 1.25);
}

#define FARM_SIZES Arg(2)->Arg(16)->Arg(256)->Arg(4096)
BENCHMARK(WeightedRoundRobin)->FARM_SIZES->Arg(1000);
BENCHMARK(WeightedRoundRobinWeighted)->FARM_SIZES->Arg(1000);
BENCHMARK(WeightedRoundRobinHugeWeights)->FARM_SIZES->Arg(1000);
BENCHMARK(LeastRequests)->FARM_SIZES;
BENCHMARK(LeastRequestsWeighted)->FARM_SIZES;
BENCHMARK(LeastResponseTime)->FARM_SIZES;
BENCHMARK(WeightedTotalTraffic)->FARM_SIZES;
BENCHMARK(RequestHash)->FARM_SIZES;
BENCHMARK(RequestHashBounded)->FARM_SIZES;

}  // namespace

BENCHMARK_MAIN();
