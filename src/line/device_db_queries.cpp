// DeviceDb's reads and writes (the schema and opening are device_db.cpp), each method one
// transaction, every statement prepared with bound values.
#include <iterator>
#include <mutex>

#include "line/device_db.h"
#include "line/device_db_internal.h"

namespace clade::line {

using namespace device_db_internal;  // NOLINT: the shared half of DeviceDb

absl::StatusOr<std::vector<std::string>> DeviceDb::Jobs() const {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Query q, Query::Prepare(impl_->db.get(),
                                           "SELECT DISTINCT job_id FROM devices ORDER BY job_id",
                                           "cannot list the jobs of " + impl_->path));
  std::vector<std::string> jobs;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    jobs.push_back(q.Text(0));
  }
  return jobs;
}

absl::StatusOr<std::map<std::string, DeviceRow>> DeviceDb::Devices(
    const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Query q,
                   Query::Prepare(impl_->db.get(),
                                  absl::StrCat("SELECT ", kDeviceColumns,
                                               " FROM devices WHERE job_id = ?1 ORDER BY uid"),
                                  "cannot read the devices of job " + job_id));
  q.Bind(job_id);
  std::map<std::string, DeviceRow> devices;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(DeviceRow d, DeviceFrom(q));
    devices.emplace(d.uid, std::move(d));
  }
  return devices;
}

absl::StatusOr<std::vector<AttemptRow>> DeviceDb::Attempts(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  ASSIGN_OR_RETURN(Query q,
                   Query::Prepare(impl_->db.get(),
                                  absl::StrCat("SELECT ", kAttemptColumns,
                                               " FROM attempts WHERE job_id = ?1 ORDER BY id"),
                                  "cannot read the attempts of job " + job_id));
  q.Bind(job_id);
  std::vector<AttemptRow> attempts;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(AttemptRow a, AttemptFrom(q));
    attempts.push_back(std::move(a));
  }
  return attempts;
}

absl::StatusOr<std::vector<int64_t>> DeviceDb::BeginAttempts(
    const std::string& job_id, const std::vector<Send>& sends, const std::string& member_id,
    const std::string& member_serial, const std::string& member_address, int64_t now) {
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db.get();
  const std::string what = "cannot record the attempts of job " + job_id;
  std::vector<int64_t> ids;
  RETURN_IF_ERROR(impl_->Write(what, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(Query device,
                     Query::Prepare(db,
                                    "INSERT INTO devices(job_id, uid, status, updated_at, attempts)"
                                    " VALUES(?1, ?2, 'sent', ?3, 1)"
                                    " ON CONFLICT(job_id, uid) DO UPDATE SET status = 'sent',"
                                    " updated_at = excluded.updated_at, attempts = attempts + 1",
                                    what));
    ASSIGN_OR_RETURN(Query attempt,
                     Query::Prepare(db,
                                    "INSERT INTO attempts(job_id, uid, member_id, member_serial,"
                                    " member_address, reissue, outcome, started_at)"
                                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7)",
                                    what));
    for (const Send& send : sends) {
      ASSIGN_OR_RETURN(auto earlier, ReadDevice(db, job_id, send.uid));
      if (earlier && earlier->status == DeviceStatus::kDone && !send.reissue) {
        return absl::FailedPreconditionError(absl::StrCat(
            Device(job_id, send.uid), " is done (serial ", earlier->cert_serial, " by member ",
            earlier->member_id, "); it is sent again only as a reissue"));
      }
      device.Reset();
      device.Bind(job_id).Bind(send.uid).Bind(now);
      RETURN_IF_ERROR(device.Run());
      attempt.Reset();
      attempt.Bind(job_id)
          .Bind(send.uid)
          .Bind(member_id)
          .Bind(member_serial)
          .Bind(member_address)
          .Bind(int64_t{send.reissue ? 1 : 0})
          .Bind(now);
      RETURN_IF_ERROR(attempt.Run());
      ids.push_back(sqlite3_last_insert_rowid(db));
    }
    return absl::OkStatus();
  }));
  return ids;
}

