// Attacks on enrollment, one per check: each asserts the refusal (code and text) and that neither
// party's state changed — the whole state database is compared, and a legitimate enrollment
// afterwards still gets the id it should, which shows that no counter moved and no announcement
// was spent.
#include "crypto/cms.h"
#include "crypto/random.h"
#include "crypto/signature.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using ::testing::AnyOf;
using testing::AsString;
using testing::Bytes;
using testing::DerString;
using testing::DigestOf;
using testing::FlipPayloadBit;
using ::testing::HasSubstr;
using testing::PayloadOf;
using testing::Reseal;
using testing::SealAs;
using testing::Snapshot;
using testing::Take;

constexpr auto kDenied = absl::StatusCode::kPermissionDenied;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

class AttackTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    a_ = &Make("SN-A");
    g_ = Found(*a_, "attacked");
    ASSERT_FALSE(g_.empty());
  }

  Bytes Ann(Hsm& sponsor, const std::string& group_id, int64_t valid_for = 3600) {
    clock_.Set(t0_);
    auto ann = Announce(sponsor, group_id, valid_for);
    EXPECT_TRUE(ann.ok()) << ann.status();
    return ann.ok() ? *ann : Bytes{};
  }
  Bytes Req(Hsm& candidate, const Bytes& ann, int64_t at = 0) {
    clock_.Set(at ? at : t0_ + 1);
    auto req = RequestEnrollment(candidate, ann);
    EXPECT_TRUE(req.ok()) << req.status();
    return req.ok() ? *req : Bytes{};
  }
  Admission Adm(Hsm& sponsor, const Bytes& req, int64_t at = 0) {
    clock_.Set(at ? at : t0_ + 2);
    auto adm = Admit(sponsor, req);
    EXPECT_TRUE(adm.ok()) << adm.status();
    return adm.ok() ? *std::move(adm) : Admission{};
  }
  // Admits `req` and joins the candidate; returns the member id both agree on.
  std::string AdmitAndJoin(Hsm& sponsor, Hsm& candidate, const Bytes& req) {
    Admission adm = Adm(sponsor, req);
    clock_.Set(t0_ + 3);
    auto joined = Join(candidate, adm.response);
    EXPECT_TRUE(joined.ok()) << joined.status();
    if (!joined.ok()) return "";
    EXPECT_EQ(joined->member_id, adm.member_id);
    return joined->member_id;
  }
  // A request signed by `signer` itself, without the candidate-side checks of RequestEnrollment.
  Bytes HandMadeRequest(const Hsm& signer, const Bytes& ann, const std::string& group_id,
                        const crypto::Certificate& wrap) {
    v1::EnrollmentRequest r;
    r.set_announcement_digest(DigestOf(ann));
    r.set_group_id(group_id);
    r.set_wrap_cert(DerString(wrap));
    r.set_nonce(AsString(crypto::RandomBytes(32)));
    r.set_requested_at(t0_ + 1);
    auto sealed = SealAs(signer, kRequestType, r);
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : Bytes{};
  }

  Hsm* a_ = nullptr;  // SN-A, founder of g_
  std::string g_;
};

// The snapshot sees every write: without this, "unchanged" would prove nothing.
TEST_F(AttackTest, SnapshotSeesEveryWrite) {
  Hsm& c = Make("SN-C");
  Snapshot a0 = Take(*a_);
  Snapshot c0 = Take(c);
  EXPECT_FALSE(a0.rows.empty());
  EXPECT_FALSE(a0.groups.empty());
  Bytes ann = Ann(*a_, g_);
  Snapshot a1 = Take(*a_);
  EXPECT_FALSE(a1 == a0);  // the announcement is recorded
  Bytes req = Req(c, ann);
  Snapshot c1 = Take(c);
  EXPECT_FALSE(c1 == c0);  // the pending request is recorded
  Admission adm = Adm(*a_, req);
  EXPECT_FALSE(Take(*a_) == a1);
  clock_.Set(t0_ + 3);
  ASSERT_OK(Join(c, adm.response));
  EXPECT_FALSE(Take(c) == c1);
}

// ---------------------------------------------------------------------------------------------
// At request: the candidate checks the announcement.

using RequestAttackTest = AttackTest;

TEST_F(RequestAttackTest, SponsorFromAnotherSupplierRoot) {
  Hsm& fake = Make("FAKE-1", /*counterfeit=*/true);
  std::string fg = Found(fake, "counterfeit group");
  Bytes ann = Ann(fake, fg);
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, ann),
              StatusIs(kDenied, HasSubstr("sponsor is not a genuine HSM")));
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(Enroll(*a_, c, g_), "1.1");
}

