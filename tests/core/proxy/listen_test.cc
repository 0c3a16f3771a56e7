#include "core/proxy/listen.h"

#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace harrow {
namespace {

// Client connections are not given TCP_NODELAY one by one: they inherit it from the listening
// socket. Small responses would otherwise wait for Nagle's algorithm on keep-alive connections.
TEST(ListenSockets, AcceptedConnectionsInheritNoDelay) {
  std::vector<ListenSocket> sockets;
  std::string error;
  ASSERT_TRUE(open_listen_sockets("127.0.0.1:0", 1, sockets, error)) << error;
  ASSERT_EQ(sockets.size(), 1u);
  int listener = sockets[0].fd;

  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), len), 0);

  int accepted = -1;
  for (int i = 0; i < 1000 && accepted < 0; ++i) {  // the listener is non-blocking
    accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted < 0) ::usleep(1000);
  }
  ASSERT_GE(accepted, 0);
  int nodelay = 0;
  socklen_t optlen = sizeof nodelay;
  ASSERT_EQ(::getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &nodelay, &optlen), 0);
  EXPECT_EQ(nodelay, 1);
  ::close(accepted);
  ::close(client);
  ::close(listener);
}

}  // namespace
}  // namespace harrow
