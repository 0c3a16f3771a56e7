#include "core/daemon/upgrade.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "core/base/log.h"

extern char** environ;

namespace harrow {

namespace {

constexpr uint64_t kDefaultTimeoutMs = 30'000;
constexpr size_t kMaxCheckOutput = 8192;  // of the new binary's --check-config errors, logged
constexpr std::string_view kReady = "READY\n";

bool parse_fd(std::string_view text, int& fd) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  return ec == std::errc() && end == text.data() + text.size() && fd >= 3;
}

std::string_view role_name(InheritedListener::Role role) {
  return role == InheritedListener::Role::Admin ? "admin" : "listen";
}

// A descriptor the new process may serve on: open, a stream socket, listening.
bool is_listening_stream(int fd) {
  int type = 0, accepting = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof accepting;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting == 1;
}

void close_handle(uv_handle_t* handle, uv_close_cb done) {
  if (!uv_is_closing(handle)) uv_close(handle, done);
}

}  // namespace

std::string format_inherited_fds(const std::vector<InheritedListener>& listeners) {
  std::string out;
  for (const InheritedListener& l : listeners) {
    if (!out.empty()) out += ';';
    out += role_name(l.role);
    out += ':';
    out += l.address;
    out += '=';
    for (size_t i = 0; i < l.fds.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(l.fds[i]);
    }
  }
  return out;
}

bool parse_inherited_fds(std::string_view text, std::vector<InheritedListener>& out,
                         std::string& error) {
  std::vector<InheritedListener> parsed;
  while (!text.empty()) {
    size_t end = text.find(';');
    std::string_view entry = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    InheritedListener l;
    size_t colon = entry.find(':');
    // The address is what the configuration wrote; '=' and ',' appear in no socket address.
    size_t equals = entry.rfind('=');
    if (colon == std::string_view::npos || equals == std::string_view::npos || equals < colon) {
      error = "malformed entry '" + std::string(entry) + "' (want ROLE:ADDRESS=FD,…)";
      return false;
    }
    std::string_view role = entry.substr(0, colon);
    if (role == "listen") {
      l.role = InheritedListener::Role::Listen;
    } else if (role == "admin") {
      l.role = InheritedListener::Role::Admin;
    } else {
      error = "unknown role '" + std::string(role) + "' (want listen or admin)";
      return false;
    }
    l.address = std::string(entry.substr(colon + 1, equals - colon - 1));
    std::string_view fds = entry.substr(equals + 1);
    while (true) {
      size_t comma = fds.find(',');
      int fd = -1;
      if (!parse_fd(fds.substr(0, comma), fd)) {
        error = "bad descriptor '" + std::string(fds.substr(0, comma)) + "' for " + l.address;
        return false;
      }
      l.fds.push_back(fd);
      if (comma == std::string_view::npos) break;
      fds = fds.substr(comma + 1);
    }
    if (l.address.empty()) {
      error = "an entry without an address";
      return false;
    }
    parsed.push_back(std::move(l));
  }
  out = std::move(parsed);
  return true;
}

