// What health and balancing cost a worker per request: reading one server's state from the
// lock-free table, and one weighted-round-robin pick over farms of 2 to 1,000 servers.
//   cmake --build build/release --target health_bench && build/release/bench/health_bench
#include <benchmark/benchmark.h>

#include <vector>

#include "balancer/balancer.h"
#include "health/health_table.h"

namespace {

void BM_HealthTableLoad(benchmark::State& state) {
  harrow::health::HealthTable table(1000);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.load(i).takes_new_requests());
    i = (i + 1) % 1000;
  }
}
BENCHMARK(BM_HealthTableLoad);

class TableAvailability final : public harrow::balancer::AvailableServers {
 public:
  explicit TableAvailability(const harrow::health::HealthTable& t) : table_(t) {}
  bool available(size_t server) const override { return table_.load(server).takes_new_requests(); }
  uint64_t version() const override { return table_.version(); }

 private:
  const harrow::health::HealthTable& table_;
};

void BM_WeightedRoundRobinPick(benchmark::State& state) {
  size_t servers = static_cast<size_t>(state.range(0));
  std::vector<uint32_t> weights(servers);
  for (size_t i = 0; i < servers; ++i) weights[i] = static_cast<uint32_t>(1 + i % 7);
  harrow::health::HealthTable table(servers);
  TableAvailability availability(table);
  auto wrr = harrow::balancer::make_weighted_round_robin(weights);
  harrow::balancer::Random rng;
  for (auto _ : state) {
    benchmark::DoNotOptimize(wrr->pick(harrow::balancer::PickContext{availability, rng}));
  }
}
BENCHMARK(BM_WeightedRoundRobinPick)->Arg(2)->Arg(10)->Arg(100)->Arg(1000);

}  // namespace

BENCHMARK_MAIN();
