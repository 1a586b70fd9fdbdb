// Group statements (revocation, group-wide): one attack per check, each asserting the refusal
// (code and text) and that the receiving member's whole state is unchanged; and the effects of a
// held statement on VerifyClientCert, Admit, peer calls and audit verification.
#include "hsm/group_statement.h"

#include <algorithm>
#include <cctype>

#include "clade/v1/statement.pb.h"
#include "hsm/audit.h"
#include "hsm/client_cert.h"
#include "hsm/internal/group_records.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using testing::AsSpan;
using testing::Bytes;
using ::testing::HasSubstr;
using testing::PayloadOf;
using testing::SealAs;
using testing::Take;

constexpr auto kDenied = absl::StatusCode::kPermissionDenied;

class StatementTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    a_ = &Make("SN-A");
    b_ = &Make("SN-B");
    c_ = &Make("SN-C");
    g_ = Found(*a_, "revoking");
    ASSERT_EQ(Enroll(*a_, *b_, g_), "1.1");
    ASSERT_EQ(Enroll(*a_, *c_, g_), "1.2");
  }

  Bytes Revoke(Hsm& on, const std::string& member, int64_t at = 0) {
    if (at != 0) clock_.Set(at);
    auto st = RevokeMember(on, g_, member, "");
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? st->message : Bytes{};
  }

  // Signs `s` with the group signing key held by `member` of `group`: what only a holder of the
  // group's keys can make.
  Bytes SignAsGroup(Hsm& member, const std::string& group, const v1::GroupStatement& s,
                    bool with_member_key = false) {
    auto exp = ExportGroup(member, group);
    EXPECT_TRUE(exp.ok()) << exp.status();
    std::optional<crypto::PrivateKey> key;
    absl::Status st = member.state().Read([&](store::Transaction& tx) -> absl::Status {
      ASSIGN_OR_RETURN(auto keys, internal::LoadGroupKeys(tx, group));
      key.emplace(std::move(keys.signing));
      return absl::OkStatus();
    });
    EXPECT_TRUE(st.ok()) << st;
    std::vector<crypto::Certificate> chain{with_member_key ? exp->member : exp->signing};
    chain.insert(chain.end(), exp->group_ca_chain.begin(), exp->group_ca_chain.end());
    std::string payload = s.SerializeAsString();
    absl::StatusOr<Bytes> sealed;
    if (with_member_key) {
      auto identity = member.IdentityKey();
      EXPECT_TRUE(identity.ok());
      sealed = wire::SealMessage(kStatementType, AsSpan(payload), *identity, chain);
    } else {
      sealed = wire::SealMessage(kStatementType, AsSpan(payload), *key, chain);
    }
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : Bytes{};
  }

  v1::GroupStatement PayloadOfStatement(const Bytes& msg) {
    auto p = PayloadOf<v1::GroupStatement>(msg);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : v1::GroupStatement{};
  }

  Hsm* a_ = nullptr;  // SN-A, founder (1)
  Hsm* b_ = nullptr;  // SN-B, 1.1
  Hsm* c_ = nullptr;  // SN-C, 1.2
  std::string g_;
};

TEST_F(StatementTest, RevocationIsSignedNumberedAndAdoptedOnceByAnotherMember) {
  Bytes st = Revoke(*a_, "1.1");
  auto verified = VerifyStatement(st, ExportGroup(*c_, g_)->group_ca_chain, c_->supplier_root());
  ASSERT_OK(verified);
  EXPECT_EQ(verified->sequence, 1u);
  EXPECT_EQ(verified->issuer_member_id, "1");
  ASSERT_NE(verified->IsMemberRevoked("1.1"), nullptr);
  EXPECT_EQ(verified->IsMemberRevoked("1.1")->hsm_serial, "SN-B");
  EXPECT_EQ(verified->IsMemberRevoked("1.2"), nullptr);

  auto first = AcceptStatement(*c_, st);
  ASSERT_OK(first);
  EXPECT_EQ(first->outcome, Adoption::kAdopted);
  auto before = Take(*c_);
  auto again = AcceptStatement(*c_, st);
  ASSERT_OK(again);
  EXPECT_EQ(again->outcome, Adoption::kUnchanged);
  EXPECT_EQ(Take(*c_), before);

  // The next statement keeps the revocation and adds to it.
  auto next = RevokeClient(*a_, g_, "00AB12");
  ASSERT_OK(next);
  EXPECT_EQ(next->sequence, 2u);
  auto adopted = AcceptStatement(*c_, next->message);
  ASSERT_OK(adopted);
  EXPECT_NE(adopted->statement.IsMemberRevoked("1.1"), nullptr);
  EXPECT_NE(adopted->statement.IsClientRevoked("ab12"), nullptr);
}

