#include "health/farm_prober.h"

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "health/due_queue.h"

namespace harrow::health {
namespace {

constexpr uint64_t kTickMs = 250;

const char* availability_name(Availability a) {
  switch (a) {
    case Availability::Available:
      return "available";
    case Availability::Draining:
      return "draining";
    case Availability::Unavailable:
      return "unavailable";
  }
  return "?";
}

std::string state_name(bool healthy, Availability a) {
  return std::string(healthy ? "healthy" : "unhealthy") + "/" + availability_name(a);
}

// Jitter needs spread, not strength: eight bytes of state, where a Mersenne Twister per farm
// kept 2.5 KiB that probes walked through cold.
struct SplitMix64 {
  using result_type = uint64_t;
  uint64_t state;
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return UINT64_MAX; }
  uint64_t operator()() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

uint64_t ms(Millis m) {
  return static_cast<uint64_t>(std::max<int64_t>(0, m.count()));
}

}  // namespace

struct ServerRuntime;

// The one thread and event loop every farm's prober runs on. A thread per farm made a Harrow
// with hundreds of farms run hundreds of threads, each waking up for its own few probes; on one
// loop, probes that fall due together (farm_prober.cc puts them on a grid) go out in one
// wake-up, whichever farm they belong to. The next probe of every server is kept here, in one
// DueQueue behind one timer: a libuv timer per server put a thousand entries in the loop's
// timer heap, and moving one (every probe) walked a dozen cold heap nodes.
class ProberLoop {
 public:
  // The process's prober loop, started by the first caller; its thread ends when the last
  // holder lets go.
  static std::shared_ptr<ProberLoop> acquire();
  ~ProberLoop();
  ProberLoop(const ProberLoop&) = delete;
  ProberLoop& operator=(const ProberLoop&) = delete;

  uv_loop_t* loop() { return &loop_; }
  // Runs `task` on the loop's thread and returns once it has run. Not from the loop's thread.
  void run(const std::function<void()>& task);

  // On the loop's thread: `server` is probed when the loop's clock reaches `due` (ms, the
  // loop's time), or no more.
  void schedule(ServerRuntime& server, uint64_t due);
  void cancel(ServerRuntime& server);
  uint64_t now() const { return uv_now(&loop_); }
  // Jitter for every farm's schedules (the loop's thread only).
  SplitMix64& rng() { return rng_; }

 private:
  ProberLoop();
  static void on_tasks(uv_async_t* async);
  static void on_due(uv_timer_t* timer);
  void arm();  // the timer follows the queue's earliest entry

  uv_loop_t loop_{};
  uv_async_t tasks_{};
  uv_timer_t due_timer_{};
  DueQueue due_;
  bool firing_ = false;  // on_due is running: it arms the timer once at its end
  bool armed_ = false;
  uint64_t armed_at_ = 0;
  SplitMix64 rng_{(uint64_t{std::random_device{}()} << 32) | std::random_device{}()};
  std::mutex mutex_;  // guards queue_
  std::vector<std::function<void()>> queue_;
  std::thread thread_;
};

std::shared_ptr<ProberLoop> ProberLoop::acquire() {
  static std::mutex mutex;
  static std::weak_ptr<ProberLoop> current;
  std::lock_guard<std::mutex> lock(mutex);
  std::shared_ptr<ProberLoop> loop = current.lock();
  if (!loop) {
    loop.reset(new ProberLoop());
    current = loop;
  }
  return loop;
}

ProberLoop::ProberLoop() {
  uv_loop_init(&loop_);
  uv_async_init(&loop_, &tasks_, &ProberLoop::on_tasks);
  tasks_.data = this;
  uv_timer_init(&loop_, &due_timer_);
  due_timer_.data = this;
  thread_ = std::thread([this] {
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  });
}

ProberLoop::~ProberLoop() {
  // Every prober has closed its handles; with this one closed too the loop ends (after the
  // close callbacks still pending).
  run([this] {
    uv_close(reinterpret_cast<uv_handle_t*>(&tasks_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&due_timer_), nullptr);
  });
  thread_.join();
}

void ProberLoop::run(const std::function<void()>& task) {
  std::mutex mutex;
  std::condition_variable cv;
  bool ran = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back([&] {
      task();
      // Notified under the lock: the waiter cannot return (and take these with it) before.
      std::lock_guard<std::mutex> done(mutex);
      ran = true;
      cv.notify_one();
    });
  }
  uv_async_send(&tasks_);
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return ran; });
}

