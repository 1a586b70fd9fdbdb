// Reconciling the line database with the members' audit logs, with audit reports built by hand:
// every certificate on a chip named exactly once by the member the line recorded, every other
// certificate a member issued explained by an attempt of the line — a lost attempt explains one
// certificate, not two; a program-failed attempt only its own serial — and each problem named.
#include "line/reconcile.h"

#include "support/testing.h"

namespace clade::line {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr char kJob[] = "J-1";

class ReconcileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = DeviceDb::Open(dir_.File("line.db"));
    ASSERT_OK(db);
    db_ = *std::move(db);
    audits_ = {Audit("SN-1", "1.1"), Audit("SN-2", "1.2")};
  }

  static hsm::AuditReport Audit(const std::string& hsm_serial, const std::string& member_id) {
    hsm::AuditReport r;
    r.hsm_serial = hsm_serial;
    r.group_id = "G-acme";
    r.member_id = member_id;
    r.events.push_back({r.group_id, member_id, hsm::audit_op::kJoin, member_id});
    r.events.push_back({r.group_id, member_id, hsm::audit_op::kJobImport, kJob});
    return r;
  }

  hsm::AuditReport& Member(const std::string& member_id) {
    for (auto& a : audits_) {
      if (a.member_id == member_id) return a;
    }
    ADD_FAILURE() << "no audit of " << member_id;
    return audits_.front();
  }

  // An audit entry: member `member_id` issued `serial` for `uid`.
  void Issued(const std::string& member_id, const std::string& uid, const std::string& serial,
              const std::string& job = kJob) {
    hsm::AuditReport& a = Member(member_id);
    a.events.push_back(
        {a.group_id, member_id, hsm::audit_op::kProvision, job + "/" + uid + " serial " + serial});
  }

  // The line sent `uid` to `member_id` and the attempt ended with `outcome`; returns its id.
  int64_t Attempt(const std::string& uid, const std::string& member_id, AttemptOutcome outcome,
                  const std::string& serial = "", const std::string& error = "") {
    auto ids = db_->BeginAttempts(kJob, {{uid, false}}, member_id, "SN-" + member_id.substr(2),
                                  "localhost:1", ++now_);
    EXPECT_OK(ids);
    if (!ids.ok()) return 0;
    DeviceStatus status = outcome == AttemptOutcome::kDelivered ? DeviceStatus::kDone
                          : outcome == AttemptOutcome::kLost    ? DeviceStatus::kPending
                                                                : DeviceStatus::kFailed;
    EXPECT_OK(db_->FinishAttempts({{ids->front(), outcome, serial, error, status}}, ++now_));
    return ids->front();
  }

  // Delivered by the line and named by the member's audit.
  void Delivered(const std::string& uid, const std::string& member_id, const std::string& serial) {
    Attempt(uid, member_id, AttemptOutcome::kDelivered, serial);
    Issued(member_id, uid, serial);
  }

  ReconcileReport Run() {
    auto r = Reconcile(*db_, kJob, audits_);
    EXPECT_OK(r);
    return r.ok() ? *r : ReconcileReport{};
  }

  testing::TempDir dir_;
  std::unique_ptr<DeviceDb> db_;
  std::vector<hsm::AuditReport> audits_;
  int64_t now_ = 1000;
};

TEST_F(ReconcileTest, AllDeliveredReconciles) {
  Delivered("CHIP-1", "1.1", "0a");
  Delivered("CHIP-2", "1.2", "0b");
  Delivered("CHIP-3", "1.2", "0c");
  Issued("1.1", "CHIP-9", "99", "J-OTHER");  // another job's certificate is not this job's concern
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, IsEmpty());
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.done, 3u);
  EXPECT_EQ(r.issued, 3u);
  EXPECT_EQ(r.undelivered, 0u);
  EXPECT_THAT(r.delivered_by_member, ElementsAre(Pair("1.1", 1u), Pair("1.2", 2u)));
  EXPECT_THAT(r.explanations, IsEmpty());
}

