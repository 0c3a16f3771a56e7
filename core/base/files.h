// Opening files Harrow reads or writes with privileges (logs, state, secrets) safely, and
// reading root-only files after privileges were dropped.
#pragma once

#include <string>

namespace harrow {

// Leaves CAP_DAC_READ_SEARCH as the only permitted capability, none effective (after a
// change of user with PR_SET_KEEPCAPS); false with errno set if the kernel refuses.
bool permit_only_read_capability();

// Makes CAP_DAC_READ_SEARCH effective (true) or not (false); false if it is not permitted.
bool raise_read_capability(bool on);

// Runs `read` with CAP_DAC_READ_SEARCH effective if drop_privileges kept it permitted (else
// just runs it), and makes it ineffective again before returning.
template <typename Fn>
auto with_read_capability(Fn&& read) {
  bool raised = raise_read_capability(true);
  struct Lower {
    bool raised;
    ~Lower() {
      if (raised) raise_read_capability(false);
    }
  } lower{raised};
  return read();
}

// Opens a file Harrow writes or reads as root (logs, state, secrets) safely: O_NOFOLLOW (a
// symbolic link at `path` is refused with ELOOP's message), O_CLOEXEC, and the result must be
// a regular file. With O_CREAT a new file gets mode 0640. -1 with `error` naming `what` and
// the path otherwise.
int open_regular_file(const std::string& path, int flags, const char* what, std::string& error);

}  // namespace harrow