TEST_F(RequestAttackTest, ExpiredAnnouncement) {
  Bytes ann = Ann(*a_, g_, 3600);
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 3601);
  EXPECT_THAT(RequestEnrollment(c, ann),
              StatusIs(kDenied, HasSubstr("announcement expired at " + FormatTime(t0_ + 3600))));
  EXPECT_EQ(Take(c), before);
  // In time, the same announcement still admits, as the first child.
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann, t0_ + 10)), "1.1");
}

TEST_F(RequestAttackTest, AnnouncementIssuedInTheFuture) {
  clock_.Set(t0_ + kClockSkew + 60);
  ASSERT_OK_AND_ASSIGN(Bytes ann, Announce(*a_, g_, 3600));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_);
  EXPECT_THAT(RequestEnrollment(c, ann),
              StatusIs(kDenied, HasSubstr("announcement issued in the future (" +
                                          FormatTime(t0_ + kClockSkew + 60) + ")")));
  EXPECT_EQ(Take(c), before);
  // A minute later it is within the tolerated skew.
  Bytes req = Req(c, ann, t0_ + 61);
  Admission adm = Adm(*a_, req, t0_ + 100);
  EXPECT_EQ(adm.member_id, "1.1");
  clock_.Set(t0_ + 100);
  ASSERT_OK(Join(c, adm.response));
}

TEST_F(RequestAttackTest, AnnouncementValidForMoreThan30Days) {
  Bytes ann = Ann(*a_, g_);
  ASSERT_OK_AND_ASSIGN(Bytes forged,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         m.set_expires_at(m.issued_at() + kMaxAnnouncementValidity + 1);
                       }));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, forged),
              StatusIs(kDenied, HasSubstr("announcement is valid for more than 30 days")));
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

// A genuine sponsor lying about the group id.
TEST_F(RequestAttackTest, GroupIdDoesNotMatchTheGroupCaKey) {
  std::string g2 = Found(*a_, "second");
  Bytes ann = Ann(*a_, g_);
  ASSERT_OK_AND_ASSIGN(Bytes forged,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann,
                                                     [&](auto& m) { m.set_group_id(g2); }));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, forged),
              StatusIs(kDenied, HasSubstr("group id " + g2 + " does not match the group CA key (" +
                                          g_ + ")")));
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

TEST_F(RequestAttackTest, SponsorMemberCertOfAnotherMember) {
  Hsm& b = Make("SN-B");
  ASSERT_EQ(Enroll(*a_, b, g_), "1.1");
  ASSERT_OK_AND_ASSIGN(GroupExport eb, ExportGroup(b, g_));
  Bytes ann = Ann(*a_, g_);
  ASSERT_OK_AND_ASSIGN(Bytes forged,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         m.set_sponsor_member_cert(DerString(eb.member));
                       }));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, forged),
              StatusIs(kDenied, HasSubstr("sponsor's member certificate is not bound to the "
                                          "sponsor's identity key")));
  // B, holding A's member cert and claiming A's id, fares no better.
  ASSERT_OK_AND_ASSIGN(GroupExport ea, ExportGroup(*a_, g_));
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes ann_b, Announce(b, g_, 3600));
  ASSERT_OK_AND_ASSIGN(Bytes forged_b,
                       Reseal<v1::GroupAnnouncement>(b, kAnnouncementType, ann_b, [&](auto& m) {
                         m.set_sponsor_member_cert(DerString(ea.member));
                         m.set_sponsor_member_id("1");
                       }));
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, forged_b),
              StatusIs(kDenied, HasSubstr("sponsor's member certificate is not bound to the "
                                          "sponsor's identity key")));
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.2");
}

TEST_F(RequestAttackTest, SponsorMemberIdDiffersFromItsCert) {
  Bytes ann = Ann(*a_, g_);
  ASSERT_OK_AND_ASSIGN(Bytes forged,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         m.set_sponsor_member_id("1.7");
                       }));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, forged),
              StatusIs(kDenied, HasSubstr("sponsor's member certificate names member id 1, the "
                                          "announcement 1.7")));
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

TEST_F(RequestAttackTest, GroupCaOfAnotherGroup) {
  Hsm& d = Make("SN-D");
  std::string g2 = Found(d, "other group");
  ASSERT_OK_AND_ASSIGN(GroupExport e2, ExportGroup(d, g2));
  Bytes ann = Ann(*a_, g_);
  auto swap_chain = [&](v1::GroupAnnouncement& m) {
    m.clear_group_ca_chain();
    for (const auto& c : e2.group_ca_chain) m.add_group_ca_chain(DerString(c));
  };
  // Keeping the id: the id no longer matches the CA key.
  ASSERT_OK_AND_ASSIGN(Bytes keep_id,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, swap_chain));
  // Changing the id too: the sponsor's member cert is not issued by that CA.
  ASSERT_OK_AND_ASSIGN(Bytes new_id,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         swap_chain(m);
                         m.set_group_id(g2);
                       }));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(c, keep_id),
              StatusIs(kDenied, HasSubstr("group id " + g_ + " does not match the group CA key (" +
                                          g2 + ")")));
  clock_.Set(t0_ + 1);
  EXPECT_THAT(
      RequestEnrollment(c, new_id),
      StatusIs(kDenied, HasSubstr("sponsor's member certificate is not issued by the group CA")));
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

