#include "core/base/files.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace harrow {

int open_regular_file(const std::string& path, int flags, const char* what, std::string& error) {
  // O_NONBLOCK: opening a FIFO (or a device) planted at the path must not block the start.
  int fd = ::open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0640);
  if (fd < 0) {
    int saved = errno;  // callers may look at it (ENOENT)
    if (saved == ELOOP) {
      error = std::string("refusing ") + what + " " + path +
              ": it is a symbolic link (name the file itself)";
    } else {
      error = std::string("cannot open ") + what + " " + path + ": " + std::strerror(saved);
    }
    errno = saved;
    return -1;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    error = std::string("refusing ") + what + " " + path + ": not a regular file";
    ::close(fd);
    errno = EINVAL;
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

namespace {

// The raw capability calls (no libcap): version 3, two 32-bit words.
bool capability_sets(__user_cap_data_struct (&data)[2], bool set) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  return (set ? ::syscall(SYS_capset, &header, data) : ::syscall(SYS_capget, &header, data)) == 0;
}

}  // namespace

bool permit_only_read_capability() {
  __user_cap_data_struct data[2]{};
  data[0].permitted = 1u << CAP_DAC_READ_SEARCH;  // capability 2: word 0
  return capability_sets(data, true);
}

bool raise_read_capability(bool on) {
  __user_cap_data_struct data[2]{};
  if (!capability_sets(data, false)) return false;
  constexpr uint32_t bit = 1u << CAP_DAC_READ_SEARCH;  // capability 2: word 0
  if ((data[0].permitted & bit) == 0) return false;
  if (on) {
    data[0].effective |= bit;
  } else {
    data[0].effective &= ~bit;
  }
  return capability_sets(data, true);
}

}  // namespace harrow
