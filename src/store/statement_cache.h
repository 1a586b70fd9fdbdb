// Internal to src/store: prepared statements kept for the life of one connection, so the
// per-device path does not parse the same SQL again for every row (docs/state.md). A statement
// lent out is reset and its bindings cleared when the lease ends, so it holds no read lock and
// no value past its use.
#pragma once

#include <sqlite3.h>

#include <map>
#include <string>
#include <string_view>

#include "base/status.h"
#include "store/state_store.h"

namespace clade::store::internal {

using sqlite::SqliteStatement;

class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // One use of a statement. Move-only: two owners would reset it under each other.
  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : stmt_(other.stmt_), leased_(other.leased_), owned_(std::move(other.owned_)) {
      other.stmt_ = nullptr;
      other.leased_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease();
    sqlite3_stmt* get() const { return stmt_; }

   private:
    friend class StatementCache;
    Lease(sqlite3_stmt* stmt, bool* leased, SqliteStatement owned)
        : stmt_(stmt), leased_(leased), owned_(std::move(owned)) {}
    sqlite3_stmt* stmt_;
    bool* leased_;           // the cached statement's flag, or null for a one-off
    SqliteStatement owned_;  // set when the cached one was already lent: a one-off statement
  };

  absl::StatusOr<Lease> Get(std::string_view sql, const std::string& what);
  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_;
  struct Entry {
    SqliteStatement stmt;
    bool leased = false;
  };
  std::map<std::string, Entry, std::less<>> statements_;
};

}  // namespace clade::store::internal