TEST_F(RequestAttackTest, GroupCaNotIssuedByAGenuineFounder) {
  // A self-made CA with the group CA marker.
  ASSERT_OK_AND_ASSIGN(auto key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  crypto::CertProfile p;
  p.subject = {{"CN", "Clade group CA (self-made)"}};
  p.not_after = a_->identity().identity.NotAfter();
  p.is_ca = true;
  p.path_len = 0;
  p.key_usage = {"digitalSignature", "keyCertSign", "cRLSign"};
  p.policies = {KindOid(CertKind::kGroupCa)};
  ASSERT_OK_AND_ASSIGN(auto self_made, crypto::IssueCertificate(p, key.Public(), nullptr, key));
  // A group CA issued by a counterfeit HSM (another supplier's).
  Hsm& fake = Make("FAKE-1", /*counterfeit=*/true);
  std::string fg = Found(fake, "counterfeit group");
  ASSERT_OK_AND_ASSIGN(GroupExport fe, ExportGroup(fake, fg));

  Bytes ann = Ann(*a_, g_);
  ASSERT_OK_AND_ASSIGN(Bytes forged_self,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         m.set_group_ca_chain(0, DerString(self_made));
                         m.set_group_id(GroupIdOf(self_made.SubjectKey()));
                       }));
  ASSERT_OK_AND_ASSIGN(Bytes forged_fake,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         m.clear_group_ca_chain();
                         for (const auto& c : fe.group_ca_chain) m.add_group_ca_chain(DerString(c));
                         m.set_group_id(fg);
                       }));
  ASSERT_OK_AND_ASSIGN(Bytes forged_short,
                       Reseal<v1::GroupAnnouncement>(*a_, kAnnouncementType, ann, [&](auto& m) {
                         m.mutable_group_ca_chain()->RemoveLast();
                       }));
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  for (const Bytes* forged : {&forged_self, &forged_fake, &forged_short}) {
    clock_.Set(t0_ + 1);
    EXPECT_THAT(RequestEnrollment(c, *forged),
                StatusIs(kDenied, HasSubstr("group CA is not genuine")));
  }
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

TEST_F(RequestAttackTest, CandidateAlreadyInTheGroup) {
  Hsm& b = Make("SN-B");
  ASSERT_EQ(Enroll(*a_, b, g_), "1.1");
  Bytes ann = Ann(*a_, g_);
  Snapshot before_b = Take(b);
  Snapshot before_a = Take(*a_);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(b, ann),
              StatusIs(kDenied, HasSubstr("this HSM is already a member of group " + g_)));
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(*a_, ann),
              StatusIs(kDenied, HasSubstr("this HSM is already a member of group " + g_)));
  EXPECT_EQ(Take(b), before_b);
  EXPECT_EQ(Take(*a_), before_a);
  Hsm& c = Make("SN-C");
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.2");
}

TEST_F(RequestAttackTest, WrongMessageType) {
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann);
  Hsm& d = Make("SN-D");
  Snapshot before = Take(d);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(d, req),
              StatusIs(kInvalid, HasSubstr("message is a clade.v1.EnrollmentRequest, expected a "
                                           "clade.v1.GroupAnnouncement")));
  // An announcement's payload relabelled as another type does not verify as an announcement.
  ASSERT_OK_AND_ASSIGN(auto payload, PayloadOf<v1::GroupAnnouncement>(ann));
  ASSERT_OK_AND_ASSIGN(Bytes as_request, SealAs(*a_, kRequestType, payload));
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(d, as_request),
              StatusIs(kInvalid, HasSubstr("expected a clade.v1.GroupAnnouncement")));
  EXPECT_EQ(Take(d), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");
}

