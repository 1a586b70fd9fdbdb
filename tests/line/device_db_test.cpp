// The line database: a file made 0600 with its schema version, rows that survive a reopen, the
// attempt transitions the runner relies on (sent → done / failed / pending, open attempts closed
// as lost at the start of a run, a chip found programmed recovered as done), and the refusals: a
// file of another schema, a file that is not a database, a done device sent or failed again.
#include "line/device_db.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "support/testing.h"

namespace clade::line {
namespace {

using ::clade::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr char kJob[] = "J-1";

class DeviceDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("line.db");
    auto db = DeviceDb::Open(path_);
    ASSERT_OK(db);
    db_ = *std::move(db);
  }

  // Sends `uids` to member 1.2 and returns the attempt ids.
  std::vector<int64_t> Send(const std::vector<std::string>& uids, const std::string& member = "1.2",
                            int64_t now = 100) {
    std::vector<DeviceDb::Send> sends;
    for (const auto& u : uids) sends.push_back({u, false});
    auto ids = db_->BeginAttempts(kJob, sends, member, "SN-" + member, "localhost:1", now);
    EXPECT_OK(ids);
    return ids.ok() ? *ids : std::vector<int64_t>{};
  }

  DeviceRow Row(const std::string& uid) {
    auto devices = db_->Devices(kJob);
    EXPECT_OK(devices);
    if (!devices.ok() || !devices->contains(uid)) {
      ADD_FAILURE() << "no device " << uid;
      return {};
    }
    return devices->at(uid);
  }

  std::vector<std::string> Sql(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    auto collect = [](void* out, int n, char** values, char**) {
      for (int i = 0; i < n; ++i) {
        static_cast<std::vector<std::string>*>(out)->push_back(values[i] ? values[i] : "NULL");
      }
      return 0;
    };
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), collect, &out, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
    return out;
  }

  testing::TempDir dir_;
  std::string path_;
  std::unique_ptr<DeviceDb> db_;
};

TEST_F(DeviceDbTest, CreatesAPrivateFileWithItsSchemaVersion) {
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(Sql("PRAGMA user_version"), ElementsAre("1"));
  EXPECT_THAT(Sql("PRAGMA journal_mode"), ElementsAre("wal"));
  auto jobs = db_->Jobs();
  ASSERT_OK(jobs);
  EXPECT_TRUE(jobs->empty());
}

TEST_F(DeviceDbTest, ReopenKeepsTheRows) {
  auto ids = Send({"CHIP-1", "CHIP-2"});
  ASSERT_THAT(ids, SizeIs(2));
  ASSERT_OK(db_->FinishAttempts(
      {{ids[0], AttemptOutcome::kDelivered, "0a1b", "", DeviceStatus::kDone}}, 200));
  db_.reset();
  auto db = DeviceDb::Open(path_);
  ASSERT_OK(db);
  db_ = *std::move(db);
  DeviceRow one = Row("CHIP-1");
  EXPECT_EQ(one.status, DeviceStatus::kDone);
  EXPECT_EQ(one.cert_serial, "0a1b");
  EXPECT_EQ(one.member_id, "1.2");
  EXPECT_EQ(one.member_serial, "SN-1.2");
  EXPECT_EQ(one.updated_at, 200);
  EXPECT_EQ(Row("CHIP-2").status, DeviceStatus::kSent);
  auto jobs = db_->Jobs();
  ASSERT_OK(jobs);
  EXPECT_THAT(*jobs, ElementsAre(kJob));
  // Readable from the sqlite3 shell by their names.
  EXPECT_THAT(Sql("SELECT count(*) FROM devices WHERE status='done'"), ElementsAre("1"));
  EXPECT_THAT(Sql("SELECT outcome FROM attempts ORDER BY id"), ElementsAre("delivered", "open"));
}

