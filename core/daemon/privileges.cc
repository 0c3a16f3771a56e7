#include "core/daemon/privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <netinet/in.h>
#include <cerrno>
#include <cstring>

#include "core/base/files.h"
#include "core/base/socket_address.h"

namespace harrow {

PrivilegePlan plan_privileges(bool is_root, const std::string& current_user,
                              const config::RunAsConfig& run_as,
                              const std::vector<std::string>& addresses) {
  PrivilegePlan plan;
  if (!is_root) {
    if (!run_as.user.empty() && run_as.user != current_user) {
      plan.message = "<harrow user=\"" + run_as.user +
                     "\"> applies only when started as root; "
                     "running as " +
                     current_user;
      plan.warning = true;
    }
    return plan;
  }
  if (!run_as.user.empty()) {
    plan.action = PrivilegePlan::Action::Drop;
    return plan;
  }
  if (run_as.allow_root) {
    plan.message =
        "running as root (allowRunAsRoot=\"true\"): a flaw in Harrow would be a flaw "
        "with root's powers";
    plan.warning = true;
    return plan;
  }
  for (const std::string& address : addresses) {
    if (!is_loopback_address(address)) {
      plan.action = PrivilegePlan::Action::Refuse;
      plan.message = "refusing to proxy as root on " + address +
                     ": set <harrow user=\"harrow\"> to drop privileges after binding, or "
                     "allowRunAsRoot=\"true\" to run as root anyway";
      return plan;
    }
  }
  plan.message =
      "running as root on loopback addresses only; set <harrow user=\"…\"> before "
      "listening on other addresses";
  return plan;
}

std::string current_user_name() {
  uid_t uid = ::geteuid();
  passwd entry;
  passwd* found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return std::to_string(uid);
}

bool resolve_run_as(const std::string& user, const std::string& group, uid_t& uid, gid_t& gid,
                    std::string& error) {
  passwd entry;
  passwd* found = nullptr;
  char buffer[4096];
  int rc = ::getpwnam_r(user.c_str(), &entry, buffer, sizeof buffer, &found);
  if (rc != 0 || found == nullptr) {
    error = "user '" + user + "' does not exist" +
            (rc != 0 ? std::string(": ") + std::strerror(rc) : "");
    return false;
  }
  uid = found->pw_uid;
  gid = found->pw_gid;
  if (!group.empty()) {
    struct group g;
    struct group* gfound = nullptr;
    char gbuffer[4096];
    rc = ::getgrnam_r(group.c_str(), &g, gbuffer, sizeof gbuffer, &gfound);
    if (rc != 0 || gfound == nullptr) {
      error = "group '" + group + "' does not exist" +
              (rc != 0 ? std::string(": ") + std::strerror(rc) : "");
      return false;
    }
    gid = gfound->gr_gid;
  }
  return true;
}

bool drop_privileges(const std::string& user, const std::string& group,
                     const std::vector<int>& owned_fds, std::string& error,
                     bool keep_read_capability) {
  uid_t uid = 0;
  gid_t gid = 0;
  if (!resolve_run_as(user, group, uid, gid, error)) return false;
  if (uid == 0) {
    error = "user '" + user + "' is root; name an unprivileged user";
    return false;
  }
  for (int fd : owned_fds) {
    // The group stays (e.g. adm for /var/log); only the owner changes.
    if (::fchown(fd, uid, static_cast<gid_t>(-1)) != 0) {
      error = "cannot give a log file to user '" + user + "': " + std::strerror(errno);
      return false;
    }
  }
  // Capabilities survive the uid change only when asked to; all but the one kept are cleared
  // right after it.
  if (keep_read_capability) ::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
  // Order matters: groups while still root, the uid last.
  if (::setgroups(1, &gid) != 0) {
    error = std::string("setgroups: ") + std::strerror(errno);
    return false;
  }
  if (::setresgid(gid, gid, gid) != 0) {
    error = std::string("setgid: ") + std::strerror(errno);
    return false;
  }
  if (::setresuid(uid, uid, uid) != 0) {
    error = std::string("setuid: ") + std::strerror(errno);
    return false;
  }
  if (keep_read_capability) {
    ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (!permit_only_read_capability()) {
      error = std::string("cannot keep CAP_DAC_READ_SEARCH: ") + std::strerror(errno);
      return false;
    }
  }
  // No exec'd program may gain privileges either (Harrow execs none; this is belt and braces).
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  uid_t ruid, euid, suid;
  gid_t rgid, egid, sgid;
  ::getresuid(&ruid, &euid, &suid);
  ::getresgid(&rgid, &egid, &sgid);
  if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid) {
    error = "the user and group did not change as asked";
    return false;
  }
  if (::setuid(0) == 0 || ::seteuid(0) == 0) {
    error = "root could be regained after dropping privileges";
    return false;
  }
  return true;
}

}  // namespace harrow