TEST_F(RequestAttackTest, FlippedBitIsRefused) {
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  clock_.Set(t0_ + 1);
  EXPECT_FALSE(RequestEnrollment(c, FlipPayloadBit(ann)).ok());
  Bytes last = ann;
  last.back() ^= 0x01;
  clock_.Set(t0_ + 1);
  EXPECT_FALSE(RequestEnrollment(c, last).ok());
  clock_.Set(t0_ + 1);
  EXPECT_FALSE(RequestEnrollment(c, Bytes(ann.begin(), ann.end() - 1)).ok());
  clock_.Set(t0_ + 1);
  EXPECT_FALSE(RequestEnrollment(c, Bytes{}).ok());
  EXPECT_EQ(Take(c), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

// Every 11th byte, flipped: none of them is accepted.
TEST_F(RequestAttackTest, NoFlippedByteIsAccepted) {
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Snapshot before = Take(c);
  std::vector<size_t> accepted;
  for (size_t pos = 0; pos < ann.size(); pos += 11) {
    Bytes bad = ann;
    bad[pos] ^= 0x04;
    clock_.Set(t0_ + 1);
    if (RequestEnrollment(c, bad).ok()) accepted.push_back(pos);
  }
  EXPECT_TRUE(accepted.empty()) << accepted.size() << " flipped announcements accepted, first at "
                                << accepted.front() << " of " << ann.size();
  EXPECT_EQ(Take(c), before);
}

// ---------------------------------------------------------------------------------------------
// At admit: the sponsor checks the request.

using AdmitAttackTest = AttackTest;

TEST_F(AdmitAttackTest, CandidateFromAnotherSupplierRoot) {
  Bytes ann = Ann(*a_, g_);
  Hsm& fake = Make("FAKE-X", /*counterfeit=*/true);
  Bytes forged = HandMadeRequest(fake, ann, g_, fake.wrap_cert());
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, forged), StatusIs(kDenied, HasSubstr("candidate is not a genuine HSM")));
  EXPECT_EQ(Take(*a_), before);
  Hsm& c = Make("SN-C");
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");  // the announcement was not spent
}

TEST_F(AdmitAttackTest, AnnouncementUsedTwice) {
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Hsm& d = Make("SN-D");
  Bytes req_c = Req(c, ann);
  Bytes req_d = Req(d, ann);
  Admission adm_c = Adm(*a_, req_c);
  EXPECT_EQ(adm_c.member_id, "1.1");
  Snapshot before = Take(*a_);
  Snapshot before_d = Take(d);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(
      Admit(*a_, req_d),
      StatusIs(kDenied, HasSubstr("announcement was already used (it admitted SN-C as 1.1)")));
  // The same request again is refused the same way (no second id for one announcement).
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, req_c), StatusIs(kDenied, HasSubstr("announcement was already used")));
  EXPECT_EQ(Take(*a_), before);
  clock_.Set(t0_ + 3);
  ASSERT_OK(Join(c, adm_c.response));
  EXPECT_EQ(Take(d), before_d);
  EXPECT_EQ(AdmitAndJoin(*a_, d, Req(d, Ann(*a_, g_))), "1.2");
}

TEST_F(AdmitAttackTest, RequestWithAnUnknownFieldIsRefused) {
  // Signed by the genuine candidate: only the field this version does not know is wrong.
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann);
  ASSERT_OK_AND_ASSIGN(
      Bytes forged, Reseal<v1::EnrollmentRequest>(
                        c, kRequestType, req, [](auto& m) { testing::AddUnknownField(&m, 99); }));
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, forged),
              StatusIs(kInvalid, ::testing::Eq("malformed message: clade.v1.EnrollmentRequest "
                                               "payload has unknown field 99")));
  EXPECT_EQ(Take(*a_), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");  // the announcement was not spent
}

TEST_F(AdmitAttackTest, AnnouncementOfAnotherSponsor) {
  Hsm& b = Make("SN-B");
  ASSERT_EQ(Enroll(*a_, b, g_), "1.1");
  Bytes ann_b = Ann(b, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann_b);
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(
      Admit(*a_, req),
      StatusIs(kDenied, HasSubstr("request does not answer an announcement of this sponsor")));
  EXPECT_EQ(Take(*a_), before);
  EXPECT_EQ(AdmitAndJoin(b, c, req), "1.1.1");
  EXPECT_EQ(Enroll(*a_, Make("SN-D"), g_), "1.2");
}

TEST_F(AdmitAttackTest, AnnouncementExpiredAtAdmit) {
  Bytes ann = Ann(*a_, g_, 3600);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann, t0_ + 1);
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 3601);
  EXPECT_THAT(Admit(*a_, req),
              StatusIs(kDenied, HasSubstr("announcement expired at " + FormatTime(t0_ + 3600))));
  EXPECT_EQ(Take(*a_), before);
  // Admitted in time, the same request gets the first id: the refusal spent nothing.
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");
}

TEST_F(AdmitAttackTest, DenyListedSerial) {
  ASSERT_OK(AddToPolicy(*a_, g_, PolicyList::kDeny, "SN-C"));
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann);
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, req), StatusIs(kDenied, HasSubstr("candidate SN-C is on the deny list")));
  EXPECT_EQ(Take(*a_), before);
  Hsm& d = Make("SN-D");
  EXPECT_EQ(AdmitAndJoin(*a_, d, Req(d, ann)), "1.1");
}

