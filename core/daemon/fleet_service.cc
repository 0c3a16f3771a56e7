#include "core/daemon/fleet_service.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <mutex>
#include <thread>

#include "core/base/files.h"
#include "core/base/io_buffer.h"
#include "core/base/log.h"
#include "core/daemon/etcd_client.h"
#include "core/daemon/fleet.h"
#include "core/tls/tls_context.h"

namespace harrow {
namespace {

constexpr uint64_t kTickMs = 100;

}  // namespace

struct FleetService::Impl : fleet::Local {
  FleetService* owner = nullptr;
  Hooks hooks;
  uv_loop_t loop{};
  uv_async_t wakeup{};
  uv_timer_t tick{};
  FleetSecrets secrets;
  std::string logged_error;  // the last etcd error logged (each new one once)
  uint64_t next_error_log = 0;
  std::unique_ptr<etcd::EtcdClient> client;
  std::unique_ptr<etcd::EtcdStore> store;
  std::unique_ptr<fleet::FleetCore> core;
  std::thread thread;

  std::mutex mutex;  // guards the hand-over queue and the metrics copy
  std::vector<std::function<void()>> queue;
  bool stop_requested = false;
  std::map<std::string, fleet::Role> roles_copy;

  void post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      queue.push_back(std::move(task));
    }
    uv_async_send(&wakeup);
  }

  void refresh() {
    bool connected = core->connected();
    owner->connected_.store(connected, std::memory_order_relaxed);
    // Why etcd is out of reach (a TLS handshake or a password it refused), said once: the
    // fleet's own line says only that it is cut off.
    // At most one line per 10 s while cut off: endpoints failing in different ways would
    // otherwise alternate their errors at every request.
    if (connected) {
      logged_error.clear();
    } else if (!store->last_error().empty() && store->last_error() != logged_error &&
               (logged_error.empty() || uv_now(&loop) >= next_error_log)) {
      logged_error = store->last_error();
      next_error_log = uv_now(&loop) + 10'000;
      log_line(LogLevel::Warn, "fleet: etcd: %s", logged_error.c_str());
    }
    std::lock_guard<std::mutex> lock(mutex);
    roles_copy = core->roles();
  }

  static void on_wakeup(uv_async_t* a) {
    auto* self = static_cast<Impl*>(a->data);
    std::vector<std::function<void()>> tasks;
    bool stop;
    {
      std::lock_guard<std::mutex> lock(self->mutex);
      tasks.swap(self->queue);
      stop = self->stop_requested;
    }
    for (auto& t : tasks) t();
    if (stop) {
      self->shutdown();
      return;
    }
    self->refresh();
  }

  static void on_tick(uv_timer_t* t) {
    auto* self = static_cast<Impl*>(t->data);
    self->core->tick(fleet::Clock::now());
    self->refresh();
  }

  // Revoke the lease (a second at most), then close everything so the loop ends.
  void shutdown() {
    uv_timer_stop(&tick);
    core->stop();
    auto* timer = new uv_timer_t;
    uv_timer_init(&loop, timer);
    timer->data = this;
    uv_timer_start(
        timer,
        [](uv_timer_t* t) {
          auto* self = static_cast<Impl*>(t->data);
          if (self->client->open_connections() != 0 && uv_now(&self->loop) < self->stop_deadline) {
            return;  // the revoke is still on its way
          }
          self->client->close();
          uv_close(reinterpret_cast<uv_handle_t*>(t),
                   [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
          uv_close(reinterpret_cast<uv_handle_t*>(&self->tick), nullptr);
          uv_close(reinterpret_cast<uv_handle_t*>(&self->wakeup), nullptr);
        },
        20, 20);
    stop_deadline = uv_now(&loop) + 1000;
  }
  uint64_t stop_deadline = 0;

  // fleet::Local
  void set_probing(const std::string& farm, bool probes_here, bool announce) override {
    hooks.set_probing(farm, probes_here, announce);
  }
  void apply_health(const std::string& farm, const std::string& server, bool healthy,
                    const std::string& reason) override {
    hooks.apply_health(farm, server, healthy, reason);
  }
  void apply_admin(const std::string& farm, const std::string& server,
                   const std::string& command) override {
    log_line(LogLevel::Info, "fleet: farm=%s server=%s: %s (from another instance)", farm.c_str(),
             server.c_str(), command.c_str());
    hooks.apply_admin(farm, server, command);
  }
  void apply_config(const std::string& text, int64_t revision) override {
    if (hooks.apply_config) hooks.apply_config(text, revision);
  }
  void log(bool warning, const std::string& line) override {
    log_line(warning ? LogLevel::Warn : LogLevel::Info, "%s", line.c_str());
  }
};

bool load_fleet_secrets(const config::FleetConfig& config, FleetSecrets& out,
                        std::vector<config::Diagnostic>& errors) {
  size_t before = errors.size();
  if (config.tls) {
    std::string why;
    SSL_CTX* ctx = tls::new_fleet_context(config, why);
    if (ctx == nullptr) {
      errors.push_back({config.where, why});
    } else {
      out.tls.reset(ctx, SSL_CTX_free);
    }
  }
  if (!config.password_file.empty()) {
    // Opened without following a symbolic link; a regular file only its owner may read.
    std::string error;
    int fd = open_regular_file(config.password_file, O_RDONLY, "password file", error);
    struct stat st;
    if (fd >= 0 && (::fstat(fd, &st) != 0 || (st.st_mode & 077) != 0)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      error = "password file \"" + config.password_file + "\" has mode " + mode +
              ": group and others must have no access (chmod 600)";
      ::close(fd);
      fd = -1;
    }
    if (fd >= 0) {
      char buffer[4096];
      for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.password.append(buffer, static_cast<size_t>(n));
        if (out.password.size() > 4096) break;
      }
      ::close(fd);
      // One line: the trailing newline an editor or `echo` adds is not part of the password.
      while (!out.password.empty() &&
             (out.password.back() == '\n' || out.password.back() == '\r')) {
        out.password.pop_back();
      }
      if (out.password.empty() || out.password.size() > 4096) {
        error = "cannot read a password from " + config.password_file +
                " (empty, unreadable or over 4 KiB)";
      }
    }
    if (!error.empty()) errors.push_back({config.password_file_where, error});
  }
  return errors.size() == before;
}

