// DeviceDb: the line's devices and attempts in one SQLite file (WAL, synchronous=FULL), each method
// one transaction, every statement prepared with bound values.
#include "line/device_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "store/sqlite_util.h"

namespace clade::line {
namespace {

// The SQLite helpers of src/store serve the line's database too.
using store::sqlite::Exec;
using store::sqlite::SqliteDb;
using store::sqlite::SqliteError;
using Statement = store::sqlite::SqliteStatement;

// The schema of version kSchemaVersion. The CHECKs keep a hand edit from writing a status the
// code cannot read back.
constexpr char kSchema[] =
    "CREATE TABLE devices("
    " job_id TEXT NOT NULL, uid TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('pending', 'sent', 'done', 'failed')),"
    " member_id TEXT NOT NULL DEFAULT '', member_serial TEXT NOT NULL DEFAULT '',"
    " cert_serial TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',"
    " updated_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(job_id, uid));"
    "CREATE TABLE attempts("
    " id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, uid TEXT NOT NULL,"
    " member_id TEXT NOT NULL, member_serial TEXT NOT NULL, member_address TEXT NOT NULL,"
    " reissue INTEGER NOT NULL,"
    " outcome TEXT NOT NULL"
    "  CHECK(outcome IN ('open', 'delivered', 'refused', 'program-failed', 'lost')),"
    " cert_serial TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',"
    " started_at INTEGER NOT NULL, ended_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX attempts_by_device ON attempts(job_id, uid);"
    "CREATE INDEX attempts_by_outcome ON attempts(job_id, outcome);";

// A prepared statement with its values bound, stepped row by row. Values are bound in order
// (?1, ?2, …) by Bind(…).
class Query {
 public:
  static absl::StatusOr<Query> Prepare(sqlite3* db, std::string_view sql, std::string what) {
    ASSIGN_OR_RETURN(Statement stmt, store::sqlite::Prepare(db, sql, what));
    return Query(db, std::move(stmt), std::move(what));
  }

  Query& Bind(std::string_view text) {
    if (bind_status_.ok()) {
      bind_status_ = store::sqlite::BindText(db_, stmt_.get(), ++bound_, text, what_);
    }
    return *this;
  }
  Query& Bind(const char* text) { return Bind(std::string_view(text)); }
  Query& Bind(const std::string& text) { return Bind(std::string_view(text)); }
  Query& Bind(int64_t value) {
    Check(sqlite3_bind_int64(stmt_.get(), ++bound_, value));
    return *this;
  }

  // True if a row is ready, false when done.
  absl::StatusOr<bool> Step() {
    if (!bind_status_.ok()) return bind_status_;
    return store::sqlite::Step(db_, stmt_.get(), what_);
  }
  // Runs a statement that returns no rows.
  absl::Status Run() {
    ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return absl::OkStatus();
  }
  // Resets for another run with new values.
  void Reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
    bound_ = 0;
  }

  std::string Text(int column) const { return store::sqlite::ColumnText(stmt_.get(), column); }
  int64_t Int(int column) const { return sqlite3_column_int64(stmt_.get(), column); }

 private:
  Query(sqlite3* db, Statement stmt, std::string what)
      : db_(db), stmt_(std::move(stmt)), what_(std::move(what)) {}
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = SqliteError(db_, rc, what_);
  }

  sqlite3* db_;
  Statement stmt_;
  std::string what_;
  int bound_ = 0;
  absl::Status bind_status_;
};

constexpr const char* kStatusNames[] = {"pending", "sent", "done", "failed"};
constexpr const char* kOutcomeNames[] = {"open", "delivered", "refused", "program-failed", "lost"};

absl::StatusOr<DeviceStatus> StatusFromName(const std::string& name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kStatusNames[i]) return static_cast<DeviceStatus>(i);
  }
  return absl::DataLossError("unknown device status '" + name + "' in the line database");
}

absl::StatusOr<AttemptOutcome> OutcomeFromName(const std::string& name) {
  for (int i = 0; i < 5; ++i) {
    if (name == kOutcomeNames[i]) return static_cast<AttemptOutcome>(i);
  }
  return absl::DataLossError("unknown attempt outcome '" + name + "' in the line database");
}

// Creates FILE empty with mode 0600 unless it exists; SQLite then gives its -wal and -shm files
// the mode of the database file.
absl::Status CreatePrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return absl::OkStatus();  // opened below like any existing file
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  ::close(fd);
  return absl::OkStatus();
}