TEST_F(AdmitAttackTest, SerialMissingFromTheAllowList) {
  ASSERT_OK(AddToPolicy(*a_, g_, PolicyList::kAllow, "SN-D"));
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann);
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, req),
              StatusIs(kDenied, HasSubstr("candidate SN-C is not on the allow list")));
  EXPECT_EQ(Take(*a_), before);
  ASSERT_OK(AddToPolicy(*a_, g_, PolicyList::kAllow, "SN-C"));
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");
}

TEST_F(AdmitAttackTest, WrapCertificateOfAnotherHsm) {
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Hsm& x = Make("SN-X");
  Bytes req = Req(c, ann);
  ASSERT_OK_AND_ASSIGN(Bytes other_wrap,
                       Reseal<v1::EnrollmentRequest>(c, kRequestType, req, [&](auto& m) {
                         m.set_wrap_cert(DerString(x.wrap_cert()));
                       }));
  // Its own identity cert in place of a wrap cert: wrong kind.
  ASSERT_OK_AND_ASSIGN(Bytes identity_as_wrap,
                       Reseal<v1::EnrollmentRequest>(c, kRequestType, req, [&](auto& m) {
                         m.set_wrap_cert(DerString(c.identity().identity));
                       }));
  Hsm& fake = Make("FAKE-X", /*counterfeit=*/true);
  ASSERT_OK_AND_ASSIGN(Bytes counterfeit_wrap,
                       Reseal<v1::EnrollmentRequest>(c, kRequestType, req, [&](auto& m) {
                         m.set_wrap_cert(DerString(fake.wrap_cert()));
                       }));
  Snapshot before = Take(*a_);
  for (const Bytes* forged : {&other_wrap, &identity_as_wrap, &counterfeit_wrap}) {
    clock_.Set(t0_ + 2);
    EXPECT_THAT(Admit(*a_, *forged),
                StatusIs(kDenied, HasSubstr("candidate's wrap certificate is not genuine")));
  }
  EXPECT_EQ(Take(*a_), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");
}

TEST_F(AdmitAttackTest, CandidateAlreadyEnrolledHere) {
  Hsm& c = Make("SN-C");
  ASSERT_EQ(Enroll(*a_, c, g_), "1.1");
  Bytes ann = Ann(*a_, g_);
  Bytes again = HandMadeRequest(c, ann, g_, c.wrap_cert());
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, again),
              StatusIs(kDenied, HasSubstr("candidate SN-C is already enrolled as 1.1")));
  EXPECT_EQ(Take(*a_), before);
  Hsm& d = Make("SN-D");
  EXPECT_EQ(AdmitAndJoin(*a_, d, Req(d, ann)), "1.2");
}

TEST_F(AdmitAttackTest, CandidateIsTheSponsorItself) {
  Bytes ann = Ann(*a_, g_);
  Bytes self = HandMadeRequest(*a_, ann, g_, a_->wrap_cert());
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, self), StatusIs(kDenied, HasSubstr("candidate SN-A is this HSM itself")));
  EXPECT_EQ(Take(*a_), before);
  Hsm& c = Make("SN-C");
  EXPECT_EQ(AdmitAndJoin(*a_, c, Req(c, ann)), "1.1");
}

TEST_F(AdmitAttackTest, RequestForAnotherGroup) {
  std::string g2 = Found(*a_, "second");
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann);
  ASSERT_OK_AND_ASSIGN(
      Bytes forged,
      Reseal<v1::EnrollmentRequest>(c, kRequestType, req, [&](auto& m) { m.set_group_id(g2); }));
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, forged),
              StatusIs(kDenied, HasSubstr("request is for group " + g2 +
                                          ", the announcement for group " + g_)));
  EXPECT_EQ(Take(*a_), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");
}

TEST_F(AdmitAttackTest, WrongMessageTypeAndFlippedBit) {
  Bytes ann = Ann(*a_, g_);
  Hsm& c = Make("SN-C");
  Bytes req = Req(c, ann);
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, ann),
              StatusIs(kInvalid, HasSubstr("message is a clade.v1.GroupAnnouncement, expected a "
                                           "clade.v1.EnrollmentRequest")));
  clock_.Set(t0_ + 2);
  EXPECT_FALSE(Admit(*a_, FlipPayloadBit(req)).ok());
  Bytes last = req;
  last.back() ^= 0x01;
  clock_.Set(t0_ + 2);
  EXPECT_FALSE(Admit(*a_, last).ok());
  clock_.Set(t0_ + 2);
  EXPECT_FALSE(Admit(*a_, Bytes(req.begin(), req.end() - 3)).ok());
  EXPECT_EQ(Take(*a_), before);
  EXPECT_EQ(AdmitAndJoin(*a_, c, req), "1.1");
}

// ---------------------------------------------------------------------------------------------
// At join: the candidate checks the response.

