// Public to the layers with an arrow to store (docs/architecture.md): owners of SQLite handles,
// the one way a Clade database file is opened (OpenDatabase) and a transaction run on it
// (SqliteTransaction, WithTransaction), and small helpers over the sqlite3 C API that turn result
// codes into absl::Status values naming what failed and carrying SQLite's own message. Used by
// src/store (state.db) and by the line's own database (src/line/device_db.cpp); not a general
// database API.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace clade::store::sqlite {

// Owners of SQLite handles. Move-only on purpose: a copied handle would be closed or finalized
// twice, and a connection must outlive exactly one owner.
struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;
using SqliteStatement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

// "<what>: <sqlite3_errmsg>", with a status code chosen from the SQLite result code.
absl::Status SqliteError(sqlite3* db, int rc, const std::string& what);

struct OpenOptions {
  // SQLITE_OPEN_CREATE: a missing file is made. Without it a missing file is an error.
  bool create = false;
  // Run after the pragmas, on the configured connection (the caller's schema check), and retried
  // with them while the database is busy.
  std::function<absl::Status(sqlite3*)> check;
};

// Opens PATH read-write and configures the connection the way every Clade database is used:
//   - a PATH that is a symbolic link is refused, never followed (SQLITE_OPEN_NOFOLLOW):
//     FailedPrecondition "PATH is a symbolic link; refusing to follow it";
//   - extended result codes, SQLITE_DBCONFIG_DEFENSIVE, a 5 s busy timeout (a writer and a
//     reader, or two processes, may hold the file at once);
//   - PRAGMA trusted_schema = OFF (no SQL function runs from a planted schema), journal_mode =
//     WAL (refused, naming the mode, when SQLite falls back, e.g. on a network disk),
//     synchronous = FULL (a committed row survives a power cut) and foreign_keys = ON.
// Switching a new file to WAL takes an exclusive lock for which SQLite does not always call the
// busy handler, so a configuration that meets SQLITE_BUSY is retried for up to 5 s. Errors are
// "cannot open PATH: …" and "cannot configure PATH: …".
absl::StatusOr<SqliteDb> OpenDatabase(const std::string& path, const OpenOptions& options = {});

enum class TransactionMode {
  kRead,   // BEGIN: takes its locks as it reads
  kWrite,  // BEGIN IMMEDIATE: takes the write lock at once, so writers queue on the busy timeout
           // rather than fail at their first write
};

// One transaction on a connection: Begin starts it, Commit ends it, and one that was neither
// committed nor rolled back is rolled back when its owner goes (on every error path). Move-only:
// a copy would roll back or commit the same transaction twice.
class SqliteTransaction {
 public:
  // "<what>: <sqlite3_errmsg>" when BEGIN fails.
  static absl::StatusOr<SqliteTransaction> Begin(sqlite3* db, TransactionMode mode,
                                                 const std::string& what);
  SqliteTransaction(SqliteTransaction&& other) noexcept;
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  ~SqliteTransaction();

  absl::Status Commit(const std::string& what);
  // Rolls back now, if SQLite has not already ended the transaction on an error.
  absl::Status Rollback(const std::string& what);

 private:
  explicit SqliteTransaction(sqlite3* db) : db_(db) {}
  sqlite3* db_;  // null once committed or rolled back
};

// Runs fn inside one transaction of MODE and commits it; when fn or the commit fails, rolls back
// and returns that error. WHAT names the work in every error ("<what>: <sqlite3_errmsg>").
absl::Status WithTransaction(sqlite3* db, TransactionMode mode, const std::string& what,
                             const std::function<absl::Status()>& fn);

absl::StatusOr<SqliteStatement> Prepare(sqlite3* db, std::string_view sql, const std::string& what);
// Runs SQL without results (or whose results are ignored).
absl::Status Exec(sqlite3* db, const char* sql, const std::string& what);

absl::Status BindText(sqlite3* db, sqlite3_stmt* stmt, int index, std::string_view text,
                      const std::string& what);
absl::Status BindBlob(sqlite3* db, sqlite3_stmt* stmt, int index, std::span<const uint8_t> blob,
                      const std::string& what);

// Steps a statement: true if a row is ready, false when done, an error otherwise.
absl::StatusOr<bool> Step(sqlite3* db, sqlite3_stmt* stmt, const std::string& what);

std::vector<uint8_t> ColumnBlob(sqlite3_stmt* stmt, int column);
std::string ColumnText(sqlite3_stmt* stmt, int column);

}  // namespace clade::store::sqlite
