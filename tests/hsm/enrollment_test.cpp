// Groups and enrollment as they should work: the FIG. 4 tree, ids that are never reused, a group
// that outlives its founder, several groups on the same HSMs, and certificates that check out.
#include "hsm/enrollment.h"

#include <filesystem>

#include "hsm/group.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using testing::Bytes;
using ::testing::HasSubstr;
using testing::Snapshot;
using testing::Take;

class EnrollmentTest : public testing::World {
 protected:
  GroupSummary SummaryOf(Hsm& h, const std::string& group_id) {
    auto groups = ListGroups(h);
    EXPECT_TRUE(groups.ok()) << groups.status();
    if (groups.ok()) {
      for (const auto& g : *groups) {
        if (g.group_id == group_id) return g;
      }
    }
    ADD_FAILURE() << h.Info().serial << " is not in group " << group_id;
    return {};
  }
};

TEST_F(EnrollmentTest, FounderIsMemberOne) {
  Hsm& a = Make("SN-A");
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(GroupSummary g, CreateGroup(a, "Acme line 1", std::nullopt));
  EXPECT_EQ(g.group_id.size(), 32u);
  EXPECT_EQ(g.name, "Acme line 1");
  EXPECT_EQ(g.member_id, "1");
  EXPECT_EQ(g.role, "founder");
  EXPECT_EQ(g.children_enrolled, 0u);
  EXPECT_FALSE(g.oem_root_fingerprint.has_value());
  ASSERT_OK_AND_ASSIGN(GroupExport e, ExportGroup(a, g.group_id));
  EXPECT_EQ(GroupIdOf(e.group_ca_chain.at(0).SubjectKey()), g.group_id);
  EXPECT_EQ(e.encryption.SubjectKey().Fingerprint(), g.encryption_key_fingerprint);
  ASSERT_OK_AND_ASSIGN(auto list, ListGroups(a));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].group_id, g.group_id);
}

// Patent FIG. 4: 1 enrolls 1.1 and 1.2; 1.1 enrolls 1.1.1; 1.2 enrolls 1.2.1. All hold the same
// group, with the same encryption key.
TEST_F(EnrollmentTest, Fig4Tree) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  Hsm& d = Make("SN-D");
  Hsm& e = Make("SN-E");
  std::string g = Found(a, "fig4");
  ASSERT_FALSE(g.empty());
  EXPECT_EQ(Enroll(a, b, g), "1.1");
  EXPECT_EQ(Enroll(a, c, g), "1.2");
  EXPECT_EQ(Enroll(b, d, g), "1.1.1");
  EXPECT_EQ(Enroll(c, e, g), "1.2.1");

  struct Want {
    Hsm* h;
    const char* id;
    const char* role;
    uint32_t children;
  };
  GroupSummary founder = SummaryOf(a, g);
  for (const Want& w :
       {Want{&a, "1", "founder", 2}, Want{&b, "1.1", "member", 1}, Want{&c, "1.2", "member", 1},
        Want{&d, "1.1.1", "member", 0}, Want{&e, "1.2.1", "member", 0}}) {
    SCOPED_TRACE(w.id);
    ASSERT_OK_AND_ASSIGN(auto groups, ListGroups(*w.h));
    ASSERT_EQ(groups.size(), 1u);
    EXPECT_EQ(groups[0].group_id, g);
    EXPECT_EQ(groups[0].name, "fig4");
    EXPECT_EQ(groups[0].member_id, w.id);
    EXPECT_EQ(groups[0].role, w.role);
    EXPECT_EQ(groups[0].children_enrolled, w.children);
    EXPECT_EQ(groups[0].encryption_key_fingerprint, founder.encryption_key_fingerprint);
    ASSERT_OK_AND_ASSIGN(GroupExport x, ExportGroup(*w.h, g));
    // Every member's certificate binds its own identity key, under the one group CA, up to the
    // supplier root.
    EXPECT_TRUE(x.member.SubjectKey().Equals(w.h->identity().identity.SubjectKey()));
    EXPECT_EQ(*KindOf(x.member), CertKind::kMember);
    EXPECT_OK(crypto::VerifyChain(x.member, x.group_ca_chain, supplier_->root(),
                                  crypto::VerifyOptions(clock_.Now())));
    EXPECT_EQ(x.encryption.SubjectKey().Fingerprint(), founder.encryption_key_fingerprint);
  }
}

