// harrow: the process. Loads the configuration, binds every listener before printing
// anything (so a printed address is a working one), starts the workers and the admin
// listener, and turns signals into a graceful stop.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

#include "config/loader.h"
#include "core/admin/admin.h"
#include "core/admin/explain.h"
#include "core/base/ascii.h"
#include "core/base/log.h"
#include "core/daemon/capabilities.h"
#include "core/daemon/cli.h"
#include "core/daemon/ctl.h"
#include "core/daemon/fleet_service.h"
#include "core/daemon/health_service.h"
#include "core/daemon/privileges.h"
#include "core/daemon/replay.h"
#include "core/daemon/sd_notify.h"
#include "core/daemon/state_file.h"
#include "core/daemon/upgrade.h"
#include "core/http1/http_head.h"
#include "core/proxy/listen.h"
#include "core/proxy/snapshot.h"
#include "core/proxy/worker.h"
#include "core/rewrite/regex_safety.h"

namespace harrow {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;

double unix_now() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// The TLS contexts `config` asks for; false with `errors` (at the <certificate>, <tls> or
// <upstreamTls> element) when a file is missing, unreadable or does not match.
bool build_tls(const config::Config& config, TlsContexts& out,
               std::vector<config::Diagnostic>& errors) {
  out.server = tls::ServerContexts::build(config, errors);
  out.client = tls::ClientContexts::build(config, errors);
  return errors.empty();
}

// Farms whose servers' certificates are not checked: said loudly, at start and each reload.
void warn_unverified_upstreams(const config::Config& config) {
  for (const config::UpstreamTlsConfig& u : config.upstream_tls) {
    if (u.verify_certificate) continue;
    log_line(LogLevel::Warn,
             "upstream TLS certificate verification is OFF for %s (%s:%d): anyone on the path "
             "can impersonate those servers; use this for lab setups only",
             u.farm.empty() ? "every farm" : ("farm " + u.farm).c_str(), u.where.file.c_str(),
             u.where.line);
  }
}

// Said at start and by --check-config: the admin API can change what the proxy does, so it
// belongs on loopback (or behind a token and a firewall).
std::string admin_exposure_warning(const config::Config& config) {
  if (is_loopback_address(config.admin_address)) return "";
  return "the admin listener " + config.admin_address + " is reachable beyond loopback" +
         (config.admin_token_file.empty()
              ? std::string(" (non-loopback clients are refused without a tokenFile)")
              : std::string(": protect it with a firewall as well as the token"));
}

// The admin token: the file's content without trailing whitespace. The file is opened without
// following a symbolic link and must be a regular file group and others cannot read.
bool read_token_file(const std::string& path, std::string& token, std::string& error) {
  int fd = open_regular_file(path, O_RDONLY, "admin token file", error);
  if (fd < 0) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    error = "token file \"" + path + "\" has mode " + mode +
            ": group and others must have no access (chmod 600)";
    ::close(fd);
    return false;
  }
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    token.append(buffer, static_cast<size_t>(n));
    if (token.size() > 4096) break;
  }
  ::close(fd);
  while (!token.empty() && is_ascii_space(token.back())) token.pop_back();
  if (token.empty() || token.size() > 4096) {
    error = "cannot read an admin token from " + path + " (empty, unreadable or over 4 KiB)";
    return false;
  }
  return true;
}

// Applies the command line's overrides to a freshly loaded file.
void apply_overrides(const CommandLine& cli, config::Config& config) {
  if (!cli.listen.empty()) {
    std::erase_if(config.listeners, [](const config::ListenConfig& l) { return !l.tls; });
    for (const std::string& address : cli.listen) config.listeners.push_back({address, false, {}});
  }
  if (cli.admin) config.admin_address = *cli.admin;
}

