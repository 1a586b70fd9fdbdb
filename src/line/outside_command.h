// An outside command of the line — a programmer or a chip reader, a vendor's tool as often as
// not: `/bin/sh -c COMMAND` in a directory, in its own process group, with a minimal environment
// (never the line's own, which may hold CLADE_KEK_PASSPHRASE or tokens): PATH (the parent's, else
// /usr/local/bin:/usr/bin:/bin), HOME, LANG, LC_ALL and TMPDIR when the parent has them, then the
// caller's variables. stdin is /dev/null. A command running longer than its timeout is killed with
// its whole process group. Safe from many threads at once (posix_spawn, no shared state).
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace clade::line {

struct OutsideCommand {
  std::string command;                 // for /bin/sh -c
  std::string dir;                     // its working directory
  std::vector<std::string> variables;  // NAME=VALUE, added to the minimal environment
  int stdout_fd = -1;                  // both required
  int stderr_fd = -1;
  int timeout_seconds = 120;
};

struct CommandOutcome {
  bool timed_out = false;
  int wait_status = 0;
  bool Succeeded() const;  // exited with status 0
};

absl::StatusOr<CommandOutcome> RunOutsideCommand(const OutsideCommand& command);

// How a command that did not succeed ended: "exit status 3", "exit status 139 (a command it ran
// was killed by signal 11 (SIGSEGV)?)", "killed by signal 11 (SIGSEGV)".
std::string DescribeExit(int wait_status);

// The last non-empty line of a log file, trimmed, control characters blanked, bounded ("" when
// there is none): a command's own words for why it failed.
std::string LastLogLine(const std::string& path);

}  // namespace clade::line