TEST_F(StatementTest, AcceptRefusesStatementSignedByAnotherGroup) {
  Hsm& d = Make("SN-D");
  std::string other = Found(d, "other");
  Bytes genuine = Revoke(*a_, "1.1");
  v1::GroupStatement s =
      PayloadOfStatement(genuine);  // names g_, signed with the other group's key
  Bytes forged = SignAsGroup(d, other, s);
  auto before = Take(*c_);
  EXPECT_THAT(AcceptStatement(*c_, forged),
              StatusIs(kDenied, HasSubstr("statement is not signed by group " + g_ +
                                          ": its signer chain holds another group CA")));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, AcceptRefusesStatementNotSignedByTheGroupSigningKey) {
  v1::GroupStatement s = PayloadOfStatement(Revoke(*a_, "1.1"));
  auto before = Take(*c_);
  // Signed by the founder's identity key, with its identity chain.
  auto by_identity = SealAs(*a_, kStatementType, s);
  ASSERT_OK(by_identity);
  EXPECT_THAT(AcceptStatement(*c_, *by_identity),
              StatusIs(kDenied, HasSubstr("statement is not signed by the group signing key of "
                                          "group " +
                                          g_)));
  // Signed by a member key, with the member certificate in the signing certificate's place.
  Bytes by_member = SignAsGroup(*a_, g_, s, /*with_member_key=*/true);
  EXPECT_THAT(AcceptStatement(*c_, by_member),
              StatusIs(kDenied, HasSubstr("statement is not signed by the group signing key of "
                                          "group " +
                                          g_)));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, AcceptRefusesReplayedOlderStatement) {
  Bytes first = Revoke(*a_, "1.1");
  auto second = RevokeClient(*a_, g_, "ab12");
  ASSERT_OK(second);
  ASSERT_OK(AcceptStatement(*c_, second->message));
  auto before = Take(*c_);
  EXPECT_THAT(AcceptStatement(*c_, first),
              StatusIs(kDenied, HasSubstr("statement 1 is older than the held statement 2")));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, AcceptRefusesForkOfTheSameSequence) {
  // Two members each issue statement 1, with other content.
  Bytes from_a = Revoke(*a_, "1.2");
  auto from_b = RevokeClient(*b_, g_, "cafe");
  ASSERT_OK(from_b);
  ASSERT_EQ(from_b->sequence, 1u);
  ASSERT_OK(AcceptStatement(*c_, from_b->message));
  auto before = Take(*c_);
  EXPECT_THAT(
      AcceptStatement(*c_, from_a),
      StatusIs(kDenied, HasSubstr("statement 1 differs from the held statement 1 (a fork")));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, AcceptRefusesNewerStatementThatDropsARevocation) {
  Bytes first = Revoke(*a_, "1.1");
  ASSERT_OK(AcceptStatement(*c_, first));
  v1::GroupStatement s = PayloadOfStatement(first);
  s.set_sequence(2);
  s.clear_revoked_members();  // 1.1, with the group key it still holds, signs itself back in
  s.set_issuer_member_id("1.2");
  Bytes forged = SignAsGroup(*b_, g_, s);
  auto before = Take(*c_);
  EXPECT_THAT(AcceptStatement(*c_, forged),
              StatusIs(kDenied, HasSubstr("statement 2 drops the revocation of member 1.1 that "
                                          "statement 1 holds")));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, AcceptRefusesStatementIssuedByARevokedMember) {
  Bytes first = Revoke(*a_, "1.1");
  ASSERT_OK(AcceptStatement(*c_, first));
  v1::GroupStatement s = PayloadOfStatement(first);
  s.set_sequence(2);
  s.set_issuer_member_id("1.1");
  s.add_denied_serials("SN-C");
  Bytes forged = SignAsGroup(*b_, g_, s);
  auto before = Take(*c_);
  EXPECT_THAT(AcceptStatement(*c_, forged),
              StatusIs(kDenied, HasSubstr("statement 2 is issued by member 1.1, revoked by "
                                          "statement 1")));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, AcceptRefusesStatementOfAnotherGroup) {
  Hsm& d = Make("SN-D");
  std::string other = Found(d, "other");
  auto theirs = RevokeClient(d, other, "beef");
  ASSERT_OK(theirs);
  auto before = Take(*c_);
  EXPECT_THAT(
      AcceptStatement(*c_, theirs->message),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("statement is for group " + other +
                                                      ", which this HSM is not a member of")));
  EXPECT_EQ(Take(*c_), before);
  // Checked against this group's CA, it is another group's.
  EXPECT_THAT(
      VerifyStatement(theirs->message, ExportGroup(*c_, g_)->group_ca_chain, c_->supplier_root()),
      StatusIs(kDenied, HasSubstr("statement is for group " + other + ", not group " + g_)));
}

