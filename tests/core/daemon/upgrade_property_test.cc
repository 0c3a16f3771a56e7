// HARROW_INHERITED_FDS carries any set of listeners (addresses as a configuration may write
// them, descriptors from 3 up) from the old process to the new one unchanged.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <vector>

#include "core/daemon/upgrade.h"

namespace harrow {
namespace {

std::string address() {
  // Characters of IPv4, bracketed IPv6 and host names with a port; never '=', ',' or ';'.
  static const std::string kAlphabet = "0123456789abcdef.:[]-ABCDEFxyz";
  int len = *rc::gen::inRange(1, 40);
  std::string s;
  for (int i = 0; i < len; ++i) {
    s += kAlphabet[static_cast<size_t>(
        *rc::gen::inRange<int>(0, static_cast<int>(kAlphabet.size())))];
  }
  return s;
}

RC_GTEST_PROP(InheritedFdsProperty, FormatThenParseGivesBackTheListeners, ()) {
  std::vector<InheritedListener> listeners;
  int count = *rc::gen::inRange(0, 6);
  for (int i = 0; i < count; ++i) {
    InheritedListener l;
    l.role = *rc::gen::element(InheritedListener::Role::Listen, InheritedListener::Role::Admin);
    l.address = address();
    int fds = *rc::gen::inRange(1, 5);
    for (int k = 0; k < fds; ++k) l.fds.push_back(*rc::gen::inRange(3, 1 << 20));
    listeners.push_back(l);
  }
  std::vector<InheritedListener> back;
  std::string error;
  RC_ASSERT(parse_inherited_fds(format_inherited_fds(listeners), back, error));
  RC_ASSERT(back == listeners);
}

}  // namespace
}  // namespace harrow
