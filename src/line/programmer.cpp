#include "line/programmer.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "base/files.h"
#include "crypto/x509.h"

namespace clade::line {
namespace {

constexpr size_t kLogTail = size_t{64} * 1024;  // of programmer.log, read for the failure text
constexpr size_t kMaxReason = 400;              // characters of that last line kept in the error

// Puts the uid into an error that does not name it already.
absl::Status NameChip(const std::string& uid, const absl::Status& s) {
  if (s.ok() || std::string(s.message()).find(uid) != std::string::npos) return s;
  return absl::Status(s.code(), "chip " + uid + ": " + std::string(s.message()));
}

class VirtualProgrammer : public Programmer {
 public:
  explicit VirtualProgrammer(Tray tray) : tray_(std::move(tray)) {}

  const std::vector<std::string>& Uids() const override { return tray_.uids(); }

  absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const override {
    auto chip = tray_.Chip(uid);
    if (!chip.ok()) return NameChip(uid, chip.status());
    if (hsm_mode) {
      auto cert = chip->TransportCertificate();
      if (!cert.ok()) return NameChip(uid, cert.status());
      return cert->Pem();
    }
    auto key = chip->DevicePublicKey();
    if (!key.ok()) return NameChip(uid, key.status());
    return key->ToPem();
  }

  absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& uid) const override {
    auto chip = tray_.Chip(uid);
    if (!chip.ok()) return NameChip(uid, chip.status());
    if (!chip->locked()) return std::optional<std::string>();
    auto pem = ReadFileString(chip->dir() + "/flash/device.crt", crypto::kMaxChainPem);
    if (!pem.ok()) return NameChip(uid, pem.status());
    auto cert = crypto::Certificate::FromPem(*pem);
    if (!cert.ok()) {
      return NameChip(uid, absl::DataLossError("flash/device.crt of locked chip " + uid + ": " +
                                               std::string(cert.status().message())));
    }
    return std::optional<std::string>(cert->SerialHex());
  }

  // Each call opens its own VirtualChip: nothing mutable is shared between threads.
  absl::Status Program(const std::string& uid, const ProgramInput& input,
                       const ProgramContext& /*context*/) override {
    auto chip = tray_.Chip(uid);
    if (!chip.ok()) return NameChip(uid, chip.status());
    return NameChip(uid, chip->Program(input));
  }

  std::string Name() const override { return "virtual"; }

 private:
  const Tray tray_;
};

// Writes a work file for the command; no fsync: the directory is scratch, removed after success.
absl::Status WriteWorkFile(const std::string& path, const void* data, size_t size, int mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return absl::InternalError("cannot create " + path + ": " + std::strerror(errno));
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      return absl::InternalError("cannot write " + path + ": " + std::strerror(e));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    return absl::InternalError("cannot write " + path + ": " + std::strerror(errno));
  }
  return absl::OkStatus();
}
absl::Status WriteWorkFile(const std::string& path, const std::string& s, int mode = 0600) {
  return WriteWorkFile(path, s.data(), s.size(), mode);
}
absl::Status WriteWorkFile(const std::string& path, const Bytes& b, int mode = 0600) {
  return WriteWorkFile(path, b.data(), b.size(), mode);
}

// The last non-empty line of a log file, trimmed and bounded ("" when there is none).
std::string LastLine(const std::string& path) {
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

struct Outcome {
  bool timed_out = false;
  int wait_status = 0;
};

// Runs `/bin/sh -c command` in `dir`, in its own process group, output to `log_fd`. posix_spawn,
// not fork: the line calls this from many threads, and between fork and exec a multi-threaded
// process may only make async-signal-safe calls (POSIX fork()); glibc's posix_spawn uses
// clone(CLONE_VFORK) and does the setup itself.
absl::StatusOr<Outcome> RunCommand(const std::string& command, const std::string& dir, int log_fd,
                                   const std::vector<std::string>& env, int timeout_seconds) {
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
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, log_fd, 1);
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&s.actions, log_fd, 2);
  if (rc == 0) rc = posix_spawn_file_actions_addchdir_np(&s.actions, dir.c_str());
  pid_t pid = 0;
  if (rc == 0) rc = posix_spawn(&pid, "/bin/sh", &s.actions, &s.attr, argv.data(), envp.data());
  if (rc != 0) return absl::InternalError(std::string("cannot start /bin/sh: ") + strerror(rc));

  Outcome out;
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