std::string NotALineDb(const std::string& path, const std::string& why) {
  return path + " is not a Clade line database (" + why + ")";
}

absl::StatusOr<int64_t> SchemaVersion(sqlite3* db, const std::string& what) {
  ASSIGN_OR_RETURN(Query version, Query::Prepare(db, "PRAGMA user_version", what));
  ASSIGN_OR_RETURN(bool row, version.Step());
  return row ? version.Int(0) : 0;
}

// Checks user_version. With `create`, an empty file gets the schema, in a write transaction that
// reads the version again, so two processes creating the same file at once make it once. A file
// already at this version is only read: a reader never waits for the line's writes.
absl::Status CheckSchema(sqlite3* db, const std::string& path, bool create) {
  const std::string what = "cannot read the schema of " + path;
  ASSIGN_OR_RETURN(int64_t v, SchemaVersion(db, what));
  if (v == DeviceDb::kSchemaVersion) return absl::OkStatus();
  auto refuse = [&](int64_t found) {
    return absl::FailedPreconditionError(NotALineDb(path, absl::StrCat("schema version ", found)));
  };
  if (v != 0 || !create) return refuse(v);
  RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", what));
  auto schema = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(int64_t again, SchemaVersion(db, what));
    if (again == DeviceDb::kSchemaVersion) return absl::OkStatus();  // made by another process
    if (again != 0) return refuse(again);
    ASSIGN_OR_RETURN(Query tables, Query::Prepare(db, "SELECT count(*) FROM sqlite_master", what));
    ASSIGN_OR_RETURN(bool row, tables.Step());
    if (row && tables.Int(0) != 0) return refuse(0);  // another program's database
    tables.Reset();
    RETURN_IF_ERROR(Exec(db, kSchema, "cannot create the tables of " + path));
    return Exec(db, absl::StrCat("PRAGMA user_version = ", DeviceDb::kSchemaVersion).c_str(),
                "cannot set the schema version of " + path);
  }();
  if (!schema.ok()) {
    Exec(db, "ROLLBACK", what).IgnoreError();
    return schema;
  }
  return Exec(db, "COMMIT", "cannot commit the schema of " + path);
}

absl::StatusOr<SqliteDb> OpenFile(const std::string& path, bool create) {
  if (create) {
    RETURN_IF_ERROR(CreatePrivateFile(path));
  } else if (!PathExists(path)) {
    return absl::NotFoundError("no line database " + path);
  }
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, nullptr);
  SqliteDb db(raw);  // owns the handle even when open failed
  if (rc != SQLITE_OK) return SqliteError(db.get(), rc, "cannot open " + path);
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  // The runner and a reader (`clade line status`, the sqlite3 shell) may hold the file at once.
  sqlite3_busy_timeout(db.get(), 5000);
  const std::string what = "cannot configure " + path;
  auto configure_once = [&]() -> absl::Status {
    RETURN_IF_ERROR(Exec(db.get(), "PRAGMA trusted_schema = OFF", what));
    std::string mode;
    {  // the statement ends here: a COMMIT below fails while it is in progress
      ASSIGN_OR_RETURN(Query wal, Query::Prepare(db.get(), "PRAGMA journal_mode = WAL", what));
      ASSIGN_OR_RETURN(bool row, wal.Step());
      if (row) mode = wal.Text(0);
    }
    if (mode != "wal") {
      return absl::InternalError(absl::StrCat(what, ": journal_mode is \"", mode,
                                              "\", not WAL (is it on a network disk?)"));
    }
    // FULL: a device recorded done stays done after a power cut (the chip is locked by then).
    RETURN_IF_ERROR(Exec(db.get(), "PRAGMA synchronous = FULL", what));
    return CheckSchema(db.get(), path, create);
  };
  // Switching a new file to WAL takes an exclusive lock, for which SQLite does not always call
  // the busy handler: a reader opening the file at that moment (`clade line status`) or the
  // line opening it while a reader does sees SQLITE_BUSY. Such a clash is retried for up to 5 s.
  absl::Status configure = configure_once();
  for (int i = 0; i < 100 && absl::IsUnavailable(configure); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    configure = configure_once();
  }
  if (absl::IsDataLoss(configure)) {
    // SQLITE_NOTADB (or CORRUPT): "file is not a database".
    std::string why(configure.message());
    if (size_t colon = why.rfind(": "); colon != std::string::npos) why.erase(0, colon + 2);
    return absl::FailedPreconditionError(NotALineDb(path, why));
  }
  RETURN_IF_ERROR(configure);
  return db;
}