bool InheritedSockets::load_from_environment(std::string& error) {
  const char* fds = std::getenv(kInheritedFdsVariable);
  const char* ready = std::getenv(kUpgradeReadyFdVariable);
  std::string fds_text = fds ? fds : "";
  std::string ready_text = ready ? ready : "";
  // Read once: a process this one starts later gets its own values or none.
  ::unsetenv(kInheritedFdsVariable);
  ::unsetenv(kUpgradeReadyFdVariable);
  if (!ready_text.empty()) {
    if (!parse_fd(ready_text, ready_fd_) || ::fcntl(ready_fd_, F_SETFD, FD_CLOEXEC) != 0) {
      error =
          std::string(kUpgradeReadyFdVariable) + "='" + ready_text + "' is not an open descriptor";
      ready_fd_ = -1;
      return false;
    }
  }
  std::vector<InheritedListener> parsed;
  if (!parse_inherited_fds(fds_text, parsed, error)) {
    error = std::string(kInheritedFdsVariable) + ": " + error;
    return false;
  }
  listeners_ = std::move(parsed);
  for (const InheritedListener& l : listeners_) {
    for (int fd : l.fds) {
      if (!is_listening_stream(fd)) {
        error = std::string(kInheritedFdsVariable) + ": descriptor " + std::to_string(fd) +
                " for " + l.address + " is not a listening TCP socket";
        close_unclaimed();
        return false;
      }
      // Inherited without FD_CLOEXEC (that is how they came): no later child gets them.
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  }
  return true;
}

std::vector<int> InheritedSockets::take(InheritedListener::Role role, const std::string& address) {
  for (InheritedListener& l : listeners_) {
    if (l.role != role || l.address != address || l.fds.empty()) continue;
    std::vector<int> fds = std::move(l.fds);
    l.fds.clear();
    taken_ += fds.size();
    return fds;
  }
  return {};
}

size_t InheritedSockets::close_unclaimed() {
  size_t closed = 0;
  for (InheritedListener& l : listeners_) {
    for (int fd : l.fds) {
      ::close(fd);
      ++closed;
    }
    l.fds.clear();
  }
  return closed;
}

bool InheritedSockets::announce_ready(std::string& error) {
  if (ready_fd_ < 0) return true;
  ssize_t n;
  do {
    n = ::write(ready_fd_, kReady.data(), kReady.size());
  } while (n < 0 && errno == EINTR);
  int saved = errno;
  ::close(ready_fd_);
  ready_fd_ = -1;
  if (n != static_cast<ssize_t>(kReady.size())) {
    error = std::string("cannot tell the previous process this one is ready: ") +
            (n < 0 ? std::strerror(saved) : "short write");
    return false;
  }
  return true;
}

// One upgrade: first `NEW --check-config`, then `NEW` with the sockets. Owns its libuv
// handles and deletes itself once they are all closed.
struct BinaryUpgrade::Attempt {
  enum class Phase { Check, Start, Over };
  BinaryUpgrade* owner;
  Phase phase = Phase::Check;
  uv_timer_t timer{};
  // One process and pipe per phase: a closed handle's memory is not reused before libuv
  // has finished closing it. Check: the new binary's stderr; Start: its readiness pipe.
  uv_process_t processes[2]{};
  uv_pipe_t pipes[2]{};
  int stage = 0;  // which of the two
  uv_process_t& process() { return processes[stage]; }
  uv_pipe_t& pipe() { return pipes[stage]; }
  int open_handles = 0;
  bool exited = false, pipe_eof = false;
  int64_t exit_status = 0;
  int term_signal = 0;
  std::string output;
  std::string failure;  // why the attempt failed, once it has

  explicit Attempt(BinaryUpgrade* o) : owner(o) {
    uv_timer_init(o->loop_, &timer);
    timer.data = this;
    ++open_handles;
  }

  static void on_closed(uv_handle_t* h) {
    auto* self = static_cast<Attempt*>(h->data);
    if (--self->open_handles == 0) delete self;
  }

  std::vector<std::string> argv_strings(bool check) const {
    std::vector<std::string> args{owner->executable_};
    args.insert(args.end(), owner->arguments_.begin(), owner->arguments_.end());
    if (check) args.push_back("--check-config");
    return args;
  }

  // Spawns with `stdio`; the pipe at `pipe_index` is read into `output`.
  bool spawn(bool check, std::vector<uv_stdio_container_t>& stdio,
             const std::vector<std::string>& extra_env) {
    std::vector<std::string> args = argv_strings(check);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string_view entry(*e);
      if (entry.starts_with(std::string(kInheritedFdsVariable) + "=") ||
          entry.starts_with(std::string(kUpgradeReadyFdVariable) + "="))
        continue;
      env_strings.emplace_back(entry);
    }
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> env;
    for (std::string& e : env_strings) env.push_back(e.data());
    env.push_back(nullptr);

    uv_pipe_init(owner->loop_, &pipe(), 0);
    pipe().data = this;
    ++open_handles;
    uv_process_options_t options{};
    options.file = owner->executable_.c_str();
    options.args = argv.data();
    options.env = env.data();
    options.exit_cb = &Attempt::on_exit;
    options.stdio_count = static_cast<int>(stdio.size());
    options.stdio = stdio.data();
    process().data = this;
    int rc = uv_spawn(owner->loop_, &process(), &options);
    ++open_handles;  // uv_spawn initializes the handle even when it fails
    if (rc != 0) {
      failure = "cannot start " + owner->executable_ + ": " + uv_strerror(rc);
      exited = true;
      return false;
    }
    uv_read_start(reinterpret_cast<uv_stream_t*>(&pipe()), &Attempt::on_alloc, &Attempt::on_read);
    uv_timer_start(&timer, &Attempt::on_timeout, owner->timeout_ms_, 0);
    return true;
  }

  void start_check() {
    phase = Phase::Check;
    std::vector<uv_stdio_container_t> stdio(3);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_IGNORE;  // the configuration summary is not wanted in this log
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = reinterpret_cast<uv_stream_t*>(&pipe());
    if (!spawn(true, stdio, {})) give_up();
  }

  void start_new_process() {
    phase = Phase::Start;
    stage = 1;
    exited = pipe_eof = false;
    output.clear();
    if (owner->hooks_.before_start) owner->hooks_.before_start();
    // The child's descriptors are 3, 4, …: one per socket in order, then the readiness pipe.
    std::vector<InheritedListener> sockets = owner->hooks_.sockets();
    std::vector<uv_stdio_container_t> stdio(3);
    for (int fd = 0; fd < 3; ++fd) {
      stdio[static_cast<size_t>(fd)].flags = UV_INHERIT_FD;
      stdio[static_cast<size_t>(fd)].data.fd = fd;
    }
    std::vector<InheritedListener> renumbered = sockets;
    for (InheritedListener& l : renumbered) {
      for (int& fd : l.fds) {
        uv_stdio_container_t c{};
        c.flags = UV_INHERIT_FD;  // libuv clears FD_CLOEXEC on the child's copy
        c.data.fd = fd;
        fd = static_cast<int>(stdio.size());
        stdio.push_back(c);
      }
    }
    uv_stdio_container_t ready{};
    ready.flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    ready.data.stream = reinterpret_cast<uv_stream_t*>(&pipe());
    int ready_fd = static_cast<int>(stdio.size());
    stdio.push_back(ready);
    std::vector<std::string> env{
        std::string(kInheritedFdsVariable) + "=" + format_inherited_fds(renumbered),
        std::string(kUpgradeReadyFdVariable) + "=" + std::to_string(ready_fd)};
    if (!spawn(false, stdio, env)) {
      give_up();
      return;
    }
    log_line(LogLevel::Info,
             "upgrade: started %s as pid %d with %zu listening sockets; waiting "
             "for it to be ready",
             owner->executable_.c_str(), process().pid, stdio.size() - 4);
  }

  static void on_alloc(uv_handle_t*, size_t suggested, uv_buf_t* buf) {
    buf->base = new char[suggested];
    buf->len = suggested;
  }

  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
    auto* self = static_cast<Attempt*>(stream->data);
    if (n > 0 && self->output.size() < kMaxCheckOutput) {
      self->output.append(buf->base, static_cast<size_t>(n));
    }
    delete[] buf->base;
    if (n < 0) {
      self->pipe_eof = true;
      close_handle(reinterpret_cast<uv_handle_t*>(stream), &Attempt::on_closed);
    }
    self->progress();
  }

  static void on_exit(uv_process_t* p, int64_t status, int term_signal) {
    auto* self = static_cast<Attempt*>(p->data);
    self->exited = true;
    self->exit_status = status;
    self->term_signal = term_signal;
    close_handle(reinterpret_cast<uv_handle_t*>(p), &Attempt::on_closed);
    self->progress();
  }

  static void on_timeout(uv_timer_t* t) {
    auto* self = static_cast<Attempt*>(t->data);
    if (self->failure.empty()) {
      self->failure = std::string(self->phase == Phase::Check ? "--check-config did not finish"
                                                              : "the new process was not ready") +
                      " within " + std::to_string(self->owner->timeout_ms_ / 1000) + " s";
    }
    self->kill();
  }

  void kill() {
    if (!exited) uv_process_kill(&process(), SIGKILL);
  }

  std::string how_it_exited() const {
    return term_signal != 0 ? "was killed by signal " + std::to_string(term_signal)
                            : "exited with status " + std::to_string(exit_status);
  }

  void progress() {
    if (phase == Phase::Check) {
      if (!exited || !pipe_eof) return;
      uv_timer_stop(&timer);
      if (failure.empty() && exit_status == 0 && term_signal == 0) {
        start_new_process();
        return;
      }
      if (failure.empty()) failure = owner->executable_ + " --check-config " + how_it_exited();
      size_t start = 0;
      while (start < output.size()) {
        size_t end = output.find('\n', start);
        if (end == std::string::npos) end = output.size();
        if (end > start) {
          log_line(LogLevel::Error, "upgrade: %s", output.substr(start, end - start).c_str());
        }
        start = end + 1;
      }
      give_up();
      return;
    }
    if (phase != Phase::Start) return;
    if (failure.empty() && output.find(kReady) != std::string::npos) {
      phase = Phase::Over;
      int pid = process().pid;
      uv_timer_stop(&timer);
      // The new process lives on: closing the handle only stops watching it.
      close_handle(reinterpret_cast<uv_handle_t*>(&process()), &Attempt::on_closed);
      close_handle(reinterpret_cast<uv_handle_t*>(&pipe()), &Attempt::on_closed);
      close_handle(reinterpret_cast<uv_handle_t*>(&timer), &Attempt::on_closed);
      if (owner != nullptr) owner->finished(true, pid);
      return;
    }
    if (pipe_eof && !exited && failure.empty()) {
      failure = "the new process closed its readiness pipe without being ready";
      kill();
    }
    // Failed: wait until the process is gone (reaped), then say so.
    if (!exited) return;
    if (failure.empty()) failure = "the new process " + how_it_exited() + " before it was ready";
    give_up();
  }

  void give_up() {
    phase = Phase::Over;
    if (owner != nullptr && owner->closed_) {
      log_line(LogLevel::Warn, "upgrade abandoned: %s", failure.c_str());
    } else {
      log_line(LogLevel::Error, "upgrade failed: %s; this process keeps serving", failure.c_str());
    }
    uv_timer_stop(&timer);
    close_handle(reinterpret_cast<uv_handle_t*>(&pipe()), &Attempt::on_closed);
    close_handle(reinterpret_cast<uv_handle_t*>(&timer), &Attempt::on_closed);
    if (exited) close_handle(reinterpret_cast<uv_handle_t*>(&process()), &Attempt::on_closed);
    if (owner != nullptr) owner->finished(false, 0);
  }
};

