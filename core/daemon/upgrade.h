// Binary upgrade without a refused connection (SIGUSR2, as nginx does it).
//
// The running process checks the new binary's view of the configuration (`NEW --check-config`),
// then starts the new binary with its listening sockets inherited: the very sockets, with their
// accept queues, so no connection is refused or reset while one process gives way to the
// other. Because every worker's SO_REUSEPORT socket is handed over (see core/proxy/listen.h),
// no queue of the group is ever closed while connections wait in it. The new process adopts
// them instead of binding, starts serving, and writes "READY" to a pipe; only then does the
// old one tell systemd the new main PID (sd_notify(3) MAINPID=) and stop like on SIGTERM:
// stop accepting, finish what is in flight, exit 0. A new binary that fails the check, exits,
// or is not ready in time changes nothing: the old process kills it and keeps serving.
//
// Why inherited descriptors rather than a systemd .socket unit (sd_listen_fds): Harrow opens
// one socket per worker per address (SO_REUSEPORT) and learns its addresses from harrow.config,
// so a socket unit would duplicate the configuration and give one shared queue; inheritance
// works the same with or without systemd, and a changed address simply binds anew.
//
// The protocol between the two processes, set in the new one's environment:
//   HARROW_INHERITED_FDS="listen:ADDRESS=FD,FD,…;admin:ADDRESS=FD" (ADDRESS as configured, e.g.
//   "127.0.0.1:0", so a port picked by the kernel is kept) and HARROW_UPGRADE_READY_FD=FD, the
//   write end of the readiness pipe. Both are removed from the environment once read.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace harrow {

inline constexpr const char* kInheritedFdsVariable = "HARROW_INHERITED_FDS";
inline constexpr const char* kUpgradeReadyFdVariable = "HARROW_UPGRADE_READY_FD";
// Seconds the old process waits for `--check-config` and then for the new process to be
// ready (default 30, systemd's default start timeout).
inline constexpr const char* kUpgradeTimeoutVariable = "HARROW_UPGRADE_TIMEOUT";

// The sockets of one listening address passed from the old process to the new one.
struct InheritedListener {
  enum class Role { Listen, Admin };
  Role role = Role::Listen;
  std::string address;  // as in the configuration (or --listen/--admin)
  std::vector<int> fds;
  bool operator==(const InheritedListener&) const = default;
};

// HARROW_INHERITED_FDS's text, and back. Parsing fails (false, `error` set) on anything but
// the format above with descriptors of 3 or more (0-2 are stdio).
std::string format_inherited_fds(const std::vector<InheritedListener>& listeners);
bool parse_inherited_fds(std::string_view text, std::vector<InheritedListener>& out,
                         std::string& error);

// The new process's side: the sockets it was given, taken address by address as the
// configuration names them. Whatever the configuration no longer names is closed.
class InheritedSockets {
 public:
  // Reads (and unsets) the variables. No variable: nothing inherited (a normal start).
  // False with `error` when the text is malformed or a descriptor is not a listening TCP
  // socket; every inherited descriptor is then closed.
  bool load_from_environment(std::string& error);
  bool empty() const { return listeners_.empty(); }
  // The sockets inherited for `address` in `role` (empty if none), now owned by the caller.
  std::vector<int> take(InheritedListener::Role role, const std::string& address);
  // Closes the sockets no address took; returns how many.
  size_t close_unclaimed();
  // Whether this process was started by an upgrade (it must announce readiness).
  bool upgrading() const { return ready_fd_ >= 0; }
  // Tells the old process this one serves: it may stop. Once; false with `error` on failure.
  bool announce_ready(std::string& error);
  size_t taken() const { return taken_; }

 private:
  std::vector<InheritedListener> listeners_;
  int ready_fd_ = -1;
  size_t taken_ = 0;
};

// The old process's side, on the main loop.
class BinaryUpgrade {
 public:
  struct Hooks {
    // Every listening socket to hand over (called when the new process is started).
    std::function<std::vector<InheritedListener>()> sockets;
    // Just before the new process starts: save what it reads at start (the state file).
    std::function<void()> before_start;
    // The new process serves: stop like on SIGTERM. Called once.
    std::function<void(int pid)> handed_over;
  };
  // `executable`: the path this process was started from (the package replaces the file
  // there); `arguments`: this process's arguments after argv[0], given to the new one as is.
  BinaryUpgrade(uv_loop_t* loop, std::string executable, std::vector<std::string> arguments,
                Hooks hooks, uint64_t timeout_ms);
  ~BinaryUpgrade();
  BinaryUpgrade(const BinaryUpgrade&) = delete;
  BinaryUpgrade& operator=(const BinaryUpgrade&) = delete;

  // SIGUSR2: starts an upgrade unless one is under way (then only logs).
  void start();
  bool in_progress() const { return attempt_ != nullptr; }
  // At stop: an upgrade under way is abandoned (its new process killed).
  void close();

  struct Attempt;

 private:
  friend struct Attempt;
  void finished(bool handed_over, int pid);

  uv_loop_t* loop_;
  std::string executable_;
  std::vector<std::string> arguments_;
  Hooks hooks_;
  uint64_t timeout_ms_;
  Attempt* attempt_ = nullptr;  // owns itself until its handles are closed
  bool closed_ = false;
};

// The path of the running binary (/proc/self/exe), read at start before a package can
// replace the file; empty with `error` on failure.
std::string running_executable(std::string& error);

// HARROW_UPGRADE_TIMEOUT in milliseconds, or the default 30 s when unset or invalid.
uint64_t upgrade_timeout_ms();

}  // namespace harrow