TEST_F(ReconcileTest, FailedAndPendingDevicesAreCountedNotProblems) {
  Delivered("CHIP-1", "1.1", "0a");
  Attempt("CHIP-2", "1.1", AttemptOutcome::kRefused, "", "job not imported");
  ASSERT_OK(db_->BeginAttempts(kJob, {{"CHIP-3", false}}, "1.1", "SN-1", "x", 5000));
  ASSERT_OK(db_->MarkFailed(kJob, "CHIP-4", "unreadable", 5000));
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, IsEmpty());
  EXPECT_EQ(r.done, 1u);
  EXPECT_EQ(r.failed, 2u);
  EXPECT_EQ(r.pending, 1u);
}

TEST_F(ReconcileTest, ACertificateNamedTwiceIsAProblem) {
  Delivered("CHIP-1", "1.1", "0a");
  Issued("1.1", "CHIP-1", "0a");
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, ElementsAre("device CHIP-1 is done with serial 0a but that certificate "
                                      "is named by 2 audit entries"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.delivered_by_member, IsEmpty());
}

TEST_F(ReconcileTest, ACertificateNoAuditNamesIsAProblem) {
  Delivered("CHIP-1", "1.1", "0a");
  Attempt("CHIP-2", "1.2", AttemptOutcome::kDelivered, "0b");  // 1.2's log does not name it
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, ElementsAre("device CHIP-2 is done with serial 0b but no audit names "
                                      "that certificate"));
  // The member's audit was not given at all: said so.
  audits_.pop_back();
  r = Run();
  EXPECT_THAT(r.problems,
              ElementsAre("device CHIP-2 is done with serial 0b but no audit names that "
                          "certificate (no audit of member 1.2 was given)"));
}

TEST_F(ReconcileTest, ALostAttemptExplainsOneCertificateNotTwo) {
  const int64_t lost =
      Attempt("CHIP-1", "1.1", AttemptOutcome::kLost, "", "member stopped answering");
  Delivered("CHIP-1", "1.2", "0b");
  Issued("1.1", "CHIP-1", "0a");  // issued by 1.1, whose answer never arrived
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, IsEmpty());
  EXPECT_EQ(r.issued, 2u);
  EXPECT_EQ(r.undelivered, 1u);
  EXPECT_EQ(r.undelivered_explained, 1u);
  EXPECT_THAT(r.explanations,
              ElementsAre("CHIP-1: serial 0a by 1.1 never delivered: member stopped answering "
                          "(attempt " +
                          std::to_string(lost) + ")"));
  EXPECT_THAT(r.delivered_by_member, ElementsAre(Pair("1.2", 1u)));

  // A second certificate for the same chip by 1.1: the one lost attempt does not explain both.
  Issued("1.1", "CHIP-1", "0c");
  r = Run();
  EXPECT_EQ(r.undelivered, 2u);
  EXPECT_EQ(r.undelivered_explained, 1u);
  EXPECT_THAT(r.problems, ElementsAre("member 1.1 issued serial 0c for CHIP-1, which no chip "
                                      "carries and no attempt of this line explains"));
}

TEST_F(ReconcileTest, ALostAttemptExplainsOnlyItsOwnMember) {
  Attempt("CHIP-1", "1.1", AttemptOutcome::kLost, "", "member stopped answering");
  Delivered("CHIP-1", "1.2", "0b");
  Issued("1.2", "CHIP-1", "0d");  // 1.2 issued a second one; the lost attempt was on 1.1
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, ElementsAre("member 1.2 issued serial 0d for CHIP-1, which no chip "
                                      "carries and no attempt of this line explains"));
}

