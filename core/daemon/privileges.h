// Who Harrow runs as. Started as root (outside systemd, which starts it as its own user), it
// binds its ports first, then becomes <harrow user=… group=…> for good; it does not proxy as
// root on a reachable address unless the file says allowRunAsRoot="true".
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "core/base/files.h"

namespace harrow {

struct PrivilegePlan {
  enum class Action {
    Keep,    // not root, or root allowed: run as we are
    Drop,    // root with a configured user: switch after binding
    Refuse,  // root, no user, a non-loopback address: exit (configuration error)
  };
  Action action = Action::Keep;
  std::string message;   // a note for Keep (may be empty), the reason for Refuse
  bool warning = false;  // log `message` as a warning (else as information)
};

// The policy, decided before anything is bound. `addresses` are every listener and the admin
// address as HOST:PORT. As root: a user → Drop; allowRunAsRoot → Keep with a warning; only
// loopback addresses → Keep with a warning (a development run reachable from this host only);
// otherwise Refuse. Not root: Keep (a configured user different from ours is only noted).
PrivilegePlan plan_privileges(bool is_root, const std::string& current_user,
                              const config::RunAsConfig& run_as,
                              const std::vector<std::string>& addresses);

// Looks up `user` and `group` (empty: the user's primary group).
bool resolve_run_as(const std::string& user, const std::string& group, uid_t& uid, gid_t& gid,
                    std::string& error);

// Becomes `user` (and `group`, default: the user's primary group) for good: supplementary
// groups cleared to that group, then gid, then uid; fails unless the change is verified,
// including that root cannot be regained. `owned_fds` (log files opened as root) are given to
// the user first, so it can reopen them after a rotation: by descriptor (fchown), never by
// path, so a symbolic link planted at a log path cannot hand another file to the user.
// With `keep_read_capability`, CAP_DAC_READ_SEARCH stays *permitted* (never effective but
// inside with_read_capability), so a reload can re-read TLS keys only root may read.
bool drop_privileges(const std::string& user, const std::string& group,
                     const std::vector<int>& owned_fds, std::string& error,
                     bool keep_read_capability = false);

// The name of the effective user, or its number when it has no name.
std::string current_user_name();

}  // namespace harrow