struct Process {
  uv_loop_t* loop = uv_default_loop();
  CommandLine cli;
  std::shared_ptr<const Snapshot> current;    // main thread only
  std::unique_ptr<AccessLogFile> access_log;  // outlives the workers (declared before them)
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<AdminServer> admin;
  // <harrow><fleet>: made before the probers, gone after them (they publish to it), so it is
  // declared before `health`.
  std::unique_ptr<FleetService> fleet;
  HealthService health;
  // <fleet sharedConfig="true">: revisions of the configuration key, handed over by the fleet's
  // thread (the latest wins), applied here as a reload.
  uv_async_t shared_async{};
  std::mutex shared_mutex;
  bool shared_async_open = false;
  std::optional<std::pair<std::string, int64_t>> shared_pending;
  std::string shared_text;    // the shared revision being served; empty: the local file
  std::string shared_origin;  // its name in error messages: the key and revision
  uv_signal_t sigterm{}, sigint{}, sighup{}, sigusr1{}, sigusr2{};
  // SIGUSR2: a binary upgrade hands these to the new process (core/daemon/upgrade.h).
  std::vector<InheritedListener> listening;
  std::unique_ptr<BinaryUpgrade> upgrade;
  bool handed_over = false;  // a new process serves: no STOPPING=1, no last state write
  uv_timer_t history_timer{};
  uv_timer_t state_timer{};
  uv_timer_t stop_wait_timer{};  // after a stop: ends the loop once every worker has finished
  std::string state_written;     // the state file's content as last written
  std::string state_error;       // the last write error, logged once
  StatusHistory history;
  Counter reloads;
  Counter reload_failures;
  double last_reload_success = unix_now();
  bool stopping = false;
  bool stopping_now = false;

  // Builds a new snapshot beside the current one and hands it to every worker; a file with
  // errors changes nothing. Listener and admin addresses stay as bound at start-up.
  // The admin API's state and health commands (ARR's SetState / SetHealthy / SetUnhealthy).
  std::string server_command(const std::string& farm, const std::string& server,
                             const std::string& verb, const std::string& value) {
    using health::AdminCommand;
    static const std::pair<const char*, AdminCommand> kStates[] = {
        {"start", AdminCommand::Start},
        {"drain", AdminCommand::Drain},
        {"gracefulstop", AdminCommand::GracefulStop},
        {"forcefulstop", AdminCommand::ForcefulStop}};
    static const std::pair<const char*, AdminCommand> kHealth[] = {
        {"healthy", AdminCommand::SetHealthy}, {"unhealthy", AdminCommand::SetUnhealthy}};
    std::optional<AdminCommand> command;
    using Names = std::span<const std::pair<const char*, AdminCommand>>;
    for (const auto& [name, cmd] : verb == "state" ? Names(kStates) : Names(kHealth)) {
      if (iequals(value, name)) command = cmd;
    }
    if (!command) {
      return verb == "state" ? "state must be start, drain, gracefulStop or forcefulStop"
                             : "health must be healthy or unhealthy";
    }
    switch (health.command(*current, farm, server, *command, /*publish=*/true)) {
      case HealthService::CommandResult::Done:
        log_line(LogLevel::Info, "admin: farm %s server %s %s %s", farm.c_str(), server.c_str(),
                 verb.c_str(), value.c_str());
        return "ok";
      case HealthService::CommandResult::UnknownFarm:
        return "unknown farm";
      case HealthService::CommandResult::UnknownServer:
        return "unknown server";
    }
    return "unknown server";
  }

  // systemd hears RELOADING=1 before and READY=1 after, whatever the outcome.
  bool reload(std::string& errors) {
    notify(reloading_state());
    bool ok = reload_config(errors);
    notify("READY=1");
    return ok;
  }

  static void notify(const std::string& state) {
    std::string error;
    if (!service_notify(state, error)) log_line(LogLevel::Warn, "%s", error.c_str());
  }

