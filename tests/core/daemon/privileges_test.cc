#include "core/daemon/privileges.h"

#include "core/base/socket_address.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace harrow {
namespace {

using Action = PrivilegePlan::Action;

TEST(Privileges, LoopbackAddresses) {
  EXPECT_TRUE(is_loopback_address("127.0.0.1:80"));
  EXPECT_TRUE(is_loopback_address("127.1.2.3:0"));
  EXPECT_TRUE(is_loopback_address("[::1]:8080"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0:80"));
  EXPECT_FALSE(is_loopback_address("*:80"));
  EXPECT_FALSE(is_loopback_address("10.0.0.1:80"));
  EXPECT_FALSE(is_loopback_address("[::]:80"));
}

TEST(Privileges, PolicyAsRoot) {
  config::RunAsConfig none;
  config::RunAsConfig user{.user = "harrow"};
  config::RunAsConfig allowed{.allow_root = true};
  std::vector<std::string> loopback = {"127.0.0.1:8080", "127.0.0.1:9180"};
  std::vector<std::string> public_listener = {"0.0.0.0:80", "127.0.0.1:9180"};
  std::vector<std::string> public_admin = {"127.0.0.1:80", "192.0.2.1:9180"};

  EXPECT_EQ(plan_privileges(true, "root", user, public_listener).action, Action::Drop);
  EXPECT_EQ(plan_privileges(true, "root", user, loopback).action, Action::Drop);
  PrivilegePlan refused = plan_privileges(true, "root", none, public_listener);
  EXPECT_EQ(refused.action, Action::Refuse);
  EXPECT_NE(refused.message.find("0.0.0.0:80"), std::string::npos) << refused.message;
  EXPECT_NE(refused.message.find("allowRunAsRoot"), std::string::npos) << refused.message;
  EXPECT_EQ(plan_privileges(true, "root", none, public_admin).action, Action::Refuse);
  PrivilegePlan local = plan_privileges(true, "root", none, loopback);
  EXPECT_EQ(local.action, Action::Keep);
  EXPECT_NE(local.message.find("root"), std::string::npos);
  EXPECT_FALSE(local.warning);  // development on loopback: a note, not a warning
  PrivilegePlan forced = plan_privileges(true, "root", allowed, public_listener);
  EXPECT_EQ(forced.action, Action::Keep);
  EXPECT_FALSE(forced.message.empty());
  EXPECT_TRUE(forced.warning);
}

TEST(Privileges, PolicyAsAnotherUser) {
  config::RunAsConfig user{.user = "harrow"};
  EXPECT_EQ(plan_privileges(false, "harrow", user, {"0.0.0.0:80"}).action, Action::Keep);
  EXPECT_TRUE(plan_privileges(false, "harrow", user, {"0.0.0.0:80"}).message.empty());
  PrivilegePlan other = plan_privileges(false, "alice", user, {"0.0.0.0:80"});
  EXPECT_EQ(other.action, Action::Keep);
  EXPECT_NE(other.message.find("alice"), std::string::npos);
}

// Drops to nobody in a child process (the test runner keeps its own identity).
TEST(Privileges, DropIsPermanent) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to change user";
  char log_path[] = "/tmp/harrow-privileges-XXXXXX";
  int log_fd = ::mkstemp(log_path);
  ASSERT_GE(log_fd, 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string error;
    if (!drop_privileges("nobody", "", {log_fd}, error)) ::_exit(10);
    if (::geteuid() == 0 || ::getuid() == 0 || ::getegid() == 0) ::_exit(11);
    if (::setuid(0) == 0 || ::setgid(0) == 0) ::_exit(12);
    gid_t groups[8];
    int n = ::getgroups(8, groups);
    if (n != 1 || groups[0] != ::getegid()) ::_exit(13);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ::close(log_fd);
  struct stat st {};
  ASSERT_EQ(::stat(log_path, &st), 0);
  EXPECT_EQ(st.st_uid, ::getpwnam("nobody")->pw_uid);  // the log file was handed over
  EXPECT_EQ(st.st_gid, 0u);                            // its group kept
  ::unlink(log_path);
}

TEST(Privileges, UnknownUserOrGroupIsAnError) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to change user";
  std::string error;
  EXPECT_FALSE(drop_privileges("no-such-user-harrow", "", {}, error));
  EXPECT_NE(error.find("no-such-user-harrow"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(drop_privileges("nobody", "no-such-group-harrow", {}, error));
  EXPECT_NE(error.find("no-such-group-harrow"), std::string::npos) << error;
  EXPECT_FALSE(drop_privileges("root", "", {}, error));
  EXPECT_EQ(::geteuid(), 0u);  // failures happen before any change
}

}  // namespace
}  // namespace harrow
