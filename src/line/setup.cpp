// RunLine: checks the options, opens the station (line/station.h: where the chips come from and
// what programs them), takes the database's flock, and runs the core (line/core.h) over gRPC
// members, the DeviceDb and the station.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "base/clock.h"
#include "base/files.h"
#include "line/core.h"
#include "line/device_db.h"
#include "line/grpc_members.h"
#include "line/runner.h"
#include "line/seams.h"
#include "line/station.h"

namespace clade::line {

namespace {

// One run per database: an exclusive flock on DB.lock, held until the process ends.
class DatabaseLock {
 public:
  DatabaseLock() = default;
  ~DatabaseLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

  absl::Status Take(const std::string& db_path) {
    std::string path = db_path + ".lock";
    ASSIGN_OR_RETURN(fd_, OpenLockFile(path));  // never through a planted link
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {};
      ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) {
        holder.pop_back();
      }
      return absl::FailedPreconditionError("another line run (pid " + holder + ") is using " +
                                           db_path + "; one run per line database at a time");
    }
    // The lock goes with the process, however it ends; the pid is only for the message above.
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
      return absl::FailedPreconditionError("cannot write " + path + ": " + std::strerror(errno));
    }
    return absl::OkStatus();
  }

 private:
  int fd_ = -1;
};

// The DeviceDb as the core's record.
class DeviceDbRecord : public LineRecord {
 public:
  explicit DeviceDbRecord(DeviceDb& db) : db_(db) {}
  absl::StatusOr<std::map<std::string, DeviceRow>> Devices(const std::string& job) override {
    return db_.Devices(job);
  }
  absl::StatusOr<std::vector<AttemptRow>> Attempts(const std::string& job) override {
    return db_.Attempts(job);
  }
  absl::StatusOr<std::vector<int64_t>> BeginAttempts(const std::string& job,
                                                     const std::vector<DeviceDb::Send>& sends,
                                                     const std::string& member_id,
                                                     const std::string& member_serial,
                                                     const std::string& member_address,
                                                     int64_t now) override {
    return db_.BeginAttempts(job, sends, member_id, member_serial, member_address, now);
  }
  absl::Status FinishAttempts(const std::vector<AttemptEnd>& ends, int64_t now) override {
    return db_.FinishAttempts(ends, now);
  }
  absl::StatusOr<size_t> CloseOpenAttempts(const std::string& job, const std::string& why,
                                           int64_t now) override {
    return db_.CloseOpenAttempts(job, why, now);
  }
  absl::Status RecoverDone(const std::string& job, const std::string& uid,
                           const std::string& cert_serial, int64_t now) override {
    return db_.RecoverDone(job, uid, cert_serial, now);
  }
  absl::Status MarkFailed(const std::string& job, const std::string& uid, const std::string& error,
                          int64_t now) override {
    return db_.MarkFailed(job, uid, error, now);
  }

 private:
  DeviceDb& db_;
};

// The line's clock at the top-level wiring: the only place the line reads the system's time.
class SystemLineClock : public LineClock {
 public:
  TimePoint SteadyNow() override { return std::chrono::steady_clock::now(); }
  int64_t UnixNow() override { return clade::SystemClock().Now(); }
  void Pause(std::chrono::milliseconds d) override { std::this_thread::sleep_for(d); }
  void WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 TimePoint deadline) override {
    cv.wait_until(lock, deadline);
  }
};

absl::Status CheckOptions(const LineOptions& o) {
  if (o.job_id.empty()) return absl::InvalidArgumentError("--job is required");
  if (o.members.empty()) return absl::InvalidArgumentError("--hsm names no member");
  if (o.parallel < 1 || o.parallel > 256) {
    return absl::InvalidArgumentError("--parallel must be 1..256");
  }
  std::set<std::string> seen;
  for (const auto& m : o.members) {
    if (m.empty() || m.rfind(':') == std::string::npos) {
      return absl::InvalidArgumentError("--hsm: '" + m + "' is not HOST:PORT");
    }
    if (!seen.insert(m).second) {
      return absl::InvalidArgumentError("--hsm names " + m + " twice");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string LineDirectory(const LineOptions& options) {
  if (!options.tray_dir.empty()) return options.tray_dir;
  std::string dir = std::filesystem::path(options.db_path).parent_path().string();
  return dir.empty() ? "." : dir;
}

std::string KeptJobPackagePath(const LineOptions& options) {
  return LineDirectory(options) + "/jobs/" + options.job_id + ".package";
}

std::unique_ptr<LineRecord> RecordOf(DeviceDb& db) { return std::make_unique<DeviceDbRecord>(db); }

absl::StatusOr<LineSummary> RunLine(const LineOptions& options) {
  return RunLineWrapping(options, nullptr);
}

absl::StatusOr<LineSummary> RunLineWrapping(const LineOptions& options,
                                            const ProgrammerWrap& wrap) {
  RETURN_IF_ERROR(CheckOptions(options));
  if (options.tray_dir.empty() && options.db_path.empty()) {
    return absl::InvalidArgumentError("without --tray, --db FILE is required (the line database)");
  }
  ASSIGN_OR_RETURN(
      Station station,
      OpenStation({options.tray_dir, options.chips, options.programmer,
                   LineDirectory(options) + "/exec-work", options.programmer_timeout_seconds}));
  auto group = LineGroupOfClient(options.credentials.chain_pem, options.credentials.root_pem);
  if (!group.ok()) return Annotate(group.status(), "the line's client certificate");
  std::string db_path =
      options.db_path.empty() ? LineDirectory(options) + "/line.db" : options.db_path;
  DatabaseLock lock;
  RETURN_IF_ERROR(lock.Take(db_path));
  ASSIGN_OR_RETURN(std::unique_ptr<DeviceDb> db, DeviceDb::Open(db_path));
  DeviceDbRecord record(*db);
  if (wrap) station.programmer = wrap(std::move(station.programmer));
  std::unique_ptr<MemberLinks> links = MakeGrpcMemberLinks(options.credentials);
  SystemLineClock clock;
  CoreParts parts;
  parts.chips = station.chips.get();
  parts.programmer = station.programmer.get();
  parts.record = &record;
  parts.links = links.get();
  parts.clock = &clock;
  parts.observer = options.observer;
  LineCore core(options, parts, *std::move(group));
  return core.Run();
}

}  // namespace clade::line