  // `text` (a shared configuration's revision, named `origin`) instead of the file; once one
  // was applied, a SIGHUP reloads that rather than the local file.
  bool reload_config(std::string& errors, const std::string* text = nullptr,
                     const std::string& origin = "") {
    config::LoadResult loaded = text != nullptr ? config::load_config_text(*text, origin)
                                : !shared_text.empty()
                                    ? config::load_config_text(shared_text, shared_origin)
                                    : config::load_config_file(cli.config_path);
    if (!loaded.config) {
      for (const config::Diagnostic& d : loaded.errors) {
        log_line(LogLevel::Error, "reload rejected: %s", d.format_error().c_str());
        errors += d.format_error() + "\n";
      }
      reload_failures.add();
      return false;
    }
    auto config = std::make_shared<config::Config>(std::move(*loaded.config));
    apply_overrides(cli, *config);
    // The fleet (and this instance's id in it) is the local file's, read at start-up: a shared
    // configuration is the same text for every instance.
    config->fleet = current->config->fleet;
    auto addresses = [](const config::Config& c) {
      std::vector<std::string> out;
      for (const config::ListenConfig& l : c.listeners) out.push_back(l.address);
      out.push_back(c.admin_address);
      return out;
    };
    if (addresses(*config) != addresses(*current->config)) {
      log_line(LogLevel::Warn,
               "reload: listener or admin addresses changed; they apply at the next restart");
    }
    TlsContexts tls;
    std::vector<config::Diagnostic> tls_errors;
    // Keys only root may read are read with the capability kept for this (see privileges.h).
    if (!with_read_capability([&] { return build_tls(*config, tls, tls_errors); })) {
      for (const config::Diagnostic& d : tls_errors) {
        log_line(LogLevel::Error, "reload rejected: %s", d.format_error().c_str());
        errors += d.format_error() + "\n";
      }
      reload_failures.add();
      return false;
    }
    warn_unverified_upstreams(*config);
    std::vector<std::string> warnings;
    // Renewed certificate files are read here: new connections get them, connections already
    // open keep the context they started with.
    std::shared_ptr<const Snapshot> next = build_snapshot(config, static_cast<int>(workers.size()),
                                                          current.get(), warnings, std::move(tls));
    for (const std::string& w : warnings) log_line(LogLevel::Warn, "%s", w.c_str());
    for (auto& w : workers) w->publish(next);
    current = next;
    health.reconcile(current);
    arm_state_timer();
    reloads.add();
    last_reload_success = unix_now();
    log_line(LogLevel::Info, "configuration reloaded%s%s: %zu farms, %zu rules",
             text != nullptr ? " from " : "", text != nullptr ? origin.c_str() : "",
             config->farms.size(), config->global_rules.size());
    return true;
  }

  // The fleet's thread.
  void post_shared_config(const std::string& text, int64_t revision) {
    std::lock_guard<std::mutex> lock(shared_mutex);
    if (!shared_async_open) return;
    shared_pending.emplace(text, revision);
    uv_async_send(&shared_async);
  }

  void apply_shared_config() {
    std::optional<std::pair<std::string, int64_t>> next;
    {
      std::lock_guard<std::mutex> lock(shared_mutex);
      next.swap(shared_pending);
    }
    if (!next || stopping) return;
    std::string origin = fleet->config_key() + "@" + std::to_string(next->second);
    std::string errors;
    notify(reloading_state());
    bool ok = reload_config(errors, &next->first, origin);
    notify("READY=1");
    if (ok) {
      shared_text = std::move(next->first);
      shared_origin = origin;
    }
    fleet->publish_config_status(next->second, ok, errors);
  }

  // Writes the state file when the servers' state changed since the last write.
  // The state file is written (when it changed) every second while one is configured; without
  // one the timer does not run.
  void arm_state_timer() {
    bool want = !current->config->state_file.empty();
    bool active = uv_is_active(reinterpret_cast<uv_handle_t*>(&state_timer)) != 0;
    if (want && !active) {
      uv_timer_start(
          &state_timer, [](uv_timer_t* t) { static_cast<Process*>(t->data)->save_state(); }, 1000,
          1000);
    } else if (!want && active) {
      uv_timer_stop(&state_timer);
    }
  }

  void save_state() {
    const std::string& path = current->config->state_file;
    if (path.empty()) return;
    std::string text = format_state(*current);
    if (text == state_written) return;
    std::string error;
    if (write_state_file(path, text, error)) {
      state_written = std::move(text);
      state_error.clear();
    } else if (error != state_error) {
      log_line(LogLevel::Warn, "state file: %s", error.c_str());
      state_error = error;
    }
  }