BinaryUpgrade::BinaryUpgrade(uv_loop_t* loop, std::string executable,
                             std::vector<std::string> arguments, Hooks hooks, uint64_t timeout_ms)
    : loop_(loop),
      executable_(std::move(executable)),
      arguments_(std::move(arguments)),
      hooks_(std::move(hooks)),
      timeout_ms_(timeout_ms) {}

BinaryUpgrade::~BinaryUpgrade() {
  if (attempt_ != nullptr) attempt_->owner = nullptr;
}

void BinaryUpgrade::start() {
  if (closed_) return;
  if (executable_.empty()) {
    log_line(LogLevel::Error, "upgrade: the path of the running binary is unknown");
    return;
  }
  if (attempt_ != nullptr) {
    log_line(LogLevel::Warn, "upgrade: one is under way already; signal ignored");
    return;
  }
  log_line(LogLevel::Info, "upgrade: checking the configuration with %s --check-config",
           executable_.c_str());
  attempt_ = new Attempt(this);
  attempt_->start_check();
}

void BinaryUpgrade::finished(bool handed_over, int pid) {
  attempt_ = nullptr;
  if (handed_over && hooks_.handed_over) hooks_.handed_over(pid);
}

void BinaryUpgrade::close() {
  closed_ = true;
  if (attempt_ == nullptr) return;
  Attempt* a = attempt_;
  if (a->failure.empty()) a->failure = "this process is stopping";
  a->kill();
  // The attempt finishes (and frees itself) when the killed process is reaped.
}

std::string running_executable(std::string& error) {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) {
    error = std::string("cannot read /proc/self/exe: ") + std::strerror(errno);
    return "";
  }
  return std::string(path, static_cast<size_t>(n));
}

uint64_t upgrade_timeout_ms() {
  const char* text = std::getenv(kUpgradeTimeoutVariable);
  if (text == nullptr) return kDefaultTimeoutMs;
  uint64_t seconds = 0;
  std::string_view v(text);
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (ec != std::errc() || end != v.data() + v.size() || seconds == 0 || seconds > 3600)
    return kDefaultTimeoutMs;
  return seconds * 1000;
}

}  // namespace harrow