void ProberLoop::on_tasks(uv_async_t* async) {
  auto* self = static_cast<ProberLoop*>(async->data);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    tasks.swap(self->queue_);
  }
  for (auto& task : tasks) task();
}

void ProberLoop::arm() {
  if (firing_) return;
  if (due_.empty()) {
    if (armed_) uv_timer_stop(&due_timer_);
    armed_ = false;
    return;
  }
  uint64_t at = due_.earliest();
  if (armed_ && at == armed_at_) return;
  uint64_t now = uv_now(&loop_);
  uv_timer_start(&due_timer_, &ProberLoop::on_due, at > now ? at - now : 0, 0);
  armed_ = true;
  armed_at_ = at;
}

// One server as the prober sees it (its DueEntry: its place in the loop's DueQueue).
// Heap-allocated; freed when its farm drops it.
struct ServerRuntime : DueEntry {
  // What every probe touches comes first, next to its queue entry, with copies of the farm's
  // schedule (set by FarmProber::Impl::configure): with a thousand servers probed once a
  // second, each probe finds its server, and its farm, cold in the cache, so a probe that
  // passes as the last one did reads this and its client only.
  FarmProber::Impl* farm = nullptr;
  ProberLoop* prober = nullptr;
  ProbeRecord* record = nullptr;  // the farm's table's, for this server
  size_t index = 0;
  uint64_t interval_ms = 0;
  uint64_t grid_ms = 1;
  double jitter = 0;
  bool probing = false;  // the farm has a probe URL
  bool removed = false;
  // What the status page last got as this server's last probe: the same result again (a pass,
  // every interval) is not formatted and stored again.
  bool last_noted = false;
  ProbeResultKind last_kind = ProbeResultKind::Pass;
  // The farm's probe request made for this server, built at its first probe after a spec
  // change (not per probe: most of it is strings); the client keeps its text while it is the
  // same request.
  std::shared_ptr<const ProbeRequest> request;
  std::optional<ProbeClient> client;  // held in place: one pointer less to follow per probe
  ProbedServer spec;
  std::string last_detail;
  ServerHealth machine;
  uint64_t seen_live_failures = 0;
  TimePoint last_logged{};
  bool logged_once = false;
  uint32_t suppressed = 0;

  ServerRuntime(ProbedServer s, const HealthPolicy& policy, TimePoint now)
      : spec(std::move(s)), machine(policy, now) {}
};

struct FarmProber::Impl {
  std::mutex mutex;  // guards the three hand-over fields below, nothing on the probe path
  std::optional<ProbedFarm> pending_spec;
  std::vector<std::pair<std::string, AdminCommand>> pending_commands;
  struct FleetVerdict {
    std::string server;
    bool healthy;
    std::string reason;
  };
  std::vector<FleetVerdict> pending_verdicts;
  std::optional<bool> pending_probing;
  bool pending_announce = false;
  bool stop_requested = false;
  // The table whose traffic bell rings this prober (guarded by `mutex`): cleared before the
  // prober goes away.
  std::shared_ptr<HealthTable> belled_table;
  std::atomic<bool> fold_requested{false};  // a worker counted live-traffic failures

  ProbedFarm spec;
  std::vector<ServerRuntime*> servers;
  std::shared_ptr<ProberLoop> prober_loop;  // shared by every farm's prober
  uv_loop_t* loop = nullptr;
  uv_async_t wakeup{};
  uv_timer_t tick{};
  bool tick_running = false;  // only while a server wants it (ServerHealth::wants_tick)
  bool shut_down = false;
  int handles_closing = 0;
  // Set (under closed_mutex) when tick and wakeup have closed: *this may go then.
  std::mutex closed_mutex;
  std::condition_variable closed_cv;
  bool closed = false;
  bool panic = false;
  bool probes_here = true;  // false: a fleet follower (another instance probes)
  std::vector<uint64_t> live_failures;
  std::vector<uint64_t> in_flight;

  TimePoint now() const { return Clock::now(); }