  // Servers the previous process knew to be down or out of rotation start that way here, until
  // probes (or the admin API) say otherwise. Returns how many were restored.
  size_t restore_state(const std::vector<SavedServerState>& saved) {
    using health::AdminCommand;
    using health::Availability;
    struct Pending {
      const SnapshotFarm* farm;
      size_t server;
      const SavedServerState* want;
    };
    std::vector<Pending> pending;
    for (const SavedServerState& s : saved) {
      if (s.healthy && s.availability == Availability::Available) continue;
      for (const SnapshotFarm& farm : current->farms) {
        if (!iequals(farm.config->name, s.farm)) continue;
        for (size_t i = 0; i < farm.servers.size(); ++i) {
          if (!iequals(farm.servers[i].label, s.server)) continue;
          if (!s.healthy) health.command(*current, s.farm, s.server, AdminCommand::SetUnhealthy);
          if (s.availability == Availability::Draining) {
            health.command(*current, s.farm, s.server, AdminCommand::Drain);
          } else if (s.availability == Availability::Unavailable) {
            health.command(*current, s.farm, s.server, AdminCommand::ForcefulStop);
          }
          pending.push_back({&farm, i, &s});
        }
      }
    }
    // The probers apply commands on their own threads: wait (at most 2 s) so that the
    // workers' first picks already see them.
    for (int attempt = 0; attempt < 400; ++attempt) {
      bool applied = true;
      for (const Pending& p : pending) {
        health::ServerState state = p.farm->health->load(p.server);
        if (state.healthy != p.want->healthy || state.availability != p.want->availability)
          applied = false;
      }
      if (applied) break;
      ::usleep(5000);
    }
    return pending.size();
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    // After a hand-over the service is not stopping: the new main PID serves.
    if (!handed_over) notify("STOPPING=1");
    log_line(LogLevel::Info, "stopping: finishing in-flight requests");
    for (auto& w : workers) w->request_stop();
    if (admin) admin->close();
    if (upgrade) upgrade->close();
    for (uv_signal_t* s : {&sighup, &sigusr1, &sigusr2})
      uv_close(reinterpret_cast<uv_handle_t*>(s), nullptr);
    {
      std::lock_guard<std::mutex> lock(shared_mutex);
      if (shared_async_open) uv_close(reinterpret_cast<uv_handle_t*>(&shared_async), nullptr);
      shared_async_open = false;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&history_timer), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&state_timer), nullptr);
    // SIGTERM and SIGINT stay handled while the workers finish, so a second one means "stop
    // now" rather than killing the process by the signal's default action. The loop ends
    // when every worker has.
    uv_timer_init(loop, &stop_wait_timer);
    stop_wait_timer.data = this;
    uv_timer_start(
        &stop_wait_timer,
        [](uv_timer_t* t) {
          auto* p = static_cast<Process*>(t->data);
          for (auto& w : p->workers) {
            if (!w->finished()) return;
          }
          for (uv_handle_t* h : {reinterpret_cast<uv_handle_t*>(&p->sigterm),
                                 reinterpret_cast<uv_handle_t*>(&p->sigint),
                                 reinterpret_cast<uv_handle_t*>(&p->stop_wait_timer)}) {
            uv_close(h, nullptr);
          }
        },
        20, 20);
  }

  // A second SIGTERM or SIGINT during a stop: close every connection now, exit 0.
  void stop_now() {
    if (stopping_now) return;
    stopping_now = true;
    log_line(LogLevel::Warn, "second stop signal: closing every connection now");
    for (auto& w : workers) w->request_stop_now();
  }
};