class ExecProgrammer : public Programmer {
 public:
  ExecProgrammer(Tray tray, std::string command, std::string work_dir, int timeout_seconds)
      : virtual_(Tray(tray)),
        tray_(std::move(tray)),
        command_(std::move(command)),
        work_dir_(std::move(work_dir)),
        timeout_seconds_(timeout_seconds) {}

  const std::vector<std::string>& Uids() const override { return tray_.uids(); }
  absl::StatusOr<std::string> RequestPem(const std::string& uid, bool hsm_mode) const override {
    return virtual_.RequestPem(uid, hsm_mode);
  }
  absl::StatusOr<std::optional<std::string>> ProgrammedSerial(
      const std::string& /*uid*/) const override {
    return std::optional<std::string>();
  }
  absl::Status Program(const std::string& uid, const ProgramInput& input,
                       const ProgramContext& context) override;
  std::string Name() const override { return "exec"; }

 private:
  absl::StatusOr<std::string> MakeWorkDir(const std::string& uid);

  VirtualProgrammer virtual_;  // for request material, read from the tray
  const Tray tray_;
  const std::string command_;
  const std::string work_dir_;  // absolute
  const int timeout_seconds_;
  std::atomic<uint64_t> next_{0};
};

// WORK/<uid>.<n> with n from a per-process counter; a directory kept from an earlier run (or by
// another line on the same WORK) is skipped, never reused.
absl::StatusOr<std::string> ExecProgrammer::MakeWorkDir(const std::string& uid) {
  for (int tries = 0; tries < 100000; ++tries) {
    std::string dir = work_dir_ + "/" + uid + "." + std::to_string(next_++);
    if (::mkdir(dir.c_str(), 0700) == 0) return dir;
    if (errno != EEXIST) {
      return absl::InternalError("cannot make " + dir + " for chip " + uid + ": " +
                                 std::strerror(errno));
    }
  }
  return absl::ResourceExhaustedError("no free work directory for chip " + uid + " in " +
                                      work_dir_);
}

