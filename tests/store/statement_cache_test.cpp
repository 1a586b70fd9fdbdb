// The connection's statement cache: a statement is lent once at a time, comes back reset, and a
// second lease of the same SQL while the first is out gets a statement of its own.
#include "store/statement_cache.h"

#include "store/sqlite_util.h"
#include "store_test_util.h"

namespace clade::store::test {
namespace {

TEST(StatementCache, LendsOneStatementAtATimeAndResetsIt) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
  sqlite::SqliteDb db(raw);
  ASSERT_OK(sqlite::Exec(db.get(), "CREATE TABLE t(x); INSERT INTO t VALUES(1), (2);", "setup"));
  internal::StatementCache cache(db.get());
  sqlite3_stmt* first_stmt = nullptr;
  {
    ASSERT_OK_AND_ASSIGN(auto first, cache.Get("SELECT x FROM t ORDER BY x", "test"));
    first_stmt = first.get();
    ASSERT_EQ(sqlite3_step(first.get()), SQLITE_ROW);
    ASSERT_OK_AND_ASSIGN(auto second, cache.Get("SELECT x FROM t ORDER BY x", "test"));
    EXPECT_NE(second.get(), first.get());
    ASSERT_EQ(sqlite3_step(second.get()), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(second.get(), 0), 1);
  }
  ASSERT_OK_AND_ASSIGN(auto again, cache.Get("SELECT x FROM t ORDER BY x", "test"));
  EXPECT_EQ(again.get(), first_stmt);
  EXPECT_FALSE(sqlite3_stmt_busy(again.get()));  // reset when the first lease ended
  ASSERT_EQ(sqlite3_step(again.get()), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(again.get(), 0), 1);
}

TEST(StatementCache, BadSqlIsAnError) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
  sqlite::SqliteDb db(raw);
  internal::StatementCache cache(db.get());
  EXPECT_THAT(cache.Get("SELEKT 1", "cannot prepare the test"),
              StatusIs(absl::StatusCode::kInternal,
                       "cannot prepare the test: near \"SELEKT\": syntax error"));
}

}  // namespace
}  // namespace clade::store::test