int run(int argc, char** argv) {
  // `harrow ctl …` is a client of a running process's admin API, with its own options.
  if (argc > 1 && std::string_view(argv[1]) == "ctl") return run_ctl(argc - 1, argv + 1);
  CommandLine cli;
  std::string error;
  if (!parse_command_line(argc, argv, cli, error)) {
    std::fprintf(stderr, "harrow: %s\n%s", error.c_str(), usage_text());
    return kExitConfig;
  }
  if (cli.help) {
    std::fputs(usage_text(), stdout);
    return 0;
  }
  if (cli.version) {
    std::printf("harrow %s\n", HARROW_VERSION);
    return 0;
  }
  LogLevel level;
  if (!parse_log_level(cli.log_level, level)) {
    std::fprintf(stderr, "harrow: --log-level must be debug, info, warn or error\n");
    return kExitConfig;
  }
  set_log_level(level);

  config::LoadResult loaded = config::load_config_file(cli.config_path);
  if (!loaded.config) {
    for (const config::Diagnostic& d : loaded.errors) {
      std::fprintf(stderr, "%s\n", d.format_error().c_str());
    }
    return kExitConfig;
  }
  auto config = std::make_shared<config::Config>(std::move(*loaded.config));
  TlsContexts tls;
  {
    std::vector<config::Diagnostic> tls_errors;
    if (!build_tls(*config, tls, tls_errors)) {
      for (const config::Diagnostic& d : tls_errors) {
        std::fprintf(stderr, "%s\n", d.format_error().c_str());
      }
      return kExitConfig;
    }
  }
  // <fleet>'s TLS files and etcd password: read now (before the privilege drop, and by
  // --check-config, which reports them at their attribute).
  FleetSecrets fleet_secrets;
  if (config->fleet.enabled) {
    std::vector<config::Diagnostic> fleet_errors;
    if (!load_fleet_secrets(config->fleet, fleet_secrets, fleet_errors)) {
      for (const config::Diagnostic& d : fleet_errors) {
        std::fprintf(stderr, "%s\n", d.format_error().c_str());
      }
      return kExitConfig;
    }
  }
  std::vector<std::string> not_acted_on = features_not_acted_on(*config);
  if (cli.check_config && cli.explain) {
    // Nothing is resolved or probed: the report says servers are assumed healthy.
    std::vector<std::string> ignored;
    std::shared_ptr<const Snapshot> snap =
        build_snapshot(config, 1, nullptr, ignored, std::move(tls), false);
    Explanation ex = explain_request(*snap, ExplainInput{*cli.explain, cli.headers}, false);
    if (!ex.ok) {
      std::fprintf(stderr, "harrow: --explain: %s\n", ex.error.c_str());
      return kExitConfig;
    }
    std::printf("configuration: %s\n", cli.config_path.c_str());
    std::fputs(render_explanation_text(ex).c_str(), stdout);
    return 0;
  }
  if (cli.check_config && !cli.replay.empty()) {
    std::vector<std::string> ignored;
    std::shared_ptr<const Snapshot> snap =
        build_snapshot(config, 1, nullptr, ignored, std::move(tls), false);
    std::printf("configuration: %s\n", cli.config_path.c_str());
    return replay_files(*snap, cli.replay, stdout);
  }
  if (cli.check_config) {
    std::fputs(config::summarize(*config).c_str(), stdout);
    std::fputs(migration_report(*config).c_str(), stdout);
    if (!not_acted_on.empty()) {
      std::printf("not acted on by this build yet (%zu):\n", not_acted_on.size());
      for (const std::string& line : not_acted_on) std::printf("  %s\n", line.c_str());
    }
    if (std::string warning = admin_exposure_warning(*config); !warning.empty()) {
      std::printf("warning: %s\n", warning.c_str());
    }
    for (const std::string& w : nested_quantifier_warnings(*config)) {
      std::fprintf(stderr, "%s\n", w.c_str());
    }
    for (const std::string& w : binding_loop_warnings(*config)) {
      std::printf("warning: %s\n", w.c_str());
    }
    return 0;
  }
  for (const std::string& line : not_acted_on)
    log_line(LogLevel::Warn, "not acted on yet: %s", line.c_str());
  for (const std::string& w : nested_quantifier_warnings(*config)) {
    log_line(LogLevel::Warn, "%s", w.c_str());
  }
  for (const std::string& w : binding_loop_warnings(*config)) {
    log_line(LogLevel::Warn, "%s", w.c_str());
  }
  apply_overrides(cli, *config);
  warn_unverified_upstreams(*config);
  if (!tls.server) {
    std::erase_if(config->listeners, [](const config::ListenConfig& l) { return l.tls; });
  }
  if (config->listeners.empty()) {
    std::fprintf(stderr,
                 "harrow: no listener: add <harrow><listen address=\"HOST:PORT\"/>, a site "
                 "binding, or --listen\n");
    return kExitConfig;
  }

  // Decided before binding: a refusal leaves no port touched.
  std::vector<std::string> addresses;
  for (const config::ListenConfig& l : config->listeners) addresses.push_back(l.address);
  addresses.push_back(config->admin_address);
  PrivilegePlan privileges =
      plan_privileges(::geteuid() == 0, current_user_name(), config->run_as, addresses);
  if (privileges.action == PrivilegePlan::Action::Refuse) {
    std::fprintf(stderr, "harrow: %s\n", privileges.message.c_str());
    return kExitConfig;
  }
  if (!privileges.message.empty()) {
    log_line(privileges.warning ? LogLevel::Warn : LogLevel::Info, "%s",
             privileges.message.c_str());
  }
  if (privileges.action == PrivilegePlan::Action::Drop) {
    uid_t uid;
    gid_t gid;
    if (!resolve_run_as(config->run_as.user, config->run_as.group, uid, gid, error)) {
      std::fprintf(stderr, "harrow: %s\n", error.c_str());
      return kExitConfig;
    }
  }

  int worker_count =
      cli.workers.value_or(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  // Started by a binary upgrade: the previous process's sockets, adopted instead of bound.
  InheritedSockets inherited;
  if (!inherited.load_from_environment(error)) {
    std::fprintf(stderr, "harrow: %s\n", error.c_str());
    return kExitRuntime;
  }
  std::vector<std::vector<ListenSocket>> sockets(static_cast<size_t>(worker_count));
  std::vector<std::string> urls;
  std::vector<InheritedListener> listening;
  for (const config::ListenConfig& listener : config->listeners) {
    std::vector<ListenSocket> made;
    std::vector<int> fds = inherited.take(InheritedListener::Role::Listen, listener.address);
    if (!adopt_listen_sockets(listener.address, fds, worker_count, made, error)) {
      std::fprintf(stderr, "harrow: %s\n", error.c_str());
      return kExitRuntime;
    }
    if (listener.tls) made.front().url.replace(0, 4, "https");
    urls.push_back(made.front().url);
    for (ListenSocket& socket : made) {
      socket.tls = listener.tls;
      socket.http2 = listener.http2;
      socket.url = made.front().url;
      socket.host_names = listener.host_names;
      socket.index = urls.size() - 1;
    }
    // More sockets than workers (inherited from a process with more workers): each is
    // served, since closing one would reset the connections queued on it.
    InheritedListener& passed = listening.emplace_back();
    passed.address = listener.address;
    for (size_t k = 0; k < made.size(); ++k) {
      sockets[k % static_cast<size_t>(worker_count)].push_back(made[k]);
      passed.fds.push_back(made[k].fd);
    }
  }

  std::vector<std::string> warnings;
  std::shared_ptr<const Snapshot> snapshot =
      build_snapshot(config, worker_count, nullptr, warnings, std::move(tls));
  for (const std::string& w : warnings) log_line(LogLevel::Warn, "%s", w.c_str());

  ::signal(SIGPIPE, SIG_IGN);  // a peer that goes away is an error code, not a signal
  Process process;
  process.cli = cli;
  process.current = snapshot;
  process.listening = std::move(listening);
  if (!config->access_log.path.empty()) {
    process.access_log =
        AccessLogFile::open(config->access_log.path, config->access_log.format, error);
    if (!process.access_log) {
      std::fprintf(stderr, "harrow: %s\n", error.c_str());
      return kExitRuntime;
    }
  }
  uint64_t per_worker_limit =
      std::max<uint64_t>(1, config->limits.max_connections / static_cast<uint64_t>(worker_count));
  AdminSources sources;
  sources.snapshot = [&process] { return process.current; };
  sources.reload = [&process](std::string& errors) { return process.reload(errors); };
  sources.reloads = &process.reloads;
  sources.reload_failures = &process.reload_failures;
  sources.last_reload_success = &process.last_reload_success;
  sources.start_time = unix_now();
  sources.history = &process.history;
  sources.listeners = urls;
  sources.extra_metrics = [&process]() -> std::string {
    return process.fleet ? process.fleet->metrics_text() : std::string();
  };
  sources.server_command = [&process](const std::string& farm, const std::string& server,
                                      const std::string& verb, const std::string& value) {
    return process.server_command(farm, server, verb, value);
  };
  for (int w = 0; w < worker_count; ++w) {
    process.workers.push_back(std::make_unique<Worker>(w, snapshot, sockets[static_cast<size_t>(w)],
                                                       per_worker_limit, process.access_log.get()));
    sources.workers.push_back(&process.workers.back()->metrics());
  }
  process.admin = std::make_unique<AdminServer>(process.loop, sources);
  if (!config->admin_token_file.empty()) {
    std::string token;
    if (!read_token_file(config->admin_token_file, token, error)) {
      const config::SourceLocation& at = config->admin_token_file_where;
      std::fprintf(stderr, "%s\n", config::Diagnostic{at, error}.format_error().c_str());
      return kExitConfig;
    }
    process.admin->set_token(std::move(token));
  }
  process.admin->set_allowed_hosts(config->admin_allowed_hosts);
  std::vector<int> admin_fds =
      inherited.take(InheritedListener::Role::Admin, config->admin_address);
  for (size_t k = 1; k < admin_fds.size(); ++k) ::close(admin_fds[k]);
  if (!(admin_fds.empty() ? process.admin->listen(config->admin_address, error)
                          : process.admin->adopt(admin_fds.front(), error))) {
    std::fprintf(stderr, "harrow: %s\n", error.c_str());
    return kExitRuntime;
  }
  if (std::string warning = admin_exposure_warning(*config); !warning.empty()) {
    log_line(LogLevel::Warn, "%s", warning.c_str());
  }
  // Every port is bound and every file opened: nothing below needs root.
  if (privileges.action == PrivilegePlan::Action::Drop) {
    std::vector<int> owned_fds;
    if (process.access_log && process.access_log->path() != "-" &&
        process.access_log->path() != "stdout") {
      owned_fds.push_back(process.access_log->fd());
    }
    // With https listeners a reload re-reads certificates and keys, which may be root's only.
    bool keep_read_capability = !config->certificates.empty();
    if (!drop_privileges(config->run_as.user, config->run_as.group, owned_fds, error,
                         keep_read_capability)) {
      std::fprintf(stderr, "harrow: cannot drop privileges: %s\n", error.c_str());
      return kExitRuntime;
    }
    log_line(LogLevel::Info, "running as user %s", config->run_as.user.c_str());
  }
  if (config->fleet.enabled) {
    // Fleet changes to <fleet> itself apply at the next restart (a reload keeps the session).
    HealthService* health = &process.health;
    FleetService::Hooks hooks;
    hooks.set_probing = [health](const std::string& farm, bool on, bool announce) {
      health->fleet_set_probing(farm, on, announce);
    };
    hooks.apply_health = [health](const std::string& farm, const std::string& server, bool healthy,
                                  const std::string& reason) {
      health->fleet_apply_health(farm, server, healthy, reason);
    };
    hooks.apply_admin = [health](const std::string& farm, const std::string& server,
                                 const std::string& command) {
      health->fleet_apply_admin(farm, server, command);
    };
    if (config->fleet.shared_config) {
      uv_async_init(process.loop, &process.shared_async,
                    [](uv_async_t* a) { static_cast<Process*>(a->data)->apply_shared_config(); });
      process.shared_async.data = &process;
      process.shared_async_open = true;
      hooks.apply_config = [p = &process](const std::string& text, int64_t revision) {
        p->post_shared_config(text, revision);
      };
    }
    process.fleet =
        std::make_unique<FleetService>(config->fleet, std::move(fleet_secrets), std::move(hooks));
    process.health.attach_fleet(process.fleet.get());
  }
  process.health.reconcile(process.current);
  if (!config->state_file.empty()) {
    std::string text;
    if (!read_state_file(config->state_file, text, error)) {
      log_line(LogLevel::Warn, "state file: %s (starting with every server healthy)",
               error.c_str());
    } else if (!text.empty()) {
      size_t restored = process.restore_state(parse_state(text));
      log_line(LogLevel::Info, "state file: %zu servers start unhealthy or out of rotation (%s)",
               restored, config->state_file.c_str());
    }
  }
  uv_timer_init(process.loop, &process.state_timer);
  process.state_timer.data = &process;
  process.arm_state_timer();
  // The status page's sparklines: one sample of every server's rates each 5 s.
  uv_timer_init(process.loop, &process.history_timer);
  process.history_timer.data = &process;
  uv_timer_start(
      &process.history_timer,
      [](uv_timer_t* t) {
        auto* p = static_cast<Process*>(t->data);
        p->history.sample(*p->current, uv_now(p->loop));
      },
      0, 5000);
  for (auto& w : process.workers) w->start();

  auto on_stop_signal = [](uv_signal_t* s, int) {
    auto* p = static_cast<Process*>(s->data);
    if (p->stopping) {
      p->stop_now();
    } else {
      p->stop();
    }
  };
  for (auto [handle, signum] :
       {std::pair{&process.sigterm, SIGTERM}, std::pair{&process.sigint, SIGINT}}) {
    uv_signal_init(process.loop, handle);
    handle->data = &process;
    uv_signal_start(handle, on_stop_signal, signum);
  }
  uv_signal_init(process.loop, &process.sighup);
  process.sighup.data = &process;
  uv_signal_start(
      &process.sighup,
      [](uv_signal_t* s, int) {
        std::string errors;
        static_cast<Process*>(s->data)->reload(errors);
      },
      SIGHUP);
  // SIGUSR2: replace this binary by the one now at its path, without refusing a connection.
  {
    std::string why;
    std::string executable = running_executable(why);
    if (executable.empty()) log_line(LogLevel::Warn, "binary upgrade unavailable: %s", why.c_str());
    BinaryUpgrade::Hooks hooks;
    hooks.sockets = [&process, admin_address = config->admin_address] {
      std::vector<InheritedListener> all = process.listening;
      // Named by the address it was bound for: a reload does not move it (see reload_config).
      all.push_back({InheritedListener::Role::Admin, admin_address, {process.admin->fd()}});
      return all;
    };
    // The new process reads the state file at start: it must be current.
    hooks.before_start = [&process] { process.save_state(); };
    hooks.handed_over = [&process](int pid) {
      log_line(LogLevel::Info, "upgrade: pid %d is ready and serves; this process stops", pid);
      process.handed_over = true;
      Process::notify("MAINPID=" + std::to_string(pid));
      process.stop();
    };
    process.upgrade = std::make_unique<BinaryUpgrade>(
        process.loop, executable, std::vector<std::string>(argv + 1, argv + argc), std::move(hooks),
        upgrade_timeout_ms());
  }
  uv_signal_init(process.loop, &process.sigusr2);
  process.sigusr2.data = &process;
  uv_signal_start(
      &process.sigusr2,
      [](uv_signal_t* s, int) { static_cast<Process*>(s->data)->upgrade->start(); }, SIGUSR2);
  uv_signal_init(process.loop, &process.sigusr1);
  process.sigusr1.data = &process;
  uv_signal_start(
      &process.sigusr1,
      [](uv_signal_t* s, int) {
        Process* p = static_cast<Process*>(s->data);
        std::string why;
        if (!p->access_log) return;
        if (p->access_log->reopen(why)) {
          log_line(LogLevel::Info, "SIGUSR1: reopened %s", p->access_log->path().c_str());
        } else {
          log_line(LogLevel::Error, "SIGUSR1: %s (still writing to the old file)", why.c_str());
        }
      },
      SIGUSR1);

  for (const std::string& url : urls)
    std::fprintf(stderr, "harrow: listening on %s\n", url.c_str());
  std::fprintf(stderr, "harrow: admin on %s\n", process.admin->url().c_str());
  std::fflush(stderr);
  Process::notify("READY=1\nSTATUS=serving");
  if (size_t closed = inherited.close_unclaimed(); closed > 0) {
    log_line(LogLevel::Info,
             "upgrade: closed %zu inherited sockets the configuration no longer "
             "names",
             closed);
  }
  if (inherited.upgrading()) {
    // Only now may the previous process stop accepting: every socket is served here.
    if (!inherited.announce_ready(error)) {
      log_line(LogLevel::Error, "upgrade: %s", error.c_str());
    } else {
      log_line(LogLevel::Info, "upgrade: pid %d serves %zu inherited sockets", ::getpid(),
               inherited.taken());
    }
  }
  log_line(LogLevel::Info, "%d workers, %zu farms, %zu rules", worker_count, config->farms.size(),
           config->global_rules.size());

  uv_run(process.loop, UV_RUN_DEFAULT);
  for (auto& w : process.workers) w->join();
  // After a hand-over the new process owns the state file: an older view must not overwrite it.
  if (!process.handed_over) process.save_state();
  process.health.stop_all();
  process.fleet.reset();  // revokes the lease: the farms this instance probed are free at once
  uv_loop_close(process.loop);
  log_line(LogLevel::Info, "stopped");
  return 0;
}

}  // namespace
}  // namespace harrow

int main(int argc, char** argv) {
  return harrow::run(argc, argv);
}