class JoinAttackTest : public AttackTest {
 protected:
  void SetUp() override {
    AttackTest::SetUp();
    if (HasFatalFailure()) return;
    c_ = &Make("SN-C");
    ann_ = Ann(*a_, g_);
    req_ = Req(*c_, ann_);
    adm_ = Adm(*a_, req_);
    ASSERT_EQ(adm_.member_id, "1.1");
  }
  // Re-signs the response as the genuine sponsor after `change`.
  Bytes AsSponsor(const std::function<void(v1::EnrollmentResponse&)>& change) {
    auto forged = Reseal<v1::EnrollmentResponse>(*a_, kResponseType, adm_.response, change);
    EXPECT_TRUE(forged.ok()) << forged.status();
    return forged.ok() ? *forged : Bytes{};
  }
  // The genuine response still joins, as 1.1.
  void ExpectGenuineJoinStillWorks() {
    clock_.Set(t0_ + 3);
    auto joined = Join(*c_, adm_.response);
    ASSERT_TRUE(joined.ok()) << joined.status();
    EXPECT_EQ(joined->member_id, "1.1");
    EXPECT_EQ(joined->group_id, g_);
    EXPECT_EQ(MemberIdIn(*c_, g_), "1.1");
  }
  // The real group secrets, as the candidate would unwrap them.
  v1::GroupSecrets RealSecrets() {
    v1::GroupSecrets s;
    auto resp = PayloadOf<v1::EnrollmentResponse>(adm_.response);
    auto wrap_key = c_->WrapKey();
    EXPECT_TRUE(resp.ok() && wrap_key.ok());
    if (!resp.ok() || !wrap_key.ok()) return s;
    auto plain =
        crypto::CmsDecrypt(crypto::AsBytes(resp->wrapped_secrets()), *wrap_key, c_->wrap_cert());
    EXPECT_TRUE(plain.ok()) << plain.status();
    if (plain.ok()) {
      EXPECT_TRUE(s.ParseFromArray(plain->RevealSecret().data(),
                                   static_cast<int>(plain->RevealSecret().size())));
    }
    return s;
  }
  Bytes WrappedFor(const v1::GroupSecrets& s, const crypto::Certificate& recipient) {
    std::string plain = s.SerializeAsString();
    auto cms = crypto::CmsEncrypt(testing::AsSpan(plain), recipient);
    EXPECT_TRUE(cms.ok()) << cms.status();
    return cms.ok() ? *cms : Bytes{};
  }
  static std::string FreshKeyDer() {
    auto k = crypto::PrivateKey::Generate(crypto::Curve::kP256);
    EXPECT_TRUE(k.ok());
    return k.ok() ? AsString(k->ToPkcs8Der().RevealSecret()) : std::string();
  }

  Hsm* c_ = nullptr;
  Bytes ann_;
  Bytes req_;
  Admission adm_;
};

TEST_F(JoinAttackTest, ResponseReplayedToAThirdHsm) {
  Hsm& d = Make("SN-D");
  Bytes req_d = Req(d, Ann(*a_, g_));  // D waits for an answer of its own
  Snapshot before = Take(d);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(d, adm_.response),
              StatusIs(kDenied, HasSubstr("response does not answer a pending request")));
  Hsm& e = Make("SN-E");  // E has asked nobody
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(e, adm_.response),
              StatusIs(kDenied, HasSubstr("response does not answer a pending request")));
  EXPECT_EQ(Take(d), before);
  ExpectGenuineJoinStillWorks();
  EXPECT_EQ(AdmitAndJoin(*a_, d, req_d), "1.2");
}

TEST_F(JoinAttackTest, ResponseFromTheSponsorOfAnotherGroup) {
  // E founds G2; C also asks E to join G2, so E holds a genuine G2 response for C.
  Hsm& e = Make("SN-E");
  std::string g2 = Found(e, "group two");
  Bytes req_c2 = Req(*c_, Ann(e, g2));
  Admission adm_e = Adm(e, req_c2);
  // E answers C's request to A (G1) with its own G2 material.
  ASSERT_OK_AND_ASSIGN(
      Bytes forged, Reseal<v1::EnrollmentResponse>(e, kResponseType, adm_e.response, [&](auto& m) {
        m.set_request_digest(DigestOf(req_));
      }));
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, forged),
              StatusIs(kDenied, HasSubstr("response is not from the sponsor of the announcement")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
  clock_.Set(t0_ + 3);
  ASSERT_OK_AND_ASSIGN(Joined j2, Join(*c_, adm_e.response));
  EXPECT_EQ(j2.group_id, g2);
  EXPECT_EQ(j2.member_id, "1.1");
}