  static uint64_t jittered_interval(ServerRuntime& s) {
    double base = static_cast<double>(s.interval_ms);
    double j = std::clamp(s.jitter, 0.0, 0.5);
    std::uniform_real_distribution<double> d(1.0 - j, 1.0 + j);
    return static_cast<uint64_t>(std::max(1.0, base * d(s.prober->rng())));
  }

  // A first probe somewhere in the first interval.
  uint64_t spread() {
    return std::uniform_int_distribution<uint64_t>(
        0, std::max<uint64_t>(1, ms(spec.interval)) - 1)(prober_loop->rng());
  }

  // A follower's state machines run as if the farm had no probe URL (back-off trials after
  // live-traffic failures), since no probe of its own will ever make a server healthy again.
  HealthPolicy effective_policy() const {
    HealthPolicy p = spec.policy;
    p.active_probing = p.active_probing && probes_here;
    return p;
  }

  // Copies what the server's probes need of the farm's spec into the server.
  void configure(ServerRuntime& s) {
    s.farm = this;
    s.prober = prober_loop.get();
    s.record = &spec.table->probe_record(s.index);
    s.interval_ms = ms(spec.interval);
    // Probes fall due on a grid (a fiftieth of the interval, at most 20 ms), so those due
    // within a few milliseconds of each other go out in one wake-up of the thread.
    s.grid_ms = std::clamp<uint64_t>(s.interval_ms / 50, 1, 20);
    s.jitter = spec.jitter;
    s.probing = spec.policy.active_probing && probes_here;
  }

  void log_transition(ServerRuntime& s, const Transition& t) {
    if (!spec.log) return;
    TimePoint n = now();
    // A flapping server is logged at most once per interval; the next line says how many
    // transitions it stayed quiet about.
    if (s.logged_once && n - s.last_logged < spec.interval) {
      ++s.suppressed;
      return;
    }
    std::string line =
        "health: farm=" + spec.farm + " pool=" + (spec.pool.empty() ? "-" : spec.pool) +
        " server=" + s.spec.label + ": " + state_name(t.before.healthy, t.before.availability) +
        " -> " + state_name(t.after.healthy, t.after.availability) + ": " + t.reason;
    if (s.suppressed != 0) {
      line += " (" + std::to_string(s.suppressed) + " earlier transitions not logged)";
    }
    s.suppressed = 0;
    s.last_logged = n;
    s.logged_once = true;
    spec.log(line);
  }

  // `by_admin`: a person asked for it, so it is always logged (flap suppression is for the
  // changes probes and traffic cause).
  void publish(ServerRuntime& s, const std::optional<Transition>& t, bool by_admin = false) {
    if (!t) return;
    spec.table->store(s.index, s.machine.healthy(), s.machine.availability());
    spec.table->probe_record(s.index).transitions.fetch_add(1, std::memory_order_relaxed);
    spec.table->probe_record(s.index).set_last_transition(
        state_name(t->before.healthy, t->before.availability) + " -> " +
        state_name(t->after.healthy, t->after.availability) + ": " + t->reason);
    if (by_admin) s.logged_once = false;
    log_transition(s, *t);
    update_panic();
    if (!tick_running && s.machine.wants_tick()) start_tick();
  }

  // The tick runs only while a server has something timed to do (a graceful stop watching
  // the requests in flight, a back-off): an idle farm does not wake its thread up.
  void start_tick() {
    tick_running = true;
    uv_timer_start(&tick, &Impl::on_tick, kTickMs, kTickMs);
  }

  void update_tick() {
    bool want = std::any_of(servers.begin(), servers.end(),
                            [](const ServerRuntime* s) { return s->machine.wants_tick(); });
    if (want && !tick_running) start_tick();
    if (!want && tick_running) {
      uv_timer_stop(&tick);
      tick_running = false;
    }
  }

  void update_panic() {
    uint32_t healthy = 0;
    for (ServerRuntime* s : servers) healthy += s->machine.healthy() ? 1 : 0;
    bool on = spec.min_servers > 0 && healthy < spec.min_servers;
    if (on == panic) return;
    panic = on;
    spec.table->set_panic(on);
    if (spec.log) {
      spec.log("health: farm=" + spec.farm + " pool=" + (spec.pool.empty() ? "-" : spec.pool) +
               (on ? ": panic mode on: " : ": panic mode off: ") + std::to_string(healthy) +
               " healthy, minServers " + std::to_string(spec.min_servers) +
               (on ? " (balancing over every available server, health disregarded)" : ""));
    }
  }

