// The one way a Clade database is opened and a transaction run on it (store/sqlite_util.h): a
// symbolic link is refused and its target untouched, every connection gets the same pragmas, and
// a transaction whose work fails leaves no row behind.
#include "store/sqlite_util.h"

#include <unistd.h>

#include "store_test_util.h"

namespace clade::store::test {
namespace {

using sqlite::OpenDatabase;
using sqlite::OpenOptions;
using sqlite::SqliteDb;
using sqlite::TransactionMode;
using sqlite::WithTransaction;

OpenOptions Create() {
  OpenOptions options;
  options.create = true;
  return options;
}

std::string PragmaText(sqlite3* db, const char* pragma) {
  auto stmt = sqlite::Prepare(db, std::string("PRAGMA ") + pragma, pragma);
  EXPECT_TRUE(stmt.ok()) << stmt.status();
  if (!stmt.ok()) return "";
  auto row = sqlite::Step(db, stmt->get(), pragma);
  EXPECT_TRUE(row.ok() && *row) << pragma;
  return sqlite::ColumnText(stmt->get(), 0);
}

int64_t Count(sqlite3* db, const char* table) {
  auto stmt = sqlite::Prepare(db, std::string("SELECT count(*) FROM ") + table, "count");
  EXPECT_TRUE(stmt.ok()) << stmt.status();
  if (!stmt.ok()) return -1;
  auto row = sqlite::Step(db, stmt->get(), "count");
  EXPECT_TRUE(row.ok() && *row);
  return sqlite3_column_int64(stmt->get(), 0);
}

TEST(OpenDatabase, RefusesASymbolicLinkAndLeavesItsTargetAlone) {
  TempDir tmp;
  const std::string victim = tmp.File("victim");
  const std::string link = tmp.File("link.db");
  ASSERT_OK(WriteFileAtomic(victim, std::string("not yours"), 0600));
  ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
  EXPECT_THAT(OpenDatabase(link, Create()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       link + " is a symbolic link; refusing to follow it"));
  ASSERT_OK_AND_ASSIGN(std::string content, ReadFileString(victim));
  EXPECT_EQ(content, "not yours");
}

TEST(OpenDatabase, AMissingFileIsMadeOnlyWhenAskedFor) {
  TempDir tmp;
  EXPECT_THAT(
      OpenDatabase(tmp.File("none.db")),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot open " + tmp.File("none.db"))));
  EXPECT_FALSE(PathExists(tmp.File("none.db")));
  ASSERT_OK(OpenDatabase(tmp.File("new.db"), Create()).status());
  EXPECT_TRUE(PathExists(tmp.File("new.db")));
}

TEST(OpenDatabase, AppliesThePragmasOfEveryConnection) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(SqliteDb db, OpenDatabase(tmp.File("a.db"), Create()));
  EXPECT_EQ(PragmaText(db.get(), "journal_mode"), "wal");
  EXPECT_EQ(PragmaText(db.get(), "synchronous"), "2");  // FULL
  EXPECT_EQ(PragmaText(db.get(), "foreign_keys"), "1");
  EXPECT_EQ(PragmaText(db.get(), "trusted_schema"), "0");
  EXPECT_EQ(PragmaText(db.get(), "busy_timeout"), "5000");
}

TEST(OpenDatabase, RunsTheCallersCheckAndReturnsItsRefusal) {
  TempDir tmp;
  OpenOptions options = Create();
  int calls = 0;
  options.check = [&](sqlite3* db) -> absl::Status {
    ++calls;
    EXPECT_EQ(PragmaText(db, "journal_mode"), "wal");  // after the pragmas
    return absl::FailedPreconditionError("not our schema");
  };
  EXPECT_THAT(OpenDatabase(tmp.File("a.db"), options),
              StatusIs(absl::StatusCode::kFailedPrecondition, "not our schema"));
  EXPECT_EQ(calls, 1);
}

TEST(OpenDatabase, AFileThatIsNoDatabaseIsDataLossNamingIt) {
  TempDir tmp;
  ASSERT_OK(WriteFileAtomic(tmp.File("junk.db"), std::string(4096, 'x'), 0600));
  EXPECT_THAT(OpenDatabase(tmp.File("junk.db")),
              StatusIs(absl::StatusCode::kDataLoss,
                       "cannot configure " + tmp.File("junk.db") + ": file is not a database"));
}

TEST(WithTransaction, AFailingFunctionRollsBackAndLeavesNoRow) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(SqliteDb db, OpenDatabase(tmp.File("a.db"), Create()));
  ASSERT_OK(sqlite::Exec(db.get(), "CREATE TABLE t(x)", "setup"));
  absl::Status s = WithTransaction(db.get(), TransactionMode::kWrite, "cannot add x", [&] {
    RETURN_IF_ERROR(sqlite::Exec(db.get(), "INSERT INTO t VALUES(1)", "insert"));
    return absl::AbortedError("changed my mind");
  });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAborted, "changed my mind"));
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));  // no transaction left open
  EXPECT_EQ(Count(db.get(), "t"), 0);

  ASSERT_OK(WithTransaction(db.get(), TransactionMode::kWrite, "cannot add x", [&] {
    return sqlite::Exec(db.get(), "INSERT INTO t VALUES(2)", "insert");
  }));
  EXPECT_EQ(Count(db.get(), "t"), 1);
}

TEST(SqliteTransaction, OneNeverCommittedIsRolledBackWhenItGoes) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(SqliteDb db, OpenDatabase(tmp.File("a.db"), Create()));
  ASSERT_OK(sqlite::Exec(db.get(), "CREATE TABLE t(x)", "setup"));
  {
    ASSERT_OK_AND_ASSIGN(
        auto tx, sqlite::SqliteTransaction::Begin(db.get(), TransactionMode::kWrite, "begin"));
    ASSERT_OK(sqlite::Exec(db.get(), "INSERT INTO t VALUES(1)", "insert"));
  }
  EXPECT_TRUE(sqlite3_get_autocommit(db.get()));
  EXPECT_EQ(Count(db.get(), "t"), 0);
  // A second BEGIN inside an open one is refused with the caller's words.
  ASSERT_OK_AND_ASSIGN(auto tx,
                       sqlite::SqliteTransaction::Begin(db.get(), TransactionMode::kRead, "begin"));
  EXPECT_THAT(sqlite::SqliteTransaction::Begin(db.get(), TransactionMode::kWrite, "cannot nest"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("cannot nest: ")));
  EXPECT_OK(tx.Commit("commit"));
}

}  // namespace
}  // namespace clade::store::test