TEST_F(StatementTest, AcceptRefusesTruncatedStatement) {
  Bytes st = Revoke(*a_, "1.1");
  Bytes cut(st.begin(), st.begin() + static_cast<std::ptrdiff_t>(st.size() / 2));
  auto before = Take(*c_);
  EXPECT_THAT(AcceptStatement(*c_, cut),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed message")));
  EXPECT_EQ(Take(*c_), before);
}

TEST_F(StatementTest, RevokedMembersClientsAreRefusedByVerifyClientCert) {
  auto line_of_b = IssueClientCert(*b_, g_, ClientRole::kLine);
  ASSERT_OK(line_of_b);
  auto line_of_a = IssueClientCert(*a_, g_, ClientRole::kLine);
  ASSERT_OK(line_of_a);
  ASSERT_OK(VerifyClientCert(*c_, line_of_b->chain[0]));
  ASSERT_OK(AcceptStatement(*c_, Revoke(*a_, "1.1")));
  EXPECT_THAT(VerifyClientCert(*c_, line_of_b->chain[0]),
              StatusIs(kDenied, HasSubstr("was issued by member 1.1, revoked in group " + g_)));
  EXPECT_OK(VerifyClientCert(*c_, line_of_a->chain[0]));

  // One client certificate, by serial.
  auto st = RevokeClient(*a_, g_, line_of_a->chain[0].SerialHex());
  ASSERT_OK(st);
  ASSERT_OK(AcceptStatement(*c_, st->message));
  // Statements keep serials in one form, lower-case hex without leading zeros (a random serial
  // starts with a zero digit one time in sixteen).
  std::string serial = line_of_a->chain[0].SerialHex();
  std::transform(serial.begin(), serial.end(), serial.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  serial.erase(0, std::min(serial.find_first_not_of('0'), serial.size() - 1));
  EXPECT_THAT(VerifyClientCert(*c_, line_of_a->chain[0]),
              StatusIs(kDenied, HasSubstr("(serial " + serial + ") is revoked in group " + g_)));
}

TEST_F(StatementTest, ClientCertificatesNameTheirIssuerAndLastThirtyDays) {
  auto c = IssueClientCert(*b_, g_, ClientRole::kOperator);
  ASSERT_OK(c);
  auto ext = c->chain[0].Extension(ClientIssuerExtensionOid());
  ASSERT_TRUE(ext.has_value());
  EXPECT_LE(c->chain[0].NotAfter(), clock_.Now() + kDefaultClientValidity);
  EXPECT_GT(c->chain[0].NotAfter(), clock_.Now() + kDefaultClientValidity - 120);
}

TEST_F(StatementTest, DeniedSerialIsRefusedByAdmitOnAMemberEnrolledAfterTheDeny) {
  Hsm& x = Make("SN-X");
  Hsm& e = Make("SN-E");
  ASSERT_OK(DenySerial(*a_, g_, "SN-X"));
  ASSERT_EQ(Enroll(*a_, e, g_), "1.3");  // the enrollment response carries the statement
  auto held = HeldStatement(e, g_);
  ASSERT_OK(held);
  ASSERT_TRUE(held->has_value());
  clock_.Set(t0_);
  auto ann = Announce(e, g_, 3600);
  ASSERT_OK(ann);
  clock_.Set(t0_ + 1);
  auto req = RequestEnrollment(x, *ann);
  ASSERT_OK(req);
  auto before = Take(e);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(e, *req),
              StatusIs(kDenied, HasSubstr("candidate SN-X is denied by group statement 1")));
  EXPECT_EQ(Take(e), before);
}

TEST_F(StatementTest, DeniedSerialIsRefusedByAdmitOnAMemberThatGotTheStatementByFile) {
  Hsm& x = Make("SN-X");
  auto st = DenySerial(*a_, g_, "SN-X");
  ASSERT_OK(st);
  ASSERT_OK(AcceptStatement(*b_, st->message));  // the file, carried to 1.1
  clock_.Set(t0_);
  auto ann = Announce(*b_, g_, 3600);
  ASSERT_OK(ann);
  clock_.Set(t0_ + 1);
  auto req = RequestEnrollment(x, *ann);
  ASSERT_OK(req);
  auto before = Take(*b_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*b_, *req),
              StatusIs(kDenied, HasSubstr("candidate SN-X is denied by group statement 1")));
  EXPECT_EQ(Take(*b_), before);
}