TEST_F(DeviceDbTest, AttemptsMoveDevicesThroughTheirStatuses) {
  auto ids = Send({"A", "B", "C", "D"});
  ASSERT_THAT(ids, SizeIs(4));
  for (const char* uid : {"A", "B", "C", "D"}) {
    EXPECT_EQ(Row(uid).status, DeviceStatus::kSent);
    EXPECT_EQ(Row(uid).attempts, 1);
  }
  ASSERT_OK(db_->FinishAttempts(
      {{ids[0], AttemptOutcome::kDelivered, "01", "", DeviceStatus::kDone},
       {ids[1], AttemptOutcome::kRefused, "", "job J-1 is not on this member",
        DeviceStatus::kFailed},
       {ids[2], AttemptOutcome::kProgramFailed, "03", "chip C: flash write failed",
        DeviceStatus::kFailed},
       {ids[3], AttemptOutcome::kLost, "", "member stopped answering", DeviceStatus::kPending}},
      300));
  EXPECT_EQ(Row("A").status, DeviceStatus::kDone);
  EXPECT_EQ(Row("B").status, DeviceStatus::kFailed);
  EXPECT_EQ(Row("B").error, "job J-1 is not on this member");
  EXPECT_EQ(Row("C").status, DeviceStatus::kFailed);
  EXPECT_EQ(Row("C").cert_serial, "");
  EXPECT_EQ(Row("D").status, DeviceStatus::kPending);

  // D goes to another member and is delivered there.
  auto again = Send({"D"}, "1.1", 400);
  ASSERT_THAT(again, SizeIs(1));
  EXPECT_EQ(Row("D").attempts, 2);
  ASSERT_OK(db_->FinishAttempts(
      {{again[0], AttemptOutcome::kDelivered, "04", "", DeviceStatus::kDone}}, 500));
  EXPECT_EQ(Row("D").member_id, "1.1");

  auto attempts = db_->Attempts(kJob);
  ASSERT_OK(attempts);
  ASSERT_THAT(*attempts, SizeIs(5));
  const AttemptRow& c = (*attempts)[2];
  EXPECT_EQ(c.uid, "C");
  EXPECT_EQ(c.outcome, AttemptOutcome::kProgramFailed);
  EXPECT_EQ(c.cert_serial, "03");
  EXPECT_EQ(c.member_address, "localhost:1");
  EXPECT_EQ(c.started_at, 100);
  EXPECT_EQ(c.ended_at, 300);
  EXPECT_EQ((*attempts)[3].outcome, AttemptOutcome::kLost);
  EXPECT_EQ((*attempts)[4].member_id, "1.1");
}

TEST_F(DeviceDbTest, FinishRefusesTheWholeBatchOnABadEnd) {
  auto ids = Send({"A", "B"});
  ASSERT_THAT(ids, SizeIs(2));
  EXPECT_THAT(
      db_->FinishAttempts({{ids[0], AttemptOutcome::kDelivered, "01", "", DeviceStatus::kDone},
                           {ids[1], AttemptOutcome::kDelivered, "", "", DeviceStatus::kDone}},
                          200),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without a cert serial")));
  EXPECT_EQ(Row("A").status, DeviceStatus::kSent);  // rolled back
  EXPECT_THAT(
      db_->FinishAttempts({{ids[0], AttemptOutcome::kLost, "", "", DeviceStatus::kDone}}, 200),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("done exactly when")));
  EXPECT_THAT(
      db_->FinishAttempts({{999, AttemptOutcome::kLost, "", "", DeviceStatus::kPending}}, 200),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("no attempt 999")));
  ASSERT_OK(
      db_->FinishAttempts({{ids[0], AttemptOutcome::kLost, "", "", DeviceStatus::kPending}}, 200));
  EXPECT_THAT(db_->FinishAttempts(
                  {{ids[0], AttemptOutcome::kDelivered, "01", "", DeviceStatus::kDone}}, 300),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended: lost")));
}

TEST_F(DeviceDbTest, ADoneDeviceIsSentAgainOnlyAsAReissue) {
  auto ids = Send({"A"});
  ASSERT_OK(db_->FinishAttempts(
      {{ids[0], AttemptOutcome::kDelivered, "01", "", DeviceStatus::kDone}}, 200));
  EXPECT_THAT(db_->BeginAttempts(kJob, {{"B", false}, {"A", false}}, "1.2", "SN", "x", 300),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("device A of job J-1 is done (serial 01 by member 1.2)")));
  auto devices = db_->Devices(kJob);
  ASSERT_OK(devices);
  EXPECT_FALSE(devices->contains("B"));  // the whole batch was refused
  EXPECT_THAT(db_->MarkFailed(kJob, "A", "unreadable", 400),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("refusing to mark")));
  EXPECT_OK(db_->BeginAttempts(kJob, {{"A", true}}, "1.2", "SN", "x", 300));
}

TEST_F(DeviceDbTest, MarkFailedRecordsTheReason) {
  ASSERT_OK(db_->MarkFailed(kJob, "X", "chip X: cannot read device.pub", 100));
  EXPECT_EQ(Row("X").status, DeviceStatus::kFailed);
  EXPECT_EQ(Row("X").error, "chip X: cannot read device.pub");
  EXPECT_EQ(Row("X").attempts, 0);
}

TEST_F(DeviceDbTest, CloseOpenAttemptsMakesThemLostAndTheDevicesPending) {
  auto ids = Send({"A", "B", "C"});
  ASSERT_OK(db_->FinishAttempts(
      {{ids[0], AttemptOutcome::kDelivered, "01", "", DeviceStatus::kDone}}, 200));
  auto other = db_->BeginAttempts("J-2", {{"A", false}}, "1.2", "SN", "x", 200);
  ASSERT_OK(other);
  auto closed = db_->CloseOpenAttempts(kJob, "the line stopped", 300);
  ASSERT_OK(closed);
  EXPECT_EQ(*closed, 2u);
  EXPECT_EQ(Row("A").status, DeviceStatus::kDone);
  EXPECT_EQ(Row("B").status, DeviceStatus::kPending);
  EXPECT_EQ(Row("C").status, DeviceStatus::kPending);
  auto attempts = db_->Attempts(kJob);
  ASSERT_OK(attempts);
  EXPECT_EQ((*attempts)[1].outcome, AttemptOutcome::kLost);
  EXPECT_EQ((*attempts)[1].error, "the line stopped");
  EXPECT_EQ((*attempts)[1].ended_at, 300);
  // Another job's open attempt is left alone.
  auto j2 = db_->Attempts("J-2");
  ASSERT_OK(j2);
  EXPECT_EQ((*j2)[0].outcome, AttemptOutcome::kOpen);
  closed = db_->CloseOpenAttempts(kJob, "again", 400);
  ASSERT_OK(closed);
  EXPECT_EQ(*closed, 0u);
}