TEST_F(JoinAttackTest, ResponseForAnotherGroupOrGroupCa) {
  Hsm& e = Make("SN-E");
  std::string g2 = Found(e, "group two");
  Bytes req_c2 = Req(*c_, Ann(e, g2));
  Admission adm_e = Adm(e, req_c2);
  ASSERT_OK_AND_ASSIGN(auto resp_e, PayloadOf<v1::EnrollmentResponse>(adm_e.response));
  // A (the right sponsor) sends G2's public group.
  Bytes other_group = AsSponsor([&](auto& m) { *m.mutable_group() = resp_e.group(); });
  // A keeps the id but swaps in G2's CA chain.
  Bytes other_ca = AsSponsor([&](auto& m) {
    *m.mutable_group()->mutable_group_ca_chain() = resp_e.group().group_ca_chain();
  });
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, other_group),
              StatusIs(kDenied, HasSubstr("response is for group " + g2 +
                                          ", the pending request for group " + g_)));
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, other_ca),
              StatusIs(kDenied, HasSubstr("response carries another group CA than was announced")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, MemberCertificateBindsAnotherKey) {
  Hsm& b = Make("SN-B");
  Hsm& sponsor = *a_;
  // B becomes 1.2, so its member cert is genuine, of this group, for another key.
  EXPECT_EQ(AdmitAndJoin(sponsor, b, Req(b, Ann(sponsor, g_))), "1.2");
  ASSERT_OK_AND_ASSIGN(GroupExport eb, ExportGroup(b, g_));
  Bytes forged = AsSponsor([&](auto& m) { m.set_member_cert(DerString(eb.member)); });
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(
      Join(*c_, forged),
      StatusIs(kDenied, HasSubstr("member certificate does not bind this HSM's identity key")));
  // Nor passes a certificate of another kind (the group encryption cert).
  Bytes wrong_kind = AsSponsor([&](auto& m) { m.set_member_cert(DerString(eb.encryption)); });
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, wrong_kind),
              StatusIs(kDenied, HasSubstr("member certificate is not issued by the group CA")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, MemberCertificateOfAnotherGroup) {
  // C's genuine member certificate of G2, for C's own key, offered as its G1 certificate.
  Hsm& e = Make("SN-E");
  std::string g2 = Found(e, "group two");
  ASSERT_EQ(Enroll(e, *c_, g2), "1.1");
  ASSERT_OK_AND_ASSIGN(GroupExport c2, ExportGroup(*c_, g2));
  Bytes forged = AsSponsor([&](auto& m) { m.set_member_cert(DerString(c2.member)); });
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, forged),
              StatusIs(kDenied, HasSubstr("member certificate is not issued by the group CA")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

// C asked two sponsors of the same group; both answered. The second answer finds C a member.
TEST_F(JoinAttackTest, SecondAnswerFromAnotherSponsorOfTheSameGroup) {
  Hsm& b = Make("SN-B");
  EXPECT_EQ(AdmitAndJoin(*a_, b, Req(b, Ann(*a_, g_))), "1.2");
  Bytes req_b = Req(*c_, Ann(b, g_));
  Admission adm_b = Adm(b, req_b);
  EXPECT_EQ(adm_b.member_id, "1.2.1");
  ExpectGenuineJoinStillWorks();
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 4);
  EXPECT_THAT(
      Join(*c_, adm_b.response),
      StatusIs(kDenied, HasSubstr("this HSM is already a member of group " + g_ + " (as 1.1)")));
  EXPECT_EQ(Take(*c_), before);
  EXPECT_EQ(MemberIdIn(*c_, g_), "1.1");
}