absl::Status DeviceDb::FinishAttempts(const std::vector<AttemptEnd>& ends, int64_t now) {
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db.get();
  const std::string what = "cannot record the end of attempts";
  return impl_->Write(what, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(
        Query read,
        Query::Prepare(db, absl::StrCat("SELECT ", kAttemptColumns, " FROM attempts WHERE id = ?1"),
                       what));
    ASSIGN_OR_RETURN(
        Query end, Query::Prepare(db,
                                  "UPDATE attempts SET outcome = ?2, cert_serial = ?3, error = ?4,"
                                  " ended_at = ?5 WHERE id = ?1",
                                  what));
    ASSIGN_OR_RETURN(
        Query device,
        Query::Prepare(
            db,
            "UPDATE devices SET status = ?3, member_id = ?4, member_serial = ?5,"
            " cert_serial = ?6, error = ?7, updated_at = ?8 WHERE job_id = ?1 AND uid = ?2",
            what));
    for (const AttemptEnd& e : ends) {
      const std::string attempt_name = absl::StrCat("attempt ", e.attempt_id);
      read.Reset();
      read.Bind(e.attempt_id);
      ASSIGN_OR_RETURN(bool row, read.Step());
      if (!row) return absl::NotFoundError("no " + attempt_name + " in " + impl_->path);
      ASSIGN_OR_RETURN(AttemptRow a, AttemptFrom(read));
      const std::string named =
          absl::StrCat(attempt_name, " (", a.uid, " to member ", a.member_id, ")");
      if (a.outcome != AttemptOutcome::kOpen) {
        return absl::FailedPreconditionError(
            absl::StrCat(named, " already ended: ", AttemptOutcomeName(a.outcome)));
      }
      if (e.outcome == AttemptOutcome::kOpen) {
        return absl::InvalidArgumentError(named + " cannot end as open");
      }
      const bool delivered = e.outcome == AttemptOutcome::kDelivered;
      if (delivered != (e.device_status == DeviceStatus::kDone)) {
        return absl::InvalidArgumentError(absl::StrCat(
            named, ": a device is done exactly when its attempt is delivered (",
            AttemptOutcomeName(e.outcome), ", ", DeviceStatusName(e.device_status), ")"));
      }
      if (e.device_status == DeviceStatus::kSent) {
        return absl::InvalidArgumentError(named + ": an ended attempt leaves its device not sent");
      }
      if ((delivered || e.outcome == AttemptOutcome::kProgramFailed) && e.cert_serial.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(named, " is ", AttemptOutcomeName(e.outcome), " without a cert serial"));
      }
      end.Reset();
      end.Bind(e.attempt_id)
          .Bind(AttemptOutcomeName(e.outcome))
          .Bind(e.cert_serial)
          .Bind(e.error)
          .Bind(now);
      RETURN_IF_ERROR(end.Run());
      device.Reset();
      device.Bind(a.job_id)
          .Bind(a.uid)
          .Bind(DeviceStatusName(e.device_status))
          .Bind(delivered ? a.member_id : "")
          .Bind(delivered ? a.member_serial : "")
          .Bind(delivered ? e.cert_serial : "")
          .Bind(delivered ? "" : e.error)
          .Bind(now);
      RETURN_IF_ERROR(device.Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<size_t> DeviceDb::CloseOpenAttempts(const std::string& job_id,
                                                   const std::string& why, int64_t now) {
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db.get();
  const std::string what = "cannot close the open attempts of job " + job_id;
  size_t closed = 0;
  RETURN_IF_ERROR(impl_->Write(what, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(
        Query attempts,
        Query::Prepare(db,
                       "UPDATE attempts SET outcome = 'lost', error = ?2, ended_at = ?3"
                       " WHERE job_id = ?1 AND outcome = 'open'",
                       what));
    attempts.Bind(job_id).Bind(why).Bind(now);
    RETURN_IF_ERROR(attempts.Run());
    closed = static_cast<size_t>(sqlite3_changes(db));
    // A device is sent exactly while it has an open attempt.
    ASSIGN_OR_RETURN(Query devices,
                     Query::Prepare(db,
                                    "UPDATE devices SET status = 'pending', error = ?2,"
                                    " updated_at = ?3 WHERE job_id = ?1 AND status = 'sent'",
                                    what));
    devices.Bind(job_id).Bind(why).Bind(now);
    return devices.Run();
  }));
  return closed;
}

absl::Status DeviceDb::RecoverDone(const std::string& job_id, const std::string& uid,
                                   const std::string& cert_serial, int64_t now) {
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db.get();
  const std::string what = "cannot record chip " + uid + " as done";
  return impl_->Write(what, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto device, ReadDevice(db, job_id, uid));
    if (device && device->status == DeviceStatus::kDone) {
      if (device->cert_serial == cert_serial) return absl::OkStatus();
      return absl::FailedPreconditionError(absl::StrCat("chip ", uid, " carries serial ",
                                                        cert_serial, " but the line recorded it ",
                                                        "done with serial ", device->cert_serial));
    }
    // The attempt whose certificate failed to program but is on the chip after all; else the
    // latest attempt whose answer never arrived.
    ASSIGN_OR_RETURN(Query find,
                     Query::Prepare(db,
                                    "SELECT id, member_id, member_serial FROM attempts"
                                    " WHERE job_id = ?1 AND uid = ?2 AND"
                                    " ((outcome = 'program-failed' AND cert_serial = ?3) OR"
                                    "  outcome = 'lost')"
                                    " ORDER BY outcome = 'program-failed' DESC, id DESC LIMIT 1",
                                    what));
    find.Bind(job_id).Bind(uid).Bind(cert_serial);
    ASSIGN_OR_RETURN(bool row, find.Step());
    if (!device || !row) {
      return absl::FailedPreconditionError("chip " + uid +
                                           " is locked but this line has no attempt for it");
    }
    const int64_t id = find.Int(0);
    const std::string member_id = find.Text(1), member_serial = find.Text(2);
    find.Reset();  // done reading before the table changes
    ASSIGN_OR_RETURN(Query end, Query::Prepare(db,
                                               "UPDATE attempts SET outcome = 'delivered',"
                                               " cert_serial = ?2, ended_at = ?3 WHERE id = ?1",
                                               what));
    end.Bind(id).Bind(cert_serial).Bind(now);
    RETURN_IF_ERROR(end.Run());
    ASSIGN_OR_RETURN(Query done,
                     Query::Prepare(db,
                                    "UPDATE devices SET status = 'done', member_id = ?3,"
                                    " member_serial = ?4, cert_serial = ?5, error = '',"
                                    " updated_at = ?6 WHERE job_id = ?1 AND uid = ?2",
                                    what));
    done.Bind(job_id).Bind(uid).Bind(member_id).Bind(member_serial).Bind(cert_serial).Bind(now);
    return done.Run();
  });
}