TEST_F(DeviceDbTest, RecoverDoneTakesTheLatestLostAttempt) {
  Send({"A"}, "1.1", 100);
  ASSERT_OK(db_->CloseOpenAttempts(kJob, "the line stopped", 150));
  Send({"A"}, "1.2", 200);
  ASSERT_OK(db_->CloseOpenAttempts(kJob, "the line stopped", 250));
  ASSERT_OK(db_->RecoverDone(kJob, "A", "0bad", 300));
  DeviceRow a = Row("A");
  EXPECT_EQ(a.status, DeviceStatus::kDone);
  EXPECT_EQ(a.member_id, "1.2");
  EXPECT_EQ(a.cert_serial, "0bad");
  auto attempts = db_->Attempts(kJob);
  ASSERT_OK(attempts);
  EXPECT_EQ((*attempts)[0].outcome, AttemptOutcome::kLost);
  EXPECT_EQ((*attempts)[1].outcome, AttemptOutcome::kDelivered);
  EXPECT_EQ((*attempts)[1].cert_serial, "0bad");
  // Again with the same serial: nothing to do; with another: refused.
  EXPECT_OK(db_->RecoverDone(kJob, "A", "0bad", 400));
  EXPECT_THAT(db_->RecoverDone(kJob, "A", "0ther", 400),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("chip A carries serial 0ther but the line recorded it done with "
                                 "serial 0bad")));
}

TEST_F(DeviceDbTest, RecoverDonePrefersTheProgramFailedAttemptWithThatSerial) {
  auto first = Send({"A"}, "1.1", 100);
  ASSERT_OK(db_->FinishAttempts(
      {{first[0], AttemptOutcome::kProgramFailed, "0c", "timeout", DeviceStatus::kPending}}, 150));
  Send({"A"}, "1.2", 200);
  ASSERT_OK(db_->CloseOpenAttempts(kJob, "the line stopped", 250));
  ASSERT_OK(db_->RecoverDone(kJob, "A", "0c", 300));
  EXPECT_EQ(Row("A").member_id, "1.1");
}

TEST_F(DeviceDbTest, RecoverDoneRefusesAChipThisLineNeverLost) {
  EXPECT_THAT(db_->RecoverDone(kJob, "NEVER-SENT", "01", 100),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("chip NEVER-SENT is locked but this line has no attempt for it")));
  // Sent and refused: the member issued nothing, so that attempt does not account for the chip.
  auto ids = Send({"R"});
  ASSERT_OK(db_->FinishAttempts(
      {{ids[0], AttemptOutcome::kRefused, "", "no", DeviceStatus::kFailed}}, 200));
  EXPECT_THAT(db_->RecoverDone(kJob, "R", "01", 300),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("chip R is locked but this line has no attempt for it")));
  EXPECT_EQ(Row("R").status, DeviceStatus::kFailed);
}

TEST_F(DeviceDbTest, RefusesAnotherSchemaVersion) {
  db_.reset();
  Sql("PRAGMA user_version = 7");
  EXPECT_THAT(DeviceDb::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(path_ + " is not a Clade line database (schema version 7)")));
  // A SQLite file of some other program (tables, no version).
  const std::string other = dir_.File("other.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  EXPECT_THAT(DeviceDb::Open(other),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(other + " is not a Clade line database (schema version 0)")));
}

TEST_F(DeviceDbTest, RefusesAFileThatIsNotADatabase) {
  const std::string text = dir_.File("notes.txt");
  testing::WriteText(text, std::string(4096, 'x') + "\nthis is not a database\n");
  EXPECT_THAT(DeviceDb::Open(text),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(text + " is not a Clade line database (file is not a database)")));
  EXPECT_EQ(testing::ReadText(text).size(), 4096u + 24u);  // left as it was
}

TEST_F(DeviceDbTest, OpenExistingRefusesAMissingFile) {
  const std::string missing = dir_.File("missing.db");
  EXPECT_THAT(DeviceDb::OpenExisting(missing),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no line database " + missing)));
  EXPECT_FALSE(PathExists(missing));
  EXPECT_OK(DeviceDb::OpenExisting(path_));
  const std::string empty = dir_.File("empty.db");
  testing::WriteText(empty, "");
  EXPECT_THAT(DeviceDb::OpenExisting(empty),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(empty + " is not a Clade line database (schema version 0)")));
}

}  // namespace
}  // namespace clade::line
