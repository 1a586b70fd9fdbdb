#include "store/statement_cache.h"

#include "store/sqlite_util.h"

namespace clade::store::internal {

StatementCache::Lease::~Lease() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (leased_ != nullptr) *leased_ = false;
}

absl::StatusOr<StatementCache::Lease> StatementCache::Get(std::string_view sql,
                                                          const std::string& what) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    ASSIGN_OR_RETURN(SqliteStatement stmt, sqlite::Prepare(db_, sql, what));
    it = statements_.emplace(std::string(sql), Entry{std::move(stmt)}).first;
  }
  // Already lent further up the stack: lend a one-off statement instead.
  if (it->second.leased) {
    ASSIGN_OR_RETURN(SqliteStatement stmt, sqlite::Prepare(db_, sql, what));
    sqlite3_stmt* raw = stmt.get();
    return Lease(raw, nullptr, std::move(stmt));
  }
  it->second.leased = true;
  return Lease(it->second.stmt.get(), &it->second.leased, nullptr);
}

}  // namespace clade::store::internal
