#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace vigil::agent {

// The systemd notify protocol, without libsystemd: datagrams to $NOTIFY_SOCKET (a path, or
// an abstract socket when it starts with '@'). A no-op when the variable is unset, as when
// vigil does not run under systemd.
bool SdNotify(const std::string& state);

// $WATCHDOG_USEC as a duration, when systemd asks for watchdog pings (WatchdogSec=).
std::optional<std::chrono::microseconds> WatchdogInterval();

}  // namespace vigil::agent
