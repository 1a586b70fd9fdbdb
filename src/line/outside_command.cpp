#include "line/outside_command.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

namespace clade::line {
namespace {

constexpr size_t kLogTail = size_t{64} * 1024;  // of a log, read for the failure text
constexpr size_t kMaxReason = 400;              // characters of that last line kept in the error

// The environment of the command: only what a programmer needs, never the line's own secrets
// (CLADE_KEK_PASSPHRASE, tokens, …): the variables of kPassedOn the parent has, PATH (the
// parent's, or kDefaultPath), then this device's CLADE_* variables.
constexpr const char* kPassedOn[] = {"HOME", "LANG", "LC_ALL", "TMPDIR"};
constexpr char kDefaultPath[] = "/usr/local/bin:/usr/bin:/bin";

std::vector<std::string> CommandEnvironment(const std::vector<std::string>& ours) {
  std::vector<std::string> env;
  const char* path = std::getenv("PATH");  // the line never sets its environment: thread-safe
  env.push_back(std::string("PATH=") + (path != nullptr && *path != '\0' ? path : kDefaultPath));
  for (const char* name : kPassedOn) {
    const char* value = std::getenv(name);
    if (value != nullptr) env.push_back(std::string(name) + "=" + value);
  }
  env.insert(env.end(), ours.begin(), ours.end());
  return env;
}

// Owns a posix_spawn attribute set and file actions (destroyed on every path).
struct SpawnSetup {
  posix_spawnattr_t attr{};
  posix_spawn_file_actions_t actions{};
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

// Runs `/bin/sh -c command` in `dir`, in its own process group, output to `log_fd`. posix_spawn,
// not fork: the line calls this from many threads, and between fork and exec a multi-threaded
// process may only make async-signal-safe calls (POSIX fork()); glibc's posix_spawn uses
// clone(CLONE_VFORK) and does the setup itself.
}  // namespace

absl::StatusOr<CommandOutcome> RunOutsideCommand(const OutsideCommand& c) {
  if (c.stdout_fd < 0 || c.stderr_fd < 0) {
    return absl::InvalidArgumentError("an outside command needs its stdout and stderr");
  }
  const std::string& command = c.command;
  const std::string& dir = c.dir;
  const int timeout_seconds = c.timeout_seconds;
  std::vector<std::string> env = CommandEnvironment(c.variables);
  std::vector<char*> argv = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                             const_cast<char*>(command.c_str()), nullptr};
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  SpawnSetup s;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  int rc = posix_spawnattr_setflags(
      &s.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (rc == 0) rc = posix_spawnattr_setpgroup(&s.attr, 0);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&s.attr, &none);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&s.attr, &all);
  if (rc == 0) rc = posix_spawn_file_actions_addopen(&s.actions, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, c.stdout_fd, 1);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, c.stderr_fd, 2);
  if (rc == 0) rc = posix_spawn_file_actions_addchdir_np(&s.actions, dir.c_str());
  pid_t pid = 0;
  if (rc == 0) rc = posix_spawn(&pid, "/bin/sh", &s.actions, &s.attr, argv.data(), envp.data());
  if (rc != 0) return absl::InternalError(std::string("cannot start /bin/sh: ") + strerror(rc));

  CommandOutcome out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    pid_t w = ::waitpid(pid, &out.wait_status, WNOHANG);
    if (w == pid) return out;
    if (w < 0 && errno != EINTR) {
      ::kill(-pid, SIGKILL);
      return absl::InternalError(std::string("waitpid: ") + std::strerror(errno));
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  // The leader is not reaped yet, so the group id cannot have been reused: the whole group goes.
  out.timed_out = true;
  ::kill(-pid, SIGKILL);
  while (::waitpid(pid, &out.wait_status, 0) < 0 && errno == EINTR) {
  }
  return out;
}

bool CommandOutcome::Succeeded() const {
  return !timed_out && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

std::string DescribeExit(int ws) {
  std::string how;
  if (WIFEXITED(ws)) {
    int code = WEXITSTATUS(ws);
    how = "exit status " + std::to_string(code);
    // The shell reports a command it ran that died of signal S as exit status 128+S.
    const char* name = code > 128 ? sigabbrev_np(code - 128) : nullptr;
    if (name != nullptr) {
      how += " (a command it ran was killed by signal " + std::to_string(code - 128) + " (SIG" +
             name + ")?)";
    }
  } else {
    const char* name = WIFSIGNALED(ws) ? sigabbrev_np(WTERMSIG(ws)) : nullptr;
    how = "killed by signal " + std::to_string(WIFSIGNALED(ws) ? WTERMSIG(ws) : 0) +
          (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return how;
}

// The last non-empty line of a log file, trimmed and bounded ("" when there is none).
std::string LastLogLine(const std::string& path) {
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return "";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  size_t want = static_cast<size_t>(std::min<uintmax_t>(size, kLogTail));
  std::string tail(want, '\0');
  ssize_t n = ::pread(fd, tail.data(), want, static_cast<off_t>(size - want));
  ::close(fd);
  tail.resize(n > 0 ? static_cast<size_t>(n) : 0);
  const char* kSpace = " \t\r\n\v\f";
  size_t end = tail.find_last_not_of(kSpace);
  if (end == std::string::npos) return "";
  size_t begin = tail.find_last_of('\n', end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  std::string line = tail.substr(begin, end + 1 - begin);
  line.erase(0, std::min(line.find_first_not_of(kSpace), line.size()));
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (line.size() > kMaxReason) line = line.substr(0, kMaxReason) + "…";
  return line;
}

}  // namespace clade::line