// A row of kDeviceColumns.
absl::StatusOr<DeviceRow> DeviceFrom(const Query& q) {
  DeviceRow d;
  d.job_id = q.Text(0);
  d.uid = q.Text(1);
  ASSIGN_OR_RETURN(d.status, StatusFromName(q.Text(2)));
  d.member_id = q.Text(3);
  d.member_serial = q.Text(4);
  d.cert_serial = q.Text(5);
  d.error = q.Text(6);
  d.updated_at = q.Int(7);
  d.attempts = static_cast<int>(q.Int(8));
  return d;
}
constexpr char kDeviceColumns[] =
    "job_id, uid, status, member_id, member_serial, cert_serial, error, updated_at, attempts";

// A row of kAttemptColumns.
absl::StatusOr<AttemptRow> AttemptFrom(const Query& q) {
  AttemptRow a;
  a.id = q.Int(0);
  a.job_id = q.Text(1);
  a.uid = q.Text(2);
  a.member_id = q.Text(3);
  a.member_serial = q.Text(4);
  a.member_address = q.Text(5);
  a.reissue = q.Int(6) != 0;
  ASSIGN_OR_RETURN(a.outcome, OutcomeFromName(q.Text(7)));
  a.cert_serial = q.Text(8);
  a.error = q.Text(9);
  a.started_at = q.Int(10);
  a.ended_at = q.Int(11);
  return a;
}
constexpr char kAttemptColumns[] =
    "id, job_id, uid, member_id, member_serial, member_address, reissue, outcome, cert_serial, "
    "error, started_at, ended_at";

absl::StatusOr<std::optional<DeviceRow>> ReadDevice(sqlite3* db, const std::string& job_id,
                                                    const std::string& uid) {
  ASSIGN_OR_RETURN(Query q,
                   Query::Prepare(db,
                                  absl::StrCat("SELECT ", kDeviceColumns,
                                               " FROM devices WHERE job_id = ?1 AND uid = ?2"),
                                  "cannot read device " + uid));
  q.Bind(job_id).Bind(uid);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::nullopt;
  return DeviceFrom(q);
}

std::string Device(const std::string& job_id, const std::string& uid) {
  return "device " + uid + " of job " + job_id;
}

}  // namespace

const char* DeviceStatusName(DeviceStatus s) {
  auto i = static_cast<size_t>(s);
  return i < std::size(kStatusNames) ? kStatusNames[i] : "?";
}

const char* AttemptOutcomeName(AttemptOutcome o) {
  auto i = static_cast<size_t>(o);
  return i < std::size(kOutcomeNames) ? kOutcomeNames[i] : "?";
}

struct DeviceDb::Impl {
  std::string path;
  SqliteDb db;
  // SQLite's own locking keeps the file whole; this keeps one DeviceDb's transactions from
  // interleaving on its one connection.
  mutable std::mutex mu;

  // Runs `body` inside BEGIN IMMEDIATE … COMMIT; rolls back if it fails.
  absl::Status Write(const std::string& what, const std::function<absl::Status()>& body) {
    RETURN_IF_ERROR(Exec(db.get(), "BEGIN IMMEDIATE", what));
    absl::Status s = body();
    if (s.ok()) s = Exec(db.get(), "COMMIT", what);
    if (!s.ok()) Exec(db.get(), "ROLLBACK", what).IgnoreError();
    return s;
  }
};

DeviceDb::DeviceDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceDb::~DeviceDb() = default;

absl::StatusOr<std::unique_ptr<DeviceDb>> DeviceDb::Open(const std::string& path) {
  ASSIGN_OR_RETURN(SqliteDb db, OpenFile(path, /*create=*/true));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->db = std::move(db);
  return std::unique_ptr<DeviceDb>(new DeviceDb(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<DeviceDb>> DeviceDb::OpenExisting(const std::string& path) {
  ASSIGN_OR_RETURN(SqliteDb db, OpenFile(path, /*create=*/false));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->db = std::move(db);
  return std::unique_ptr<DeviceDb>(new DeviceDb(std::move(impl)));
}

const std::string& DeviceDb::path() const { return impl_->path; }

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
