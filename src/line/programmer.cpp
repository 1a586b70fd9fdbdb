#include "line/programmer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "base/files.h"
#include "line/chip_source.h"
#include "line/outside_command.h"

namespace clade::line {
namespace {

class ExecProgrammer : public Programmer {
 public:
  ExecProgrammer(std::string command, std::string work_dir, int timeout_seconds,
                 std::string tray_dir)
      : command_(std::move(command)),
        work_dir_(std::move(work_dir)),
        timeout_seconds_(timeout_seconds),
        tray_dir_(std::move(tray_dir)) {}

  absl::Status Program(const std::string& uid, const ProgramInput& input,
                       const ProgramContext& context) override;
  std::string Name() const override { return "exec"; }

 private:
  absl::StatusOr<std::string> MakeWorkDir(const std::string& uid);

  const std::string command_;
  const std::string work_dir_;  // absolute
  const int timeout_seconds_;
  const std::string tray_dir_;  // absolute, or "" when the chips come from no tray
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
  RETURN_IF_ERROR(CheckChipUid(uid));  // the uid becomes a path component
  ASSIGN_OR_RETURN(std::string dir, MakeWorkDir(uid));
  const std::string plain_key_path = dir + "/" + kBundlePlainKeyFile;
  auto remove_plain_key = [&] {
    std::error_code ec;
    std::filesystem::remove(plain_key_path, ec);
  };
  if (absl::Status s = WriteProvisioningBundle(dir, input, context.record, BundleWrite::kScratch);
      !s.ok()) {
    remove_plain_key();
    return NameChip(uid, s);
  }

  const std::string log_path = dir + "/" + kBundleProgrammerLog;
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    remove_plain_key();
    return absl::InternalError("cannot create " + log_path + " for chip " + uid + ": " +
                               std::strerror(errno));
  }
  OutsideCommand c;
  c.command = command_;
  c.dir = dir;
  c.variables = {
      "CLADE_UID=" + uid,
      "CLADE_JOB=" + context.job_id,
      "CLADE_MEMBER=" + context.member_id,
      "CLADE_CERT_SERIAL=" + context.cert_serial,
      "CLADE_DATA_DIR=" + dir,
  };
  if (!tray_dir_.empty()) c.variables.push_back("CLADE_TRAY=" + tray_dir_);
  c.stdout_fd = log_fd;
  c.stderr_fd = log_fd;
  c.timeout_seconds = timeout_seconds_;
  absl::StatusOr<CommandOutcome> run = RunOutsideCommand(c);
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
  if (run->Succeeded()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // a leftover is harmless: the next uses another name
    return absl::OkStatus();
  }
  std::string line = LastLogLine(log_path);
  return absl::AbortedError("programmer failed for chip " + uid + ": " +
                            DescribeExit(run->wait_status) + (line.empty() ? "" : ": " + line) +
                            " (see " + log_path + ")");
}

// Absolute and without a trailing '/': the command runs in its data directory, and the paths it
// is given must still be valid there.
absl::StatusOr<std::string> Absolute(const std::string& path) {
  std::error_code ec;
  std::string abs = std::filesystem::absolute(path, ec).lexically_normal().string();
  if (ec) return absl::InvalidArgumentError("bad path " + path + ": " + ec.message());
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  return abs;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Programmer>> MakeExecProgrammer(const std::string& command,
                                                               const std::string& work_dir,
                                                               int timeout_seconds,
                                                               const std::string& tray_dir) {
  if (command.empty() || command.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("the programmer command is empty");
  }
  if (timeout_seconds <= 0) {
    return absl::InvalidArgumentError("programmer timeout must be at least 1 second, not " +
                                      std::to_string(timeout_seconds));
  }
  if (work_dir.empty()) return absl::InvalidArgumentError("no programmer work directory");
  ASSIGN_OR_RETURN(std::string abs_work, Absolute(work_dir));
  std::string abs_tray;
  if (!tray_dir.empty()) {
    ASSIGN_OR_RETURN(abs_tray, Absolute(tray_dir));
  }
  RETURN_IF_ERROR(MakeDirs(abs_work, 0700));
  return std::unique_ptr<Programmer>(
      new ExecProgrammer(command, abs_work, timeout_seconds, abs_tray));
}

}  // namespace clade::line