TEST_F(EnrollmentTest, MemberAndGroupCertificatesCheckOut) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string g = Found(a, "certs");
  ASSERT_EQ(Enroll(a, b, g), "1.1");
  ASSERT_OK_AND_ASSIGN(GroupExport ea, ExportGroup(a, g));
  ASSERT_OK_AND_ASSIGN(GroupExport eb, ExportGroup(b, g));

  // The member certificate of each binds exactly that HSM's identity key.
  EXPECT_TRUE(eb.member.SubjectKey().Equals(b.identity().identity.SubjectKey()));
  EXPECT_TRUE(ea.member.SubjectKey().Equals(a.identity().identity.SubjectKey()));
  EXPECT_FALSE(eb.member == ea.member);

  // Both hold the same public group.
  ASSERT_EQ(eb.group_ca_chain.size(), 3u);
  EXPECT_EQ(eb.group_ca_chain, ea.group_ca_chain);
  EXPECT_EQ(eb.encryption, ea.encryption);
  EXPECT_EQ(eb.signing, ea.signing);
  EXPECT_EQ(eb.supplier_root, supplier_->root());

  // Group CA chain: group CA ← founder identity ← supplier issuing.
  const auto& chain = eb.group_ca_chain;
  EXPECT_EQ(*KindOf(chain[0]), CertKind::kGroupCa);
  EXPECT_EQ(chain[1], a.identity().identity);
  EXPECT_EQ(chain[2], supplier_->issuing());
  EXPECT_EQ(GroupIdOf(chain[0].SubjectKey()), g);
  EXPECT_EQ(*KindOf(eb.encryption), CertKind::kGroupEncryption);
  EXPECT_EQ(*KindOf(eb.signing), CertKind::kGroupSigning);

  // The group encryption cert (what an OEM wraps to) verifies up to the supplier root.
  EXPECT_OK(crypto::VerifyChain(eb.encryption, {chain[0], chain[1], chain[2]}, supplier_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  EXPECT_OK(crypto::VerifyChain(eb.signing, chain, supplier_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  EXPECT_OK(crypto::VerifyChain(eb.member, chain, supplier_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  // … and not up to another supplier's root.
  EXPECT_FALSE(
      crypto::VerifyChain(eb.encryption, chain, other_->root(), crypto::VerifyOptions(clock_.Now()))
          .ok());

  // Export files.
  std::string out = dir_.File("export-b");
  ASSERT_OK(WriteGroupExport(eb, out));
  for (const char* f : {"group-ca-chain.pem", "group-enc.crt", "group-sign.crt",
                        "supplier-root.crt", "member.crt"}) {
    EXPECT_TRUE(PathExists(out + "/" + f)) << f;
  }
  ASSERT_OK_AND_ASSIGN(auto member_back,
                       crypto::Certificate::FromPem(clade::testing::ReadText(out + "/member.crt")));
  EXPECT_EQ(member_back, eb.member);
  ASSERT_OK_AND_ASSIGN(auto chain_back, crypto::Certificate::ChainFromPem(
                                            clade::testing::ReadText(out + "/group-ca-chain.pem")));
  EXPECT_EQ(chain_back, eb.group_ca_chain);
}

// The child counter is persisted: a sponsor closed and opened again goes on at .3.
TEST_F(EnrollmentTest, IdsAreNeverReusedAfterReopening) {
  Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  Hsm& d = Make("SN-D");
  Hsm& e = Make("SN-E");
  Hsm& f = Make("SN-F");
  std::string g = Found(*hsms_["SN-A"], "reopen");
  EXPECT_EQ(Enroll(*hsms_["SN-A"], b, g), "1.1");
  EXPECT_EQ(Enroll(*hsms_["SN-A"], c, g), "1.2");
  // An announcement issued and used before closing stays used; one issued and unused stays open.
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes used, Announce(*hsms_["SN-A"], g, 3600));
  clock_.Set(t0_ + 1);
  ASSERT_OK_AND_ASSIGN(Bytes req_d, RequestEnrollment(d, used));
  clock_.Set(t0_ + 1);
  ASSERT_OK_AND_ASSIGN(Bytes req_e, RequestEnrollment(e, used));
  clock_.Set(t0_ + 2);
  ASSERT_OK_AND_ASSIGN(Admission adm_d, Admit(*hsms_["SN-A"], req_d));
  EXPECT_EQ(adm_d.member_id, "1.3");
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes open_ann, Announce(*hsms_["SN-A"], g, 3600));

  Hsm& a = Reopen("SN-A");
  EXPECT_EQ(SummaryOf(a, g).children_enrolled, 3u);
  EXPECT_EQ(SummaryOf(a, g).member_id, "1");
  clock_.Set(t0_ + 3);
  EXPECT_THAT(Admit(a, req_e), StatusIs(absl::StatusCode::kPermissionDenied,
                                        HasSubstr("announcement was already used")));
  clock_.Set(t0_ + 3);
  ASSERT_OK_AND_ASSIGN(Joined jd, Join(d, adm_d.response));
  EXPECT_EQ(jd.member_id, "1.3");
  clock_.Set(t0_ + 4);
  ASSERT_OK_AND_ASSIGN(Bytes req_f, RequestEnrollment(f, open_ann));
  clock_.Set(t0_ + 5);
  ASSERT_OK_AND_ASSIGN(Admission adm_f, Admit(a, req_f));
  EXPECT_EQ(adm_f.member_id, "1.4");
  EXPECT_EQ(adm_f.candidate_serial, "SN-F");
  clock_.Set(t0_ + 6);
  ASSERT_OK(Join(f, adm_f.response));

  // Reopening again, and the member side too: still no reuse.
  Hsm& a2 = Reopen("SN-A");
  EXPECT_EQ(Enroll(a2, e, g), "1.5");
  Hsm& b2 = Reopen("SN-B");
  EXPECT_EQ(SummaryOf(b2, g).member_id, "1.1");
  Hsm& h = Make("SN-H");
  EXPECT_EQ(Enroll(b2, h, g), "1.1.1");
  Hsm& b3 = Reopen("SN-B");
  Hsm& i = Make("SN-I");
  EXPECT_EQ(Enroll(b3, i, g), "1.1.2");
}

// Ids go by the order of admission, not of announcement or request.
TEST_F(EnrollmentTest, IdsFollowTheOrderOfAdmission) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  std::string g = Found(a, "order");
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes ann1, Announce(a, g, 3600));
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes ann2, Announce(a, g, 3600));
  clock_.Set(t0_ + 1);
  ASSERT_OK_AND_ASSIGN(Bytes req_b, RequestEnrollment(b, ann1));
  clock_.Set(t0_ + 1);
  ASSERT_OK_AND_ASSIGN(Bytes req_c, RequestEnrollment(c, ann2));
  clock_.Set(t0_ + 2);
  ASSERT_OK_AND_ASSIGN(Admission adm_c, Admit(a, req_c));
  clock_.Set(t0_ + 2);
  ASSERT_OK_AND_ASSIGN(Admission adm_b, Admit(a, req_b));
  EXPECT_EQ(adm_c.member_id, "1.1");
  EXPECT_EQ(adm_b.member_id, "1.2");
  EXPECT_EQ(adm_b.candidate_serial, "SN-B");
  // Joins may come in any order, too.
  clock_.Set(t0_ + 3);
  ASSERT_OK_AND_ASSIGN(Joined jb, Join(b, adm_b.response));
  clock_.Set(t0_ + 3);
  ASSERT_OK_AND_ASSIGN(Joined jc, Join(c, adm_c.response));
  EXPECT_EQ(jb.member_id, "1.2");
  EXPECT_EQ(jc.member_id, "1.1");
  EXPECT_EQ(SummaryOf(a, g).children_enrolled, 2u);
}