absl::Status DeviceDb::MarkFailed(const std::string& job_id, const std::string& uid,
                                  const std::string& error, int64_t now) {
  std::lock_guard lock(impl_->mu);
  sqlite3* db = impl_->db.get();
  const std::string what = "cannot mark " + Device(job_id, uid) + " failed";
  return impl_->Write(what, [&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto device, ReadDevice(db, job_id, uid));
    if (device && device->status == DeviceStatus::kDone) {
      return absl::FailedPreconditionError(absl::StrCat(Device(job_id, uid), " is done (serial ",
                                                        device->cert_serial,
                                                        "); refusing to mark it failed"));
    }
    ASSIGN_OR_RETURN(Query q, Query::Prepare(db,
                                             "INSERT INTO devices(job_id, uid, status, error,"
                                             " updated_at) VALUES(?1, ?2, 'failed', ?3, ?4)"
                                             " ON CONFLICT(job_id, uid) DO UPDATE SET"
                                             " status = 'failed', member_id = '',"
                                             " member_serial = '', cert_serial = '',"
                                             " error = excluded.error,"
                                             " updated_at = excluded.updated_at",
                                             what));
    q.Bind(job_id).Bind(uid).Bind(error).Bind(now);
    return q.Run();
  });
}

}  // namespace clade::line