TEST_F(JoinAttackTest, MemberIdNotDirectlyBelowTheSponsor) {
  Snapshot before = Take(*c_);
  for (const char* id : {"1.5.1", "1", "2.1", "1.1.1", "", "x"}) {
    SCOPED_TRACE(id);
    Bytes forged = AsSponsor([&](auto& m) { m.set_member_id(id); });
    clock_.Set(t0_ + 3);
    EXPECT_THAT(Join(*c_, forged),
                StatusIs(kDenied, HasSubstr("member id " + std::string(id) +
                                            " is not directly below the sponsor's id 1")));
  }
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, MemberIdDiffersFromTheCertificate) {
  Bytes forged = AsSponsor([&](auto& m) { m.set_member_id("1.7"); });
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(
      Join(*c_, forged),
      StatusIs(kDenied, HasSubstr("member certificate names member id 1.1, the response 1.7")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, GroupCertificatesOfWrongKind) {
  ASSERT_OK_AND_ASSIGN(auto resp, PayloadOf<v1::EnrollmentResponse>(adm_.response));
  Bytes enc_is_sign = AsSponsor(
      [&](auto& m) { m.mutable_group()->set_encryption_cert(resp.group().signing_cert()); });
  Bytes sign_is_enc = AsSponsor(
      [&](auto& m) { m.mutable_group()->set_signing_cert(resp.group().encryption_cert()); });
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, enc_is_sign),
              StatusIs(kDenied, HasSubstr("group encryption certificate is not genuine")));
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, sign_is_enc),
              StatusIs(kDenied, HasSubstr("group signing certificate is not genuine")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, SecretsWrappedForAnotherHsm) {
  Hsm& x = Make("SN-X");
  Bytes some = crypto::RandomBytes(64);
  ASSERT_OK_AND_ASSIGN(Bytes to_x, crypto::CmsEncrypt(some, x.wrap_cert()));
  Bytes forged = AsSponsor([&](auto& m) { m.set_wrapped_secrets(AsString(to_x)); });
  Bytes garbage = AsSponsor([&](auto& m) { m.set_wrapped_secrets("not a CMS message"); });
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, forged), StatusIs(kDenied, HasSubstr("group secrets do not decrypt")));
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, garbage), StatusIs(kDenied, HasSubstr("group secrets do not decrypt")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, SecretsThatDoNotMatchTheGroup) {
  v1::GroupSecrets real = RealSecrets();
  ASSERT_FALSE(real.group_ca_key().empty());

  v1::GroupSecrets fresh;
  fresh.set_group_ca_key(FreshKeyDer());
  fresh.set_encryption_key(FreshKeyDer());
  fresh.set_signing_key(FreshKeyDer());
  fresh.set_symmetric_key(AsString(crypto::RandomBytes(32)));
  v1::GroupSecrets bad_enc = real;
  bad_enc.set_encryption_key(FreshKeyDer());
  v1::GroupSecrets bad_sign = real;
  bad_sign.set_signing_key(FreshKeyDer());
  v1::GroupSecrets short_sym = real;
  short_sym.set_symmetric_key(AsString(crypto::RandomBytes(16)));
  v1::GroupSecrets swapped = real;  // encryption and signing keys swapped
  swapped.set_encryption_key(real.signing_key());
  swapped.set_signing_key(real.encryption_key());

  auto with = [&](const v1::GroupSecrets& s) {
    Bytes cms = WrappedFor(s, c_->wrap_cert());
    return AsSponsor([&](auto& m) { m.set_wrapped_secrets(AsString(cms)); });
  };
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, with(fresh)),
              StatusIs(kDenied, HasSubstr("does not match the group CA certificate")));
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, with(bad_enc)),
              StatusIs(kDenied, HasSubstr("unwrapped group encryption key does not match the group "
                                          "encryption certificate")));
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, with(bad_sign)),
              StatusIs(kDenied, HasSubstr("unwrapped group signing key does not match the group "
                                          "signing certificate")));
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, with(swapped)),
              StatusIs(kDenied, HasSubstr("does not match the group encryption certificate")));
  clock_.Set(t0_ + 3);
  EXPECT_FALSE(Join(*c_, with(short_sym)).ok());
  EXPECT_EQ(Take(*c_), before);
  // The real secrets, re-wrapped, are fine: the checks above were about the keys.
  clock_.Set(t0_ + 3);
  ASSERT_OK_AND_ASSIGN(Joined j, Join(*c_, with(real)));
  EXPECT_EQ(j.member_id, "1.1");
}

TEST_F(JoinAttackTest, ResponseSignedByACounterfeitHsm) {
  Hsm& fake = Make("FAKE-X", /*counterfeit=*/true);
  ASSERT_OK_AND_ASSIGN(Bytes forged, Reseal<v1::EnrollmentResponse>(fake, kResponseType,
                                                                    adm_.response, [](auto&) {}));
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, forged), StatusIs(kDenied, HasSubstr("sponsor is not a genuine HSM")));
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, WrongMessageTypeAndFlippedBit) {
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Join(*c_, req_),
              StatusIs(kInvalid, HasSubstr("message is a clade.v1.EnrollmentRequest, expected a "
                                           "clade.v1.EnrollmentResponse")));
  clock_.Set(t0_ + 3);
  EXPECT_FALSE(Join(*c_, FlipPayloadBit(adm_.response)).ok());
  Bytes last = adm_.response;
  last.back() ^= 0x01;
  clock_.Set(t0_ + 3);
  EXPECT_FALSE(Join(*c_, last).ok());
  EXPECT_EQ(Take(*c_), before);
  ExpectGenuineJoinStillWorks();
}

TEST_F(JoinAttackTest, JoiningTheSameResponseTwice) {
  ExpectGenuineJoinStillWorks();
  Snapshot before = Take(*c_);
  clock_.Set(t0_ + 4);
  EXPECT_THAT(Join(*c_, adm_.response),
              StatusIs(kDenied, AnyOf(HasSubstr("response does not answer a pending request"),
                                      HasSubstr("this HSM is already a member of group"))));
  EXPECT_EQ(Take(*c_), before);
}

}  // namespace
}  // namespace clade::hsm