  static int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  static void schedule(ServerRuntime& s, uint64_t delay) {
    if (!s.probing) return;
    uint64_t now_ms = s.prober->now();
    uint64_t at = now_ms + delay;
    at += (s.grid_ms - at % s.grid_ms) % s.grid_ms;
    delay = at - now_ms;
    s.prober->schedule(s, at);
    s.record->next_probe_unix_ms.store(unix_ms() + static_cast<int64_t>(delay),
                                       std::memory_order_relaxed);
  }

  // The server's probe is due (called by the ProberLoop).
  static void probe_due(ServerRuntime* s) {
    schedule(*s, jittered_interval(*s));
    // A probe still running from the previous interval is not doubled up.
    if (s->client->busy()) return;
    Impl& self = *s->farm;
    if (s->request == nullptr) {
      auto request = std::make_shared<ProbeRequest>(self.spec.request);
      request->address = s->spec.probe_address;
      if (!s->spec.host_header.empty()) request->host_header = s->spec.host_header;
      if (!s->spec.tls_name.empty()) request->tls_name = s->spec.tls_name;
      s->request = std::move(request);
    }
    if (!s->spec.resolved) {
      self.apply_probe(
          *s, ProbeResult{ProbeResultKind::ConnectFailed, 0, 0, "address does not resolve"});
      return;
    }
    s->client->probe(s->request, [s](ProbeResult result) { s->farm->apply_probe(*s, result); });
  }

  void apply_probe(ServerRuntime& s, const ProbeResult& result) {
    if (s.removed) return;
    ProbeRecord& slot = *s.record;
    slot.probes[static_cast<int>(result.kind)].fetch_add(1, std::memory_order_relaxed);
    if (!s.last_noted || s.last_kind != result.kind || s.last_detail != result.detail) {
      slot.set_last_probe(std::string(probe_result_name(result.kind)) +
                          (result.detail.empty() ? "" : ": " + result.detail));
      s.last_noted = true;
      s.last_kind = result.kind;
      s.last_detail = result.detail;
    }
    slot.last_probe_unix_ms.store(unix_ms(), std::memory_order_relaxed);
    std::optional<Transition> t = s.machine.on_probe(result, now());
    if (t && probes_here && t->before.healthy != t->after.healthy && spec.on_probe_transition) {
      spec.on_probe_transition(s.spec.label, t->after.healthy, t->reason);
    }
    publish(s, t);
  }

  void apply_probing(bool on, bool announce) {
    if (on != probes_here) {
      probes_here = on;
      // Spread over a quarter of the interval, at most 250 ms: enough to keep a big farm's
      // probes from one instant, little next to the lease TTL the fleet already waited.
      uint64_t window = std::clamp<uint64_t>(ms(spec.interval) / 4, 1, 250);
      for (ServerRuntime* s : servers) {
        configure(*s);
        s->machine.set_policy(effective_policy());
        if (s->probing) {
          schedule(*s, std::uniform_int_distribution<uint64_t>(0, window - 1)(prober_loop->rng()));
        } else {
          prober_loop->cancel(*s);
        }
      }
    }
    if (announce && on && spec.on_probe_transition) {
      for (ServerRuntime* s : servers) {
        spec.on_probe_transition(s->spec.label, s->machine.healthy(), "state when taking over");
      }
    }
    update_tick();
  }

  void apply_verdict(const FleetVerdict& v) {
    if (ServerRuntime* s = find(v.server)) {
      publish(*s, s->machine.on_fleet(v.healthy, "fleet prober: " + v.reason, now()));
    }
  }

  // Folds the live-traffic failures the workers counted since the last call, and with
  // `tick` runs every server's timed transitions.
  void fold_traffic(bool tick) {
    size_t n = servers.size();
    live_failures.assign(n, 0);
    in_flight.assign(n, 0);
    if (spec.traffic) spec.traffic(live_failures, in_flight);
    TimePoint t = now();
    for (ServerRuntime* s : servers) {
      // Counters start at zero with the server and follow it across reloads (carried over by
      // identity), so the difference since the last fold is exactly the new failures.
      uint64_t total = live_failures[s->index];
      if (total > s->seen_live_failures) {
        uint64_t delta = total - s->seen_live_failures;
        publish(*s, s->machine.on_live_failures(
                        static_cast<uint32_t>(std::min<uint64_t>(delta, UINT32_MAX)), t));
      }
      s->seen_live_failures = total;
      if (tick) publish(*s, s->machine.on_tick(in_flight[s->index], t));
    }
  }