TEST_F(StatementTest, RevokedMembersHsmIsRefusedAsPeer) {
  ASSERT_OK(CheckPeerHsm(*c_, "SN-B"));
  ASSERT_OK(AcceptStatement(*c_, Revoke(*a_, "1.1")));
  EXPECT_THAT(CheckPeerHsm(*c_, "SN-B"),
              StatusIs(kDenied, HasSubstr("peer HSM SN-B is member 1.1, revoked in group " + g_)));
  EXPECT_OK(CheckPeerHsm(*c_, "SN-A"));
}

TEST_F(StatementTest, RevokedMemberIssuesNoStatements) {
  ASSERT_OK(AcceptStatement(*b_, Revoke(*a_, "1.1")));
  auto before = Take(*b_);
  EXPECT_THAT(RevokeMember(*b_, g_, "1.2", ""),
              StatusIs(kDenied, HasSubstr("a revoked member issues no statements")));
  EXPECT_EQ(Take(*b_), before);
}

TEST_F(StatementTest, RevokedMemberThatKnowsItServesAndIssuesNoClients) {
  auto line_of_a = IssueClientCert(*a_, g_, ClientRole::kLine);
  ASSERT_OK(line_of_a);
  ASSERT_OK(VerifyClientCert(*b_, line_of_a->chain[0]));
  ASSERT_OK(AcceptStatement(*b_, Revoke(*a_, "1.1")));
  EXPECT_THAT(VerifyClientCert(*b_, line_of_a->chain[0]),
              StatusIs(kDenied, HasSubstr("member 1.1 is revoked in group " + g_)));
  EXPECT_THAT(VerifyClientCert(*b_, line_of_a->chain[0]),
              StatusIs(kDenied, HasSubstr("a revoked member serves no clients of the group")));
  auto before = Take(*b_);
  EXPECT_THAT(IssueClientCert(*b_, g_, ClientRole::kOperator),
              StatusIs(kDenied, HasSubstr("a revoked member issues no client certificates")));
  EXPECT_EQ(Take(*b_), before);
}

TEST_F(StatementTest, RevokeNeedsTheSerialOfAMemberThisOneDidNotEnroll) {
  auto before = Take(*b_);
  EXPECT_THAT(RevokeMember(*b_, g_, "1.2", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the HSM serial of member 1.2 is not known here")));
  EXPECT_EQ(Take(*b_), before);
  auto st = RevokeMember(*b_, g_, "1.2", "SN-C");
  ASSERT_OK(st);
  EXPECT_EQ(st->sequence, 1u);
}

TEST_F(StatementTest, AuditEntriesOfARevokedMemberAfterItsRevocationFail) {
  auto audit = ExportAudit(*b_);
  ASSERT_OK(audit);
  auto chain = ExportGroup(*a_, g_)->group_ca_chain;
  ASSERT_OK(VerifyAuditExport(*audit, chain, a_->supplier_root()));
  // Revoked before it joined (t0_ + 3): its join entry is after the revocation.
  auto st = VerifyStatement(Revoke(*a_, "1.1", t0_ - 10), chain, a_->supplier_root());
  ASSERT_OK(st);
  EXPECT_THAT(VerifyAuditExport(*audit, chain, a_->supplier_root(), SystemClock(), &*st),
              StatusIs(kDenied, HasSubstr("(group.join) by member 1.1 at ")));
  EXPECT_THAT(VerifyAuditExport(*audit, chain, a_->supplier_root(), SystemClock(), &*st),
              StatusIs(kDenied, HasSubstr("is after its revocation at")));
  // The founder's own log is not touched by 1.1's revocation.
  auto founder = ExportAudit(*a_);
  ASSERT_OK(founder);
  EXPECT_OK(VerifyAuditExport(*founder, chain, a_->supplier_root(), SystemClock(), &*st));
}

}  // namespace
}  // namespace clade::hsm
