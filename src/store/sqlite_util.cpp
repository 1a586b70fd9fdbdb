#include "store/sqlite_util.h"

namespace clade::store::sqlite {

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