  static void on_tick(uv_timer_t* t) {
    Impl& self = *static_cast<Impl*>(t->data);
    self.fold_traffic(true);
    self.update_tick();
  }

  // Rung from a worker thread (HealthTable::ring_traffic_bell).
  void ring() {
    fold_requested.store(true, std::memory_order_release);
    uv_async_send(&wakeup);
  }

  void listen_to(const std::shared_ptr<HealthTable>& table) {
    std::lock_guard<std::mutex> lock(mutex);
    if (stop_requested || belled_table == table) return;
    if (belled_table) belled_table->set_traffic_bell(nullptr);
    belled_table = table;
    if (table) table->set_traffic_bell([this] { ring(); });
  }

  static void on_wakeup(uv_async_t* a) {
    Impl& self = *static_cast<Impl*>(a->data);
    std::optional<ProbedFarm> spec;
    std::vector<std::pair<std::string, AdminCommand>> commands;
    std::vector<FleetVerdict> verdicts;
    std::optional<bool> probing;
    bool announce = false;
    bool stop;
    {
      std::lock_guard<std::mutex> lock(self.mutex);
      spec.swap(self.pending_spec);
      commands.swap(self.pending_commands);
      verdicts.swap(self.pending_verdicts);
      probing.swap(self.pending_probing);
      announce = std::exchange(self.pending_announce, false);
      stop = self.stop_requested;
    }
    if (stop) return;  // the destructor shuts the prober down
    if (spec) self.apply_spec(std::move(*spec));
    if (probing) self.apply_probing(*probing, announce);
    for (auto& [server, command] : commands) self.apply_command(server, command);
    for (const FleetVerdict& v : verdicts) self.apply_verdict(v);
    if (self.fold_requested.exchange(false, std::memory_order_acq_rel)) self.fold_traffic(false);
    self.update_tick();
  }

  ServerRuntime* find(const std::string& server) {
    ServerRuntime* by_address = nullptr;
    int address_matches = 0;
    for (ServerRuntime* s : servers) {
      if (s->spec.label == server) return s;
      // "address" alone names the server when only one server has that address.
      if (s->spec.label.size() > server.size() &&
          s->spec.label.compare(0, server.size(), server) == 0 &&
          s->spec.label[server.size()] == ':') {
        by_address = s;
        ++address_matches;
      }
    }
    return address_matches == 1 ? by_address : nullptr;
  }

  void apply_command(const std::string& server, AdminCommand command) {
    if (ServerRuntime* s = find(server)) publish(*s, s->machine.on_admin(command, now()), true);
  }

  ServerRuntime* make_server(const ProbedServer& ps, size_t index) {
    auto* s = new ServerRuntime(ps, effective_policy(), now());
    s->index = index;
    configure(*s);
    s->client.emplace(loop);
    // First probes are spread across the interval, so a farm (or many Harrows) starting at
    // once does not probe in lock-step.
    schedule(*s, spread());
    return s;
  }

  // Its client is destroyed first, so no probe result can reach the server afterwards.
  void remove_server(ServerRuntime* s) {
    s->removed = true;
    prober_loop->cancel(*s);
    s->client.reset();
    delete s;
  }

