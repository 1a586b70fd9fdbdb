// The line's record of devices (SQLite, WAL, synchronous=FULL): one row per (job, uid) with its
// status, and one row per attempt — each time the line sent a device to a member. Attempts are
// what explains, at reconciliation, a certificate a member issued that no chip carries: the member
// stopped answering before its answer arrived, or the programmer failed after it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace clade::line {

enum class DeviceStatus { kPending, kSent, kDone, kFailed };
const char* DeviceStatusName(DeviceStatus s);  // "pending", "sent", "done", "failed"

struct DeviceRow {
  std::string job_id, uid;
  DeviceStatus status = DeviceStatus::kPending;
  std::string member_id;      // done: the member whose certificate the chip carries
  std::string member_serial;  // that member's HSM serial
  std::string cert_serial;    // done: the certificate serial on the chip
  std::string error;          // failed: why
  int64_t updated_at = 0;
  int attempts = 0;
};

// How an attempt ended.
enum class AttemptOutcome {
  kOpen,           // sent, no answer yet
  kDelivered,      // answered with a certificate and the chip was programmed
  kRefused,        // the member answered with an error: it issued nothing
  kProgramFailed,  // answered with a certificate (cert_serial set); programming failed
  kLost,           // no answer: the member (or the line) stopped; the member may have issued one
};
const char* AttemptOutcomeName(AttemptOutcome o);  // "open", "delivered", "refused",
                                                   // "program-failed", "lost"

struct AttemptRow {
  int64_t id = 0;
  std::string job_id, uid, member_id, member_serial, member_address;
  bool reissue = false;
  AttemptOutcome outcome = AttemptOutcome::kOpen;
  std::string cert_serial;  // delivered / program-failed
  std::string error;
  int64_t started_at = 0, ended_at = 0;
};

// One attempt's end, for Finish.
struct AttemptEnd {
  int64_t attempt_id = 0;
  AttemptOutcome outcome = AttemptOutcome::kLost;
  std::string cert_serial;
  std::string error;
  // The device's new status: kDone (delivered), kFailed (refused or program failure the line
  // gives up on), kPending (lost: to be sent again).
  DeviceStatus device_status = DeviceStatus::kPending;
};

// The file: tables `devices` and `attempts` (columns as the rows above; status and outcome as
// their text names, so `sqlite3 line.db "select count(*) from devices where status='done'"` works
// while the line runs), the schema version in PRAGMA user_version. Every method is one
// transaction, whole or not at all. Calls are serialized by a mutex; the runner uses one DeviceDb
// from one thread.
class DeviceDb {
 public:
  static constexpr int kSchemaVersion = 1;

  // Opens or creates FILE (mode 0600, parent must exist). Refuses a file that is not a line
  // database of this schema version, naming the file: "FILE is not a Clade line database (schema
  // version N)", or "(…: file is not a database)" for a file SQLite cannot read.
  static absl::StatusOr<std::unique_ptr<DeviceDb>> Open(const std::string& path);
  // The same, but a missing FILE is NotFound ("no line database FILE") and an empty one refused,
  // never given a schema: for the commands that only read (`clade line status`, `clade line
  // reconcile`). Opening never waits for the line's writes.
  static absl::StatusOr<std::unique_ptr<DeviceDb>> OpenExisting(const std::string& path);
  ~DeviceDb();
  DeviceDb(const DeviceDb&) = delete;
  DeviceDb& operator=(const DeviceDb&) = delete;

  const std::string& path() const;

  // The job ids that have devices, ordered.
  absl::StatusOr<std::vector<std::string>> Jobs() const;
  // Every row of the job, by uid.
  absl::StatusOr<std::map<std::string, DeviceRow>> Devices(const std::string& job_id) const;
  // Every attempt of the job, by id (the order they began).
  absl::StatusOr<std::vector<AttemptRow>> Attempts(const std::string& job_id) const;

  // One transaction: an attempt row (outcome open) per uid and the devices set to kSent (created
  // when missing), their attempt count incremented. Returns the attempt ids, in the order of
  // `sends`. Refuses (FailedPrecondition, nothing written) a done device sent without `reissue`:
  // its chip already carries a certificate.
  struct Send {
    std::string uid;
    bool reissue = false;
  };
  absl::StatusOr<std::vector<int64_t>> BeginAttempts(
      const std::string& job_id, const std::vector<Send>& sends, const std::string& member_id,
      const std::string& member_serial, const std::string& member_address, int64_t now);

  // One transaction: ends the attempts and sets each device's status (done: member and cert serial
  // of the attempt; failed or pending: the error, no member or serial). Refuses the whole batch
  // (nothing written) for an unknown attempt id, an attempt already ended, an end whose outcome is
  // kOpen, or kDelivered without a cert serial or without device status kDone (and kDone without
  // kDelivered).
  absl::Status FinishAttempts(const std::vector<AttemptEnd>& ends, int64_t now);

  // At the start of a run: every attempt still open (the line stopped while it was in flight)
  // becomes lost with `why`, and its device pending. Returns how many.
  absl::StatusOr<size_t> CloseOpenAttempts(const std::string& job_id, const std::string& why,
                                           int64_t now);

  // Resume: a chip found programmed (lock bit set, certificate serial S) whose device is not done —
  // the line stopped between programming the chip and recording it. The device's program-failed
  // attempt with serial S, if any, else its latest lost attempt, becomes delivered with S and the
  // device done with that attempt's member. Refuses (FailedPrecondition, "chip U is locked but
  // this line has no attempt for it") when the device has no such attempt: the chip was
  // programmed by someone else. A device already done with S is left as it is; done with another
  // serial is refused.
  absl::Status RecoverDone(const std::string& job_id, const std::string& uid,
                           const std::string& cert_serial, int64_t now);

  // Marks a device failed without an attempt (e.g. the chip could not be read); created when
  // missing. Refuses a done device.
  absl::Status MarkFailed(const std::string& job_id, const std::string& uid,
                          const std::string& error, int64_t now);

 private:
  struct Impl;
  explicit DeviceDb(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clade::line
