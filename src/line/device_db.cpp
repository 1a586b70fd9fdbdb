// DeviceDb: the line's devices and attempts in one SQLite file (WAL, synchronous=FULL), each method
// one transaction, every statement prepared with bound values.
#include "line/device_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "line/device_db_internal.h"
#include "store/sqlite_util.h"

namespace clade::line {

using namespace device_db_internal;  // NOLINT: the shared half of DeviceDb

namespace {

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

constexpr const char* kStatusNames[] = {"pending", "sent", "done", "failed"};
constexpr const char* kOutcomeNames[] = {"open", "delivered", "refused", "program-failed", "lost"};

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
  ASSIGN_OR_RETURN(
      store::sqlite::SqliteTransaction tx,
      store::sqlite::SqliteTransaction::Begin(db, store::sqlite::TransactionMode::kWrite, what));
  ASSIGN_OR_RETURN(int64_t again, SchemaVersion(db, what));
  if (again == DeviceDb::kSchemaVersion) return absl::OkStatus();  // made by another process
  if (again != 0) return refuse(again);
  {
    ASSIGN_OR_RETURN(Query tables, Query::Prepare(db, "SELECT count(*) FROM sqlite_master", what));
    ASSIGN_OR_RETURN(bool row, tables.Step());
    if (row && tables.Int(0) != 0) return refuse(0);  // another program's database
  }
  RETURN_IF_ERROR(Exec(db, kSchema, "cannot create the tables of " + path));
  RETURN_IF_ERROR(Exec(db, absl::StrCat("PRAGMA user_version = ", DeviceDb::kSchemaVersion).c_str(),
                       "cannot set the schema version of " + path));
  return tx.Commit("cannot commit the schema of " + path);
}

absl::StatusOr<SqliteDb> OpenFile(const std::string& path, bool create) {
  if (create) {
    RETURN_IF_ERROR(CreatePrivateFile(path));
  } else if (!PathExists(path)) {
    return absl::NotFoundError("no line database " + path);
  }
  // The runner and a reader (`clade line status`, the sqlite3 shell) may hold the file at once:
  // OpenDatabase waits on the busy timeout and retries the configuration and the schema check.
  // FULL synchronous: a device recorded done stays done after a power cut (the chip is locked by
  // then).
  store::sqlite::OpenOptions options;
  options.check = [&](sqlite3* db) { return CheckSchema(db, path, create); };
  absl::StatusOr<SqliteDb> db = store::sqlite::OpenDatabase(path, options);
  absl::Status configure = db.status();
  if (absl::IsDataLoss(configure)) {
    // SQLITE_NOTADB (or CORRUPT): "file is not a database".
    std::string why(configure.message());
    if (size_t colon = why.rfind(": "); colon != std::string::npos) why.erase(0, colon + 2);
    return absl::FailedPreconditionError(NotALineDb(path, why));
  }
  return db;
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

namespace device_db_internal {

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

}  // namespace device_db_internal

}  // namespace clade::line
