// Public to the layers with an arrow to store (docs/architecture.md): owners of SQLite handles and
// small helpers over the sqlite3 C API that turn result codes into absl::Status values naming what
// failed and carrying SQLite's own message. Used by src/store and by the line's own database
// (src/line/device_db.cpp); not a general database API.
#pragma once

#include <sqlite3.h>

#include <cstdint>
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