TEST_F(ReconcileTest, AProgramFailedAttemptExplainsItsSerialOnly) {
  const int64_t failed =
      Attempt("CHIP-1", "1.1", AttemptOutcome::kProgramFailed, "0e", "chip CHIP-1: write failed");
  Issued("1.1", "CHIP-1", "0e");
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, IsEmpty());
  EXPECT_EQ(r.failed, 1u);
  EXPECT_THAT(r.explanations, ElementsAre("CHIP-1: serial 0e by 1.1 never delivered: chip CHIP-1: "
                                          "write failed (attempt " +
                                          std::to_string(failed) + ")"));
  // The same attempt does not explain another serial for that chip.
  Issued("1.1", "CHIP-1", "0f");
  r = Run();
  EXPECT_THAT(r.problems, ElementsAre("member 1.1 issued serial 0f for CHIP-1, which no chip "
                                      "carries and no attempt of this line explains"));
  EXPECT_EQ(r.undelivered_explained, 1u);
}

TEST_F(ReconcileTest, AnAnswerTheLineRefusedExplainsItsSerialOnly) {
  const int64_t refused = Attempt("CHIP-1", "1.1", AttemptOutcome::kRefused, "0e",
                                  "the answer of member 1.1 for CHIP-1 is refused: …");
  Issued("1.1", "CHIP-1", "0e");
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, IsEmpty());
  EXPECT_THAT(r.explanations, ElementsAre("CHIP-1: serial 0e by 1.1 never delivered: the answer of "
                                          "member 1.1 for CHIP-1 is refused: … (attempt " +
                                          std::to_string(refused) + ")"));
  Issued("1.1", "CHIP-1", "0f");
  r = Run();
  EXPECT_THAT(r.problems, ElementsAre("member 1.1 issued serial 0f for CHIP-1, which no chip "
                                      "carries and no attempt of this line explains"));
}

TEST_F(ReconcileTest, TheWrongMemberIsAProblem) {
  Attempt("CHIP-1", "1.1", AttemptOutcome::kDelivered, "0a");
  Issued("1.2", "CHIP-1", "0a");  // the line says 1.1 issued it; 1.2's log names it
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, ElementsAre("device CHIP-1 is done with serial 0a from member 1.1 (per "
                                      "the line), but the audit of member 1.2 names that "
                                      "certificate"));
  EXPECT_THAT(r.delivered_by_member, IsEmpty());
}

TEST_F(ReconcileTest, ACertificateForAnotherChipIsAProblem) {
  Attempt("CHIP-1", "1.1", AttemptOutcome::kDelivered, "0a");
  Issued("1.1", "CHIP-2", "0a");
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems, ElementsAre("device CHIP-1 is done with serial 0a but the audit of "
                                      "member 1.1 names that certificate for CHIP-2"));
}

TEST_F(ReconcileTest, SerialsCompareAsNumbers) {
  Attempt("CHIP-1", "1.1", AttemptOutcome::kDelivered, "00AB");
  Issued("1.1", "CHIP-1", "ab");
  EXPECT_THAT(Run().problems, IsEmpty());
}

TEST_F(ReconcileTest, AnExportGivenTwiceIsAProblemAndCountedOnce) {
  Delivered("CHIP-1", "1.1", "0a");
  audits_.push_back(audits_.front());
  ReconcileReport r = Run();
  EXPECT_THAT(r.problems,
              ElementsAre("the audit of HSM SN-1 is given twice (its entries are counted once)"));
  EXPECT_EQ(r.issued, 1u);
  EXPECT_THAT(r.delivered_by_member, ElementsAre(Pair("1.1", 1u)));
}

TEST_F(ReconcileTest, TwoHsmsClaimingOneMemberIdIsAProblem) {
  Delivered("CHIP-1", "1.1", "0a");
  audits_.push_back(Audit("SN-9", "1.1"));
  EXPECT_THAT(Run().problems, ElementsAre("HSMs SN-1 and SN-9 both claim member id 1.1"));
}

TEST_F(ReconcileTest, AnUnreadableProvisionSubjectIsAProblem) {
  hsm::AuditReport& a = Member("1.1");
  a.events.push_back({a.group_id, "1.1", hsm::audit_op::kReissue, std::string(kJob) + "/CHIP-1"});
  EXPECT_THAT(Run().problems, ElementsAre("the audit of HSM SN-1 has a provision.reissue entry "
                                          "that names no uid and serial: 'J-1/CHIP-1'"));
}

}  // namespace
}  // namespace clade::line