absl::Status ExecProgrammer::Program(const std::string& uid, const ProgramInput& input,
                                     const ProgramContext& context) {
  // The uid becomes a path component: only the tray's own uids are taken.
  if (!std::binary_search(tray_.uids().begin(), tray_.uids().end(), uid)) {
    return absl::NotFoundError("no chip " + uid + " in tray " + tray_.dir());
  }
  auto cert = crypto::Certificate::FromDer(input.device_cert_der);
  if (!cert.ok()) return NameChip(uid, cert.status());
  ASSIGN_OR_RETURN(std::string dir, MakeWorkDir(uid));
  const std::string plain_key_path = dir + "/device-key.pem";
  // The files of `clade provision --out` (the names ProgramInput::FromDirectory reads).
  auto write_files = [&]() -> absl::Status {
    RETURN_IF_ERROR(WriteWorkFile(dir + "/device.crt", cert->Pem(), 0644));
    RETURN_IF_ERROR(
        WriteWorkFile(dir + "/chain.pem", crypto::Certificate::ChainToPem(input.chain), 0644));
    if (!input.key_envelope.empty()) {
      RETURN_IF_ERROR(WriteWorkFile(dir + "/device-key.cms", input.key_envelope));
    }
    if (!input.plain_key.empty()) {
      auto key = input.plain_key.RevealSecret();
      RETURN_IF_ERROR(WriteWorkFile(plain_key_path, key.data(), key.size(), 0600));
    }
    if (!input.firmware.empty()) {
      RETURN_IF_ERROR(WriteWorkFile(dir + "/firmware.bin", input.firmware, 0644));
    }
    if (!input.config.empty()) {
      RETURN_IF_ERROR(WriteWorkFile(dir + "/config.bin", input.config, 0644));
    }
    return WriteWorkFile(dir + "/record.msg", context.record, 0644);
  };
  auto remove_plain_key = [&] {
    std::error_code ec;
    std::filesystem::remove(plain_key_path, ec);
  };
  if (absl::Status s = write_files(); !s.ok()) {
    remove_plain_key();
    return NameChip(uid, s);
  }

  const std::string log_path = dir + "/programmer.log";
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    remove_plain_key();
    return absl::InternalError("cannot create " + log_path + " for chip " + uid + ": " +
                               std::strerror(errno));
  }
  std::vector<std::string> env = CommandEnvironment({
      "CLADE_UID=" + uid,
      "CLADE_JOB=" + context.job_id,
      "CLADE_MEMBER=" + context.member_id,
      "CLADE_CERT_SERIAL=" + context.cert_serial,
      "CLADE_DATA_DIR=" + dir,
      "CLADE_TRAY=" + tray_.dir(),
  });
  absl::StatusOr<Outcome> run = RunCommand(command_, dir, log_fd, env, timeout_seconds_);
  ::close(log_fd);
  remove_plain_key();  // whatever happened: a plain key never stays on disk
  if (!run.ok()) {
    return absl::InternalError("cannot run the programmer command for chip " + uid + ": " +
                               std::string(run.status().message()));
  }
  if (run->timed_out) {
    return absl::DeadlineExceededError("programmer command timed out after " +
                                       std::to_string(timeout_seconds_) + "s for chip " + uid +
                                       " (output kept in " + dir + ")");
  }
  const int ws = run->wait_status;
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // a leftover is harmless: the next uses another name
    return absl::OkStatus();
  }
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
  std::string line = LastLine(log_path);
  return absl::AbortedError("programmer failed for chip " + uid + ": " + how +
                            (line.empty() ? "" : ": " + line) + " (see " + log_path + ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Programmer>> MakeVirtualProgrammer(const std::string& tray_dir) {
  ASSIGN_OR_RETURN(Tray tray, Tray::Open(tray_dir));
  return std::unique_ptr<Programmer>(new VirtualProgrammer(std::move(tray)));
}

absl::StatusOr<std::unique_ptr<Programmer>> MakeExecProgrammer(const std::string& tray_dir,
                                                               const std::string& command,
                                                               const std::string& work_dir,
                                                               int timeout_seconds) {
  if (command.empty() || command.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("the programmer command is empty");
  }
  if (timeout_seconds <= 0) {
    return absl::InvalidArgumentError("programmer timeout must be at least 1 second, not " +
                                      std::to_string(timeout_seconds));
  }
  if (work_dir.empty()) return absl::InvalidArgumentError("no programmer work directory");
  // Absolute: the command runs in its data directory, and CLADE_DATA_DIR must still be valid there.
  std::error_code ec;
  std::string abs_tray = std::filesystem::absolute(tray_dir, ec).lexically_normal().string();
  std::string abs_work = std::filesystem::absolute(work_dir, ec).lexically_normal().string();
  if (ec) return absl::InvalidArgumentError("bad path " + work_dir + ": " + ec.message());
  while (abs_work.size() > 1 && abs_work.back() == '/') abs_work.pop_back();
  while (abs_tray.size() > 1 && abs_tray.back() == '/') abs_tray.pop_back();
  ASSIGN_OR_RETURN(Tray tray, Tray::Open(abs_tray));
  RETURN_IF_ERROR(MakeDirs(abs_work, 0700));
  return std::unique_ptr<Programmer>(
      new ExecProgrammer(std::move(tray), command, abs_work, timeout_seconds));
}

}  // namespace clade::line