// The group outlives its founder: 1.1 enrolls 1.1.2, which enrolls 1.1.2.1.
TEST_F(EnrollmentTest, GroupOutlivesItsFounder) {
  Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  std::string g = Found(*hsms_["SN-A"], "orphan");
  EXPECT_EQ(Enroll(*hsms_["SN-A"], b, g), "1.1");
  EXPECT_EQ(Enroll(b, c, g), "1.1.1");
  ASSERT_OK_AND_ASSIGN(GroupExport before, ExportGroup(b, g));

  hsms_["SN-A"].reset();
  std::filesystem::remove_all(StateDir("SN-A"));
  ASSERT_FALSE(std::filesystem::exists(StateDir("SN-A")));

  Hsm& d = Make("SN-D");
  Hsm& e = Make("SN-E");
  EXPECT_EQ(Enroll(b, d, g), "1.1.2");
  EXPECT_EQ(Enroll(d, e, g), "1.1.2.1");
  ASSERT_OK_AND_ASSIGN(GroupExport ee, ExportGroup(e, g));
  EXPECT_EQ(ee.group_ca_chain, before.group_ca_chain);
  EXPECT_EQ(ee.encryption, before.encryption);
  EXPECT_TRUE(ee.member.SubjectKey().Equals(e.identity().identity.SubjectKey()));
  EXPECT_OK(crypto::VerifyChain(ee.member, ee.group_ca_chain, supplier_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  EXPECT_EQ(SummaryOf(d, g).children_enrolled, 1u);
  EXPECT_EQ(SummaryOf(b, g).children_enrolled, 2u);
}

// Two groups (say, two OEMs) on the same three HSMs: ids and keys stay apart.
TEST_F(EnrollmentTest, TwoGroupsOnTheSameHsmsStayApart) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  Hsm& c = Make("SN-C");
  std::string g1 = Found(a, "oem one");
  std::string g2 = Found(b, "oem two");
  ASSERT_NE(g1, g2);
  EXPECT_EQ(Enroll(a, b, g1), "1.1");
  EXPECT_EQ(Enroll(b, a, g2), "1.1");
  EXPECT_EQ(Enroll(a, c, g1), "1.2");
  EXPECT_EQ(Enroll(b, c, g2), "1.2");
  EXPECT_EQ(Enroll(c, Make("SN-D"), g2), "1.2.1");

  for (Hsm* h : {&a, &b, &c}) {
    ASSERT_OK_AND_ASSIGN(auto groups, ListGroups(*h));
    EXPECT_EQ(groups.size(), 2u) << h->Info().serial;
  }
  EXPECT_EQ(SummaryOf(a, g1).member_id, "1");
  EXPECT_EQ(SummaryOf(a, g2).member_id, "1.1");
  EXPECT_EQ(SummaryOf(b, g1).member_id, "1.1");
  EXPECT_EQ(SummaryOf(b, g2).member_id, "1");
  EXPECT_EQ(SummaryOf(c, g1).member_id, "1.2");
  EXPECT_EQ(SummaryOf(c, g2).member_id, "1.2");
  EXPECT_EQ(SummaryOf(c, g1).children_enrolled, 0u);
  EXPECT_EQ(SummaryOf(c, g2).children_enrolled, 1u);
  EXPECT_EQ(SummaryOf(a, g1).name, "oem one");
  EXPECT_EQ(SummaryOf(a, g2).name, "oem two");

  std::string fp1 = SummaryOf(a, g1).encryption_key_fingerprint;
  std::string fp2 = SummaryOf(a, g2).encryption_key_fingerprint;
  EXPECT_NE(fp1, fp2);
  for (Hsm* h : {&a, &b, &c}) {
    EXPECT_EQ(SummaryOf(*h, g1).encryption_key_fingerprint, fp1);
    EXPECT_EQ(SummaryOf(*h, g2).encryption_key_fingerprint, fp2);
  }
  ASSERT_OK_AND_ASSIGN(GroupExport c1, ExportGroup(c, g1));
  ASSERT_OK_AND_ASSIGN(GroupExport c2, ExportGroup(c, g2));
  EXPECT_FALSE(c1.member == c2.member);
  EXPECT_TRUE(c1.member.SubjectKey().Equals(c2.member.SubjectKey()));  // both: C's identity key
  EXPECT_OK(crypto::VerifyChain(c1.member, c1.group_ca_chain, supplier_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  EXPECT_OK(crypto::VerifyChain(c2.member, c2.group_ca_chain, supplier_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  // A member cert of one group is no member cert of the other.
  EXPECT_FALSE(crypto::VerifyChain(c1.member, c2.group_ca_chain, supplier_->root(),
                                   crypto::VerifyOptions(clock_.Now()))
                   .ok());
  EXPECT_FALSE(crypto::VerifyChain(c2.member, c1.group_ca_chain, supplier_->root(),
                                   crypto::VerifyOptions(clock_.Now()))
                   .ok());
}

TEST_F(EnrollmentTest, ResolveGroupByIdPrefixOrName) {
  Hsm& a = Make("SN-A");
  std::string g = Found(a, "resolve me");
  ASSERT_OK_AND_ASSIGN(std::string by_id, ResolveGroup(a, g));
  EXPECT_EQ(by_id, g);
  ASSERT_OK_AND_ASSIGN(std::string by_prefix, ResolveGroup(a, g.substr(0, 6)));
  EXPECT_EQ(by_prefix, g);
  ASSERT_OK_AND_ASSIGN(std::string by_name, ResolveGroup(a, "resolve me"));
  EXPECT_EQ(by_name, g);
  EXPECT_THAT(ResolveGroup(a, "no such group"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("is not a member of group")));
  Hsm& b = Make("SN-B");
  EXPECT_THAT(ResolveGroup(b, g), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(EnrollmentTest, AnnouncementValidityBounds) {
  Hsm& a = Make("SN-A");
  std::string g = Found(a, "validity");
  Snapshot before = Take(a);
  clock_.Set(t0_);
  EXPECT_FALSE(Announce(a, g, 0).ok());
  clock_.Set(t0_);
  EXPECT_FALSE(Announce(a, g, -5).ok());
  clock_.Set(t0_);
  EXPECT_FALSE(Announce(a, g, kMaxAnnouncementValidity + 1).ok());
  clock_.Set(t0_);
  EXPECT_THAT(Announce(a, "0123456789abcdef0123456789abcdef", 3600),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("is not a member of group")));
  EXPECT_EQ(Take(a), before);
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes ann, Announce(a, g, kMaxAnnouncementValidity));
  ASSERT_OK_AND_ASSIGN(auto payload, testing::PayloadOf<v1::GroupAnnouncement>(ann));
  EXPECT_EQ(payload.group_id(), g);
  EXPECT_EQ(payload.issued_at(), t0_);
  EXPECT_EQ(payload.expires_at(), t0_ + kMaxAnnouncementValidity);
  EXPECT_EQ(payload.sponsor_member_id(), "1");
  EXPECT_EQ(payload.nonce().size(), 32u);
  EXPECT_EQ(payload.group_ca_chain_size(), 3);
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes ann2, Announce(a, g, 3600));
  ASSERT_OK_AND_ASSIGN(auto payload2, testing::PayloadOf<v1::GroupAnnouncement>(ann2));
  EXPECT_NE(payload.nonce(), payload2.nonce());
}

// An announcement from a sponsor whose clock runs a little ahead is accepted (kClockSkew), and
// one accepted just before it expires still admits.
TEST_F(EnrollmentTest, ClockSkewAndLastSecondAreAccepted) {
  Hsm& a = Make("SN-A");
  Hsm& b = Make("SN-B");
  std::string g = Found(a, "skew");
  clock_.Set(t0_ + kClockSkew - 10);
  ASSERT_OK_AND_ASSIGN(Bytes ann, Announce(a, g, 3600));
  clock_.Set(t0_);
  ASSERT_OK_AND_ASSIGN(Bytes req, RequestEnrollment(b, ann));
  clock_.Set(t0_ + kClockSkew - 10 + 3600);
  ASSERT_OK_AND_ASSIGN(Admission adm, Admit(a, req));
  EXPECT_EQ(adm.member_id, "1.1");
  clock_.Set(t0_ + kClockSkew - 10 + 3600);
  ASSERT_OK_AND_ASSIGN(Joined j, Join(b, adm.response));
  EXPECT_EQ(j.member_id, "1.1");
  EXPECT_EQ(j.group_name, "skew");
}

TEST_F(EnrollmentTest, PolicyListsAdmitWhomTheyShould) {
  Hsm& a = Make("SN-A");
  std::string g = Found(a, "policy");
  ASSERT_OK(AddToPolicy(a, g, PolicyList::kAllow, "SN-B"));
  ASSERT_OK(AddToPolicy(a, g, PolicyList::kDeny, "SN-X"));
  EXPECT_EQ(Enroll(a, Make("SN-B"), g), "1.1");
  GroupSummary s = SummaryOf(a, g);
  EXPECT_EQ(s.allow_serials, std::vector<std::string>{"SN-B"});
  EXPECT_EQ(s.deny_serials, std::vector<std::string>{"SN-X"});
  // The member inherits the policy from its sponsor.
  GroupSummary sb = SummaryOf(*hsms_["SN-B"], g);
  EXPECT_EQ(sb.allow_serials, std::vector<std::string>{"SN-B"});
  EXPECT_EQ(sb.deny_serials, std::vector<std::string>{"SN-X"});
}

}  // namespace
}  // namespace clade::hsm