FleetService::FleetService(const config::FleetConfig& config, FleetSecrets secrets, Hooks hooks)
    : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.owner = this;
  i.secrets = std::move(secrets);
  i.hooks = std::move(hooks);
  uv_loop_init(&i.loop);
  uv_async_init(&i.loop, &i.wakeup, &Impl::on_wakeup);
  i.wakeup.data = &i;
  uv_timer_init(&i.loop, &i.tick);
  i.tick.data = &i;
  fleet::Settings settings;
  settings.prefix = config.prefix;
  settings.name = config.name;
  settings.instance = config.instance;
  settings.lease_ttl = fleet::Millis{int64_t{config.lease_ttl_seconds} * 1000};
  settings.shared_config = config.shared_config;
  // A request gets a third of the TTL at each endpoint: a dead endpoint is passed over well
  // before the lease could expire.
  auto timeout = std::max(fleet::Millis{300}, settings.lease_ttl / 3);
  etcd::EtcdClient::Security security;
  security.tls = i.secrets.tls.get();
  security.user = config.user;
  security.password = i.secrets.password;
  i.client = std::make_unique<etcd::EtcdClient>(&i.loop, config.endpoints, timeout, security);
  i.store = std::make_unique<etcd::EtcdStore>(*i.client);
  i.core = std::make_unique<fleet::FleetCore>(settings, *i.store, i);
  log_line(LogLevel::Info, "fleet: %s, instance %s, %zu etcd endpoint(s)%s%s, lease TTL %us",
           config.name.c_str(), config.instance.c_str(), config.endpoints.size(),
           config.tls ? " over TLS" : "", config.user.empty() ? "" : ", etcd auth",
           config.lease_ttl_seconds);
  Impl* impl = impl_.get();
  i.thread = std::thread([impl] {
    impl->core->start(fleet::Clock::now());
    uv_timer_start(&impl->tick, &Impl::on_tick, kTickMs, kTickMs);
    uv_run(&impl->loop, UV_RUN_DEFAULT);
    impl->client.reset();
    uv_loop_close(&impl->loop);
    io_pools_release_thread();  // TLS sessions' blocks
  });
}

FleetService::~FleetService() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop_requested = true;
  }
  uv_async_send(&impl_->wakeup);
  impl_->thread.join();
}

void FleetService::set_farms(std::vector<std::string> farms) {
  Impl* impl = impl_.get();
  impl->post(
      [impl, farms = std::move(farms)] { impl->core->set_farms(farms, fleet::Clock::now()); });
}

void FleetService::publish_health(const std::string& farm, const std::string& server, bool healthy,
                                  const std::string& reason) {
  Impl* impl = impl_.get();
  impl->post([=] { impl->core->publish_health(farm, server, healthy, reason); });
}

void FleetService::publish_admin(const std::string& farm, const std::string& server,
                                 const std::string& command) {
  Impl* impl = impl_.get();
  impl->post([=] { impl->core->publish_admin(farm, server, command); });
}

void FleetService::publish_config_status(int64_t revision, bool applied,
                                         const std::string& errors) {
  Impl* impl = impl_.get();
  impl->post([=] { impl->core->publish_config_status(revision, applied, errors); });
}

std::string FleetService::config_key() const {
  return impl_->core->config_key();  // immutable after construction
}

std::string FleetService::metrics_text() const {
  std::string out =
      "# HELP harrow_fleet_connected Whether this instance has a live session with the fleet's "
      "etcd (0: cut off, probing every farm itself).\n"
      "# TYPE harrow_fleet_connected gauge\n"
      "harrow_fleet_connected " +
      std::string(connected() ? "1" : "0") +
      "\n# HELP harrow_fleet_prober Whether this instance probes the farm (the fleet's elected "
      "prober, or cut off from etcd).\n# TYPE harrow_fleet_prober gauge\n";
  std::lock_guard<std::mutex> lock(impl_->mutex);
  for (const auto& [farm, role] : impl_->roles_copy) {
    bool probes = role == fleet::Role::Leader || role == fleet::Role::Alone;
    out += "harrow_fleet_prober{farm=\"" + farm + "\",role=\"" + fleet::role_name(role) + "\"} " +
           (probes ? "1" : "0") + "\n";
  }
  return out;
}

}  // namespace harrow
