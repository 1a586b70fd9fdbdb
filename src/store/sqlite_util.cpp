#include "store/sqlite_util.h"

#include <sys/stat.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace clade::store::sqlite {
namespace {

bool IsSymlink(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

absl::Status Configure(sqlite3* db, const std::string& path, const OpenOptions& options) {
  const std::string what = "cannot configure " + path;
  RETURN_IF_ERROR(Exec(db, "PRAGMA trusted_schema = OFF", what));
  std::string mode;
  {  // the statement ends here: a COMMIT in `check` fails while it is in progress
    ASSIGN_OR_RETURN(SqliteStatement wal, Prepare(db, "PRAGMA journal_mode = WAL", what));
    ASSIGN_OR_RETURN(bool row, Step(db, wal.get(), what));
    if (row) mode = ColumnText(wal.get(), 0);
  }
  if (mode != "wal") {
    return absl::InternalError(
        absl::StrCat(what, ": journal_mode is \"", mode, "\", not WAL (is it on a network disk?)"));
  }
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous = FULL", what));
  RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys = ON", what));
  if (options.check) return options.check(db);
  return absl::OkStatus();
}

}  // namespace

absl::Status SqliteError(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::PermissionDeniedError(msg);
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(msg);
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::StatusOr<SqliteDb> OpenDatabase(const std::string& path, const OpenOptions& options) {
  int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | (options.create ? SQLITE_OPEN_CREATE : 0);
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqliteDb db(raw);  // owns the handle even when open failed
  if (rc != SQLITE_OK) {
    if (IsSymlink(path)) {
      return absl::FailedPreconditionError(path + " is a symbolic link; refusing to follow it");
    }
    return SqliteError(db.get(), rc, "cannot open " + path);
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_busy_timeout(db.get(), 5000);
  absl::Status configure = Configure(db.get(), path, options);
  for (int i = 0; i < 100 && absl::IsUnavailable(configure); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    configure = Configure(db.get(), path, options);
  }
  RETURN_IF_ERROR(configure);
  return db;
}

absl::StatusOr<SqliteTransaction> SqliteTransaction::Begin(sqlite3* db, TransactionMode mode,
                                                           const std::string& what) {
  RETURN_IF_ERROR(Exec(db, mode == TransactionMode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN", what));
  return SqliteTransaction(db);
}

SqliteTransaction::SqliteTransaction(SqliteTransaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)) {}

SqliteTransaction::~SqliteTransaction() {
  if (db_ != nullptr) Rollback("cannot roll back").IgnoreError();
}

absl::Status SqliteTransaction::Commit(const std::string& what) {
  RETURN_IF_ERROR(Exec(db_, "COMMIT", what));  // a failed COMMIT leaves the transaction open
  db_ = nullptr;
  return absl::OkStatus();
}

absl::Status SqliteTransaction::Rollback(const std::string& what) {
  sqlite3* db = std::exchange(db_, nullptr);
  // Some errors (SQLITE_FULL, SQLITE_IOERR…) end the transaction themselves.
  if (db == nullptr || sqlite3_get_autocommit(db)) return absl::OkStatus();
  return Exec(db, "ROLLBACK", what);
}

absl::Status WithTransaction(sqlite3* db, TransactionMode mode, const std::string& what,
                             const std::function<absl::Status()>& fn) {
  ASSIGN_OR_RETURN(SqliteTransaction tx, SqliteTransaction::Begin(db, mode, what));
  RETURN_IF_ERROR(fn());
  return tx.Commit(what);
}

absl::StatusOr<SqliteStatement> Prepare(sqlite3* db, std::string_view sql,
                                        const std::string& what) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  SqliteStatement stmt(raw);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  if (!stmt) return absl::InternalError(what + ": empty SQL statement");
  return stmt;
}

absl::Status Exec(sqlite3* db, const char* sql, const std::string& what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return absl::OkStatus();
}

absl::Status BindText(sqlite3* db, sqlite3_stmt* stmt, int index, std::string_view text,
                      const std::string& what) {
  // A non-null pointer even for "" so the value binds as empty text, not NULL.
  const char* data = text.empty() ? "" : text.data();
  int rc = sqlite3_bind_text(stmt, index, data, static_cast<int>(text.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return absl::OkStatus();
}

absl::Status BindBlob(sqlite3* db, sqlite3_stmt* stmt, int index, std::span<const uint8_t> blob,
                      const std::string& what) {
  int rc = blob.empty() ? sqlite3_bind_zeroblob(stmt, index, 0)
                        : sqlite3_bind_blob(stmt, index, blob.data(), static_cast<int>(blob.size()),
                                            SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return absl::OkStatus();
}

absl::StatusOr<bool> Step(sqlite3* db, sqlite3_stmt* stmt, const std::string& what) {
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db, rc, what);
}

std::vector<uint8_t> ColumnBlob(sqlite3_stmt* stmt, int column) {
  const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(stmt, column));
  int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size <= 0) return {};
  return std::vector<uint8_t>(data, data + size);
}

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size <= 0) return {};
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace clade::store::sqlite
