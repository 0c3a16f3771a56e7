// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram per state change
// to the unix socket named by $NOTIFY_SOCKET. Outside systemd (no variable) nothing is sent.
#pragma once

#include <string>

namespace harrow {

// Sends `state` (e.g. "READY=1") as one datagram to `socket_path`: a file system path, or an
// abstract name written with a leading '@'. Returns false with `error` set on failure.
bool notify_send(const std::string& socket_path, const std::string& state, std::string& error);

// notify_send to $NOTIFY_SOCKET; true (and nothing sent) when the variable is unset or empty.
bool service_notify(const std::string& state, std::string& error);

// "RELOADING=1\nMONOTONIC_USEC=…": what systemd wants at the start of a reload.
std::string reloading_state();

}  // namespace harrow