  void apply_spec(ProbedFarm next) {
    bool was_probing = spec.policy.active_probing && probes_here;
    std::vector<ServerRuntime*> old = std::move(servers);
    servers.clear();
    spec = std::move(next);
    for (size_t i = 0; i < spec.servers.size(); ++i) {
      auto it = std::find_if(old.begin(), old.end(), [&](ServerRuntime* s) {
        return s != nullptr && s->spec.label == spec.servers[i].label;
      });
      if (it != old.end()) {
        ServerRuntime* s = *it;
        *it = nullptr;
        s->spec = spec.servers[i];
        s->request.reset();
        s->index = i;
        configure(*s);
        s->machine.set_policy(effective_policy());
        if (!s->probing) {
          prober_loop->cancel(*s);
        } else if (!was_probing) {
          schedule(*s, spread());
        }
        servers.push_back(s);
      } else {
        servers.push_back(make_server(spec.servers[i], i));
      }
    }
    for (ServerRuntime* s : old) {
      if (s != nullptr) remove_server(s);
    }
    // The new table shares slots with the old for kept servers; new servers start healthy.
    for (ServerRuntime* s : servers) {
      spec.table->store(s->index, s->machine.healthy(), s->machine.availability());
    }
    panic = spec.table->panic();  // carried over with the table; logged only when it changes
    update_panic();
    listen_to(spec.table);
    update_tick();
  }

  // On the loop's thread.
  void start() {
    uv_async_init(loop, &wakeup, &Impl::on_wakeup);
    wakeup.data = this;
    uv_timer_init(loop, &tick);
    tick.data = this;
    ProbedFarm initial = std::move(spec);
    spec = ProbedFarm{};
    spec.table = initial.table;
    probes_here = initial.probes_here;
    apply_spec(std::move(initial));
  }

  // On the loop's thread.
  void shutdown() {
    if (shut_down) return;
    shut_down = true;
    for (ServerRuntime* s : servers) remove_server(s);
    servers.clear();
    handles_closing = 2;
    auto on_closed = [](uv_handle_t* h) {
      auto* self = static_cast<Impl*>(h->data);
      if (--self->handles_closing != 0) return;
      std::lock_guard<std::mutex> lock(self->closed_mutex);
      self->closed = true;
      self->closed_cv.notify_one();
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&wakeup), on_closed);
  }
};

void ProberLoop::schedule(ServerRuntime& server, uint64_t due) {
  due_.add(server, due);
  arm();
}

void ProberLoop::cancel(ServerRuntime& server) {
  due_.remove(server);
  arm();
}

void ProberLoop::on_due(uv_timer_t* timer) {
  auto* self = static_cast<ProberLoop*>(timer->data);
  self->armed_ = false;
  self->firing_ = true;
  uint64_t now = uv_now(&self->loop_);
  // One at a time off the queue: a probe may reschedule or drop any server meanwhile.
  while (DueEntry* e = self->due_.pop_due(now)) {
    FarmProber::Impl::probe_due(static_cast<ServerRuntime*>(e));
  }
  self->firing_ = false;
  self->arm();
}

FarmProber::FarmProber(ProbedFarm spec) : impl_(std::make_unique<Impl>()) {
  impl_->spec = std::move(spec);
  impl_->prober_loop = ProberLoop::acquire();
  impl_->loop = impl_->prober_loop->loop();
  Impl* impl = impl_.get();
  impl_->prober_loop->run([impl] { impl->start(); });
}

FarmProber::~FarmProber() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop_requested = true;
    // No worker may ring a prober that is going away.
    if (impl_->belled_table) impl_->belled_table->set_traffic_bell(nullptr);
    impl_->belled_table.reset();
  }
  Impl* impl = impl_.get();
  impl_->prober_loop->run([impl] { impl->shutdown(); });
  std::unique_lock<std::mutex> lock(impl_->closed_mutex);
  impl_->closed_cv.wait(lock, [impl] { return impl->closed; });
}

void FarmProber::update(ProbedFarm spec) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->pending_spec = std::move(spec);
  }
  uv_async_send(&impl_->wakeup);
}

bool FarmProber::command(const std::string& server, AdminCommand command) {
  // The label list is the prober thread's; checking here against the spec last handed over
  // keeps the answer (404 or not) synchronous for the admin API.
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->pending_commands.emplace_back(server, command);
  }
  uv_async_send(&impl_->wakeup);
  return true;
}

void FarmProber::set_probing(bool probes_here, bool announce) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->pending_probing = probes_here;
    impl_->pending_announce = impl_->pending_announce || announce;
  }
  uv_async_send(&impl_->wakeup);
}

void FarmProber::apply_fleet(const std::string& server, bool healthy, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->pending_verdicts.push_back(Impl::FleetVerdict{server, healthy, reason});
  }
  uv_async_send(&impl_->wakeup);
}

}  // namespace harrow::health
