// Internal to src/line: what the two halves of DeviceDb (device_db.cpp: schema and open;
// device_db_queries.cpp: the reads and writes) share — the bound query, the row readers and the
// connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "line/device_db.h"
#include "store/sqlite_util.h"

namespace clade::line {
namespace device_db_internal {

// The SQLite helpers of src/store serve the line's database too.
using store::sqlite::Exec;
using store::sqlite::SqliteDb;
using store::sqlite::SqliteError;
using Statement = store::sqlite::SqliteStatement;

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

absl::StatusOr<DeviceStatus> StatusFromName(const std::string& name);
absl::StatusOr<AttemptOutcome> OutcomeFromName(const std::string& name);

// A row of kDeviceColumns.
absl::StatusOr<DeviceRow> DeviceFrom(const Query& q);
inline constexpr char kDeviceColumns[] =
    "job_id, uid, status, member_id, member_serial, cert_serial, error, updated_at, attempts";
// A row of kAttemptColumns.
absl::StatusOr<AttemptRow> AttemptFrom(const Query& q);
inline constexpr char kAttemptColumns[] =
    "id, job_id, uid, member_id, member_serial, member_address, reissue, outcome, cert_serial, "
    "error, started_at, ended_at";
absl::StatusOr<std::optional<DeviceRow>> ReadDevice(sqlite3* db, const std::string& job_id,
                                                    const std::string& uid);
// "device U of job J", for messages.
std::string Device(const std::string& job_id, const std::string& uid);

}  // namespace device_db_internal

struct DeviceDb::Impl {
  std::string path;
  device_db_internal::SqliteDb db;
  // SQLite's own locking keeps the file whole; this keeps one DeviceDb's transactions from
  // interleaving on its one connection.
  mutable std::mutex mu;

  // Runs `body` inside BEGIN IMMEDIATE … COMMIT; rolls back if it fails.
  absl::Status Write(const std::string& what, const std::function<absl::Status()>& body) {
    return store::sqlite::WithTransaction(db.get(), store::sqlite::TransactionMode::kWrite, what,
                                          body);
  }
};

}  // namespace clade::line
