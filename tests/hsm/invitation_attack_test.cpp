// Enrollment by invitation: an announcement made for one serial (`--for`) admits that HSM and no
// other. Each refusal is asserted with its text, and neither party's state changes — the whole
// state database is compared — and the invited HSM is admitted afterwards as the first child,
// which shows that the announcement was not spent and no counter moved.
#include "crypto/random.h"
#include "hsm/enrollment.h"
#include "hsm/group.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using testing::AsString;
using testing::Bytes;
using testing::DerString;
using testing::DigestOf;
using ::testing::HasSubstr;
using testing::PayloadOf;
using testing::SealAs;
using testing::Snapshot;
using testing::Take;

constexpr auto kDenied = absl::StatusCode::kPermissionDenied;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

class InvitationTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    a_ = &Make("SN-1");
    g_ = Found(*a_, "invited");
    ASSERT_FALSE(g_.empty());
    invited_ = &Make("SN-2");
    other_hsm_ = &Make("SN-3");
  }
  Bytes AnnFor(const std::string& serial) {
    clock_.Set(t0_);
    auto ann = Announce(*a_, g_, AnnounceOptions{3600, serial});
    EXPECT_TRUE(ann.ok()) << ann.status();
    return ann.ok() ? *ann : Bytes{};
  }
  // What SN-3 sends when it skips its own early check: a request on the announcement, signed by
  // itself, with its own wrap certificate.
  Bytes RequestSkippingTheCandidateCheck(const Hsm& signer, const Bytes& ann) {
    v1::EnrollmentRequest r;
    r.set_announcement_digest(DigestOf(ann));
    r.set_group_id(g_);
    r.set_wrap_cert(DerString(signer.wrap_cert()));
    r.set_nonce(AsString(crypto::RandomBytes(32)));
    r.set_requested_at(t0_ + 1);
    auto sealed = SealAs(signer, kRequestType, r);
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : Bytes{};
  }
  // The invited HSM still gets the announcement's one admission, as the first child.
  void InvitedIsAdmitted(const Bytes& ann) {
    clock_.Set(t0_ + 1);
    auto req = RequestEnrollment(*invited_, ann);
    ASSERT_OK(req);
    clock_.Set(t0_ + 2);
    auto adm = Admit(*a_, *req);
    ASSERT_OK(adm);
    EXPECT_EQ(adm->member_id, "1.1");
    EXPECT_EQ(adm->candidate_serial, "SN-2");
    clock_.Set(t0_ + 3);
    ASSERT_OK(Join(*invited_, adm->response));
  }

  Hsm* a_ = nullptr;          // SN-1, founder of g_
  Hsm* invited_ = nullptr;    // SN-2, named by the announcements
  Hsm* other_hsm_ = nullptr;  // SN-3, genuine but not invited
  std::string g_;
};

TEST_F(InvitationTest, TheAnnouncementCarriesTheSerialItAdmits) {
  Bytes ann = AnnFor("SN-2");
  ASSERT_OK_AND_ASSIGN(auto payload, PayloadOf<v1::GroupAnnouncement>(ann));
  EXPECT_EQ(payload.for_serial(), "SN-2");
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes open, Announce(*a_, g_, AnnounceOptions{3600, ""}));
  ASSERT_OK_AND_ASSIGN(auto open_payload, PayloadOf<v1::GroupAnnouncement>(open));
  EXPECT_EQ(open_payload.for_serial(), "");
}

TEST_F(InvitationTest, AnnounceRefusesABadSerialAndTheSponsorItself) {
  Snapshot before = Take(*a_);
  clock_.Set(t0_);
  EXPECT_THAT(Announce(*a_, g_, AnnounceOptions{3600, "SN 2"}),
              StatusIs(kInvalid, HasSubstr("--for 'SN 2' is not an HSM serial number")));
  clock_.Set(t0_);
  EXPECT_THAT(Announce(*a_, g_, AnnounceOptions{3600, "SN-1"}),
              StatusIs(kInvalid, HasSubstr("an announcement cannot be for the sponsor itself")));
  EXPECT_EQ(Take(*a_), before);
}

TEST_F(InvitationTest, CandidateNotNamedRefusesToRequest) {
  Bytes ann = AnnFor("SN-2");
  Snapshot before = Take(*other_hsm_);
  clock_.Set(t0_ + 1);
  EXPECT_THAT(RequestEnrollment(*other_hsm_, ann),
              StatusIs(kDenied, HasSubstr("the announcement admits only SN-2, not SN-3")));
  EXPECT_EQ(Take(*other_hsm_), before);
  InvitedIsAdmitted(ann);
}

TEST_F(InvitationTest, SponsorRefusesAnotherSerialAndChangesNothing) {
  Bytes ann = AnnFor("SN-2");
  Bytes forged = RequestSkippingTheCandidateCheck(*other_hsm_, ann);
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, forged),
              StatusIs(kDenied, HasSubstr("the announcement admits only SN-2, not SN-3")));
  EXPECT_EQ(Take(*a_), before);
  InvitedIsAdmitted(ann);
}

// The Admit RPC called by a peer HSM: its own request only, and only on an announcement made for
// its serial.
TEST_F(InvitationTest, OnlineCandidateSendsOnlyItsOwnRequest) {
  Bytes ann = AnnFor("SN-2");
  clock_.Set(t0_ + 1);
  ASSERT_OK_AND_ASSIGN(Bytes req, RequestEnrollment(*invited_, ann));
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, req, &other_hsm_->identity().identity),
              StatusIs(kDenied, HasSubstr("request is signed by SN-2, not by the HSM that sent "
                                          "it (an HSM sends only its own request)")));
  EXPECT_EQ(Take(*a_), before);
  clock_.Set(t0_ + 2);
  ASSERT_OK_AND_ASSIGN(Admission adm, Admit(*a_, req, &invited_->identity().identity));
  EXPECT_EQ(adm.member_id, "1.1");
}

TEST_F(InvitationTest, OnlineCandidateNeedsAnAnnouncementNamingIt) {
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes open, Announce(*a_, g_, AnnounceOptions{3600, ""}));
  clock_.Set(t0_ + 1);
  ASSERT_OK_AND_ASSIGN(Bytes req, RequestEnrollment(*other_hsm_, open));
  Snapshot before = Take(*a_);
  clock_.Set(t0_ + 2);
  EXPECT_THAT(Admit(*a_, req, &other_hsm_->identity().identity),
              StatusIs(kDenied, HasSubstr("the announcement names no HSM; online, an HSM is "
                                          "admitted only on an announcement made for its serial "
                                          "(clade group announce --for SN-3)")));
  EXPECT_EQ(Take(*a_), before);
  // Carried as files (the operator admits offline), the same open announcement admits it.
  clock_.Set(t0_ + 2);
  ASSERT_OK_AND_ASSIGN(Admission adm, Admit(*a_, req));
  EXPECT_EQ(adm.candidate_serial, "SN-3");
}

}  // namespace
}  // namespace clade::hsm
