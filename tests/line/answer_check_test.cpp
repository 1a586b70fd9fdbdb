// The line's checks of what members tell it (line/answer_check.h), without daemons: a group Acme
// (SN-A founder 1, SN-B member 1.1) whose OEM's job J-1 both hold, and an outsider SN-C in group
// Other of another OEM. Each forged or swapped answer is refused with its named reason; a good one
// passes.
#include "line/answer_check.h"

#include "clade/v1/job.pb.h"
#include "hsm/client_cert.h"
#include "hsm/group_statement.h"
#include "hsm/job.h"
#include "hsm/world.h"
#include "oem/oem.h"

namespace clade::hsm::testing {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

constexpr auto kDenied = absl::StatusCode::kPermissionDenied;

constexpr char kDeviceProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"})";

// One provisioned device: what the member answered.
struct Issued {
  Bytes cert;
  std::string serial;
  Bytes record;
};

class AnswerCheckTest : public World {
 protected:
  void SetUp() override {
    World::SetUp();
    Hsm& a = Make("SN-A");
    Hsm& b = Make("SN-B");
    Hsm& c = Make("SN-C");
    gid_ = Found(a, "Acme");
    auto o = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(o);
    ASSERT_OK(TrustOem(a, gid_, o->root()));
    Enroll(a, b, gid_);
    for (const char* job : {"J-1", "J-2"}) {
      auto pkg =
          Package(*o, a, gid_, job, Bytes{'f', 'w', '1'}, dir_.File(std::string("gx-") + job));
      ASSERT_OK(pkg);
      ASSERT_OK(ImportJob(a, *pkg));
      ASSERT_OK(ImportJob(b, *pkg));
      if (std::string(job) == "J-1") package_ = *pkg;
    }
    // The outsider: its own group, of another OEM, with a job of the same id.
    other_gid_ = Found(c, "Other");
    auto o2 = oem::Oem::Init(dir_.File("oem2"), "Other Devices");
    ASSERT_OK(o2);
    ASSERT_OK(TrustOem(c, other_gid_, o2->root()));
    auto pkg2 = Package(*o2, c, other_gid_, "J-1", Bytes{'f', 'w', '1'}, dir_.File("gx-other"));
    ASSERT_OK(pkg2);
    ASSERT_OK(ImportJob(c, *pkg2));
    other_package_ = *pkg2;
    oem_root_.emplace(o->root());
    other_oem_root_.emplace(o2->root());

    auto client = IssueClientCert(a, gid_, ClientRole::kLine);
    ASSERT_OK(client);
    auto group = line::LineGroupOfClient(crypto::Certificate::ChainToPem(client->chain),
                                         client->supplier_root.Pem());
    ASSERT_OK(group);
    group_.emplace(*std::move(group));
    auto job = VerifyJobPackage(package_, o->root(), gid_);
    ASSERT_OK(job);
    job_.emplace(*std::move(job));
    auto mb = Member(b);
    ASSERT_OK(mb);
    member_b_.emplace(*std::move(mb));
    for (auto* k : {&chip_key_, &other_key_}) {
      auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
      ASSERT_OK(key);
      k->emplace(*std::move(key));
    }
  }

  static absl::StatusOr<Bytes> Package(const oem::Oem& o, Hsm& h, const std::string& gid,
                                       const std::string& job, Bytes firmware,
                                       const std::string& export_dir) {
    ASSIGN_OR_RETURN(auto ex, ExportGroup(h, gid));
    RETURN_IF_ERROR(WriteGroupExport(ex, export_dir));
    oem::PackageOptions opts;
    opts.job_id = job;
    opts.group_export_dir = export_dir;
    opts.profile_json = kDeviceProfile;
    opts.firmware = std::move(firmware);
    opts.pinned_supplier_root = h.supplier_root();
    ASSIGN_OR_RETURN(auto pkg, o.Package(opts));
    return pkg.package;
  }

  // The member that `h` is in group Acme, as the line verifies it from its TLS certificate.
  absl::StatusOr<VerifiedMember> Member(Hsm& h) {
    ASSIGN_OR_RETURN(auto ex, ExportGroup(h, gid_));
    return line::CheckServerIsMember(*group_, h.IdentityChain()[0], ex.member.Der());
  }

  absl::StatusOr<Issued> Provision(const std::string& serial, const std::string& job,
                                   const std::string& uid, const crypto::PrivateKey& key,
                                   bool reissue = false, const std::string& group = "") {
    ASSIGN_OR_RETURN(auto p,
                     Provisioner::Create(*hsms_[serial], group.empty() ? gid_ : group, job));
    DeviceRequest req;
    req.uid = uid;
    req.device_key = key.Public();
    req.reissue = reissue;
    ASSIGN_OR_RETURN(ProvisioningData d, p->Provision(req));
    return Issued{d.device_cert_der, d.cert_serial, d.record};
  }

  absl::Status Check(const Issued& got, const std::string& uid = "U-1") {
    return line::CheckAnswer(*job_, *member_b_, line::AskedDevice{uid, (*chip_key_).Public()},
                             line::DeviceAnswer{got.cert, got.serial, got.record});
  }

  // `record` with its payload changed by `change`, signed again as member `h` of group Acme (its
  // identity key, its member certificate): a member that lies in its record.
  absl::StatusOr<Bytes> ResignAsMember(Hsm& h, const Bytes& record,
                                       const std::function<void(v1::ProvisioningRecord&)>& change) {
    ASSIGN_OR_RETURN(auto rec, PayloadOf<v1::ProvisioningRecord>(record));
    change(rec);
    ASSIGN_OR_RETURN(auto ex, ExportGroup(h, gid_));
    std::vector<crypto::Certificate> chain = {ex.member};
    chain.insert(chain.end(), ex.group_ca_chain.begin(), ex.group_ca_chain.end());
    ASSIGN_OR_RETURN(auto key, h.IdentityKey());
    std::string payload = rec.SerializeAsString();
    return wire::SealMessage(kProvisioningRecordType, AsSpan(payload), key, chain);
  }

  std::string gid_, other_gid_;
  Bytes package_, other_package_;
  std::optional<crypto::Certificate> oem_root_, other_oem_root_;
  std::optional<line::LineGroup> group_;
  std::optional<VerifiedJobPackage> job_;
  std::optional<VerifiedMember> member_b_;
  std::optional<crypto::PrivateKey> chip_key_, other_key_;
};

TEST_F(AnswerCheckTest, TheJobPackageIsCheckedAgainstTheOemRootAndTheLinesGroup) {
  EXPECT_EQ(job_->job_id, "J-1");
  EXPECT_EQ(job_->firmware, (Bytes{'f', 'w', '1'}));
  EXPECT_EQ(job_->firmware_sha256, crypto::Sha256(job_->firmware));
  EXPECT_TRUE(job_->config_sha256.empty());
  // The genuine package, checked against another OEM's root.
  EXPECT_THAT(VerifyJobPackage(package_, *other_oem_root_, gid_),
              StatusIs(kDenied, HasSubstr("package is not signed by the OEM root group " + gid_ +
                                          " trusts ('" + other_oem_root_->Subject() + "')")));
  // Another group's package, signed by the OEM root it names: not for the line's group.
  EXPECT_THAT(
      VerifyJobPackage(other_package_, *other_oem_root_, gid_),
      StatusIs(kDenied, HasSubstr("package is for group " + other_gid_ + ", not group " + gid_)));
  // Against its own OEM root and group it passes.
  EXPECT_OK(VerifyJobPackage(package_, *oem_root_, gid_));
}

TEST_F(AnswerCheckTest, AcceptsAGoodAnswer) {
  ASSERT_OK_AND_ASSIGN(Issued got, Provision("SN-B", "J-1", "U-1", *chip_key_));
  EXPECT_OK(Check(got));
  EXPECT_EQ(member_b_->member_id, "1.1");
  EXPECT_EQ(member_b_->hsm_serial, "SN-B");
  EXPECT_EQ(group_->group_id, gid_);
}

TEST_F(AnswerCheckTest, RefusesACertificateForAnotherKeyInDeviceMode) {
  ASSERT_OK_AND_ASSIGN(Issued got, Provision("SN-B", "J-1", "U-1", *other_key_));
  EXPECT_THAT(Check(got), StatusIs(kDenied, HasSubstr("the device certificate certifies another "
                                                      "key than chip U-1's")));
}

TEST_F(AnswerCheckTest, RefusesACertificateOfAnotherCa) {
  ASSERT_OK_AND_ASSIGN(Issued good, Provision("SN-B", "J-1", "U-1", *chip_key_));
  // SN-C's J-1 is the outsider group's job of the same id.
  ASSERT_OK_AND_ASSIGN(Issued other,
                       Provision("SN-C", "J-1", "U-1", *chip_key_, false, other_gid_));
  Issued swapped = good;
  swapped.cert = other.cert;
  swapped.serial = other.serial;
  EXPECT_THAT(Check(swapped),
              StatusIs(kDenied, HasSubstr("is not issued by the job's device-issuing CA")));
}

TEST_F(AnswerCheckTest, RefusesARecordForAnotherUidJobOrSerial) {
  ASSERT_OK_AND_ASSIGN(Issued good, Provision("SN-B", "J-1", "U-1", *chip_key_));
  ASSERT_OK_AND_ASSIGN(Issued uid2, Provision("SN-B", "J-1", "U-2", *chip_key_));
  ASSERT_OK_AND_ASSIGN(Issued job2, Provision("SN-B", "J-2", "U-1", *chip_key_));
  ASSERT_OK_AND_ASSIGN(Issued again, Provision("SN-B", "J-1", "U-1", *chip_key_, true));
  Issued swapped = good;
  swapped.record = uid2.record;
  EXPECT_THAT(Check(swapped), StatusIs(kDenied, HasSubstr("the record names uid U-2, not U-1")));
  swapped.record = job2.record;
  EXPECT_THAT(Check(swapped), StatusIs(kDenied, HasSubstr("the record names job J-2, not J-1")));
  swapped.record = again.record;
  EXPECT_THAT(Check(swapped), StatusIs(kDenied, HasSubstr("the record names certificate serial " +
                                                          again.serial + ", not " + good.serial)));
  // The answer's own serial must be its certificate's.
  swapped = good;
  swapped.serial = again.serial;
  EXPECT_THAT(Check(swapped),
              StatusIs(kDenied, HasSubstr("the answer names certificate serial " + again.serial)));
  // Another certificate of the same job and uid, under the record of the first.
  swapped = again;
  swapped.record = good.record;
  EXPECT_THAT(Check(swapped), StatusIs(kDenied, HasSubstr("the record names certificate serial")));
}

TEST_F(AnswerCheckTest, RefusesARecordOfOtherFirmwareOrConfig) {
  ASSERT_OK_AND_ASSIGN(Issued good, Provision("SN-B", "J-1", "U-1", *chip_key_));
  Bytes other_fw = crypto::Sha256(AsSpan("other firmware"));
  ASSERT_OK_AND_ASSIGN(Bytes forged,
                       ResignAsMember(*hsms_["SN-B"], good.record, [&](v1::ProvisioningRecord& r) {
                         r.set_firmware_sha256(AsString(other_fw));
                       }));
  Issued lying = good;
  lying.record = forged;
  EXPECT_THAT(Check(lying), StatusIs(kDenied, HasSubstr("the record names firmware SHA-256 " +
                                                        crypto::Hex(other_fw))));
  ASSERT_OK_AND_ASSIGN(forged,
                       ResignAsMember(*hsms_["SN-B"], good.record, [&](v1::ProvisioningRecord& r) {
                         r.set_config_sha256(AsString(other_fw));
                       }));
  lying.record = forged;
  EXPECT_THAT(Check(lying), StatusIs(kDenied, HasSubstr("the record names config SHA-256")));
  // Re-signed unchanged, the record passes: the refusals above are for the digests alone.
  ASSERT_OK_AND_ASSIGN(forged,
                       ResignAsMember(*hsms_["SN-B"], good.record, [](v1::ProvisioningRecord&) {}));
  lying.record = forged;
  EXPECT_OK(Check(lying));
}

TEST_F(AnswerCheckTest, RefusesARecordSignedByANonMemberOrAnotherMember) {
  ASSERT_OK_AND_ASSIGN(Issued good, Provision("SN-B", "J-1", "U-1", *chip_key_));
  // The outsider signs the same record with its identity.
  ASSERT_OK_AND_ASSIGN(auto rec, PayloadOf<v1::ProvisioningRecord>(good.record));
  ASSERT_OK_AND_ASSIGN(Bytes by_outsider, SealAs(*hsms_["SN-C"], kProvisioningRecordType, rec));
  Issued forged = good;
  forged.record = by_outsider;
  EXPECT_THAT(Check(forged),
              StatusIs(kDenied, HasSubstr("the record does not verify: provisioning record is "
                                          "signed by 'serialNumber=SN-C")));
  EXPECT_THAT(Check(forged), StatusIs(kDenied, HasSubstr("', not by member 1.1 (")));
  // Member 1 signs what member 1.1 answered.
  ASSERT_OK_AND_ASSIGN(forged.record,
                       ResignAsMember(*hsms_["SN-A"], good.record,
                                      [](v1::ProvisioningRecord& r) { r.set_member_id("1"); }));
  EXPECT_THAT(Check(forged), StatusIs(kDenied, HasSubstr("CN=Clade member 1', not by member 1.1")));
  // Member 1.1's own signature on a record that claims member 1.
  ASSERT_OK_AND_ASSIGN(forged.record,
                       ResignAsMember(*hsms_["SN-B"], good.record,
                                      [](v1::ProvisioningRecord& r) { r.set_member_id("1"); }));
  EXPECT_THAT(Check(forged),
              StatusIs(kDenied, HasSubstr("provisioning record claims member 1 of group " + gid_ +
                                          ", the signer is 1.1")));
}

TEST_F(AnswerCheckTest, RefusesAServerThatIsNotAMember) {
  Hsm& a = *hsms_["SN-A"];
  Hsm& b = *hsms_["SN-B"];
  Hsm& c = *hsms_["SN-C"];
  ASSERT_OK_AND_ASSIGN(auto ex_a, ExportGroup(a, gid_));
  ASSERT_OK_AND_ASSIGN(auto ex_c, ExportGroup(c, other_gid_));
  const crypto::Certificate tls_b = b.IdentityChain()[0];
  // No certificate at all.
  EXPECT_THAT(line::CheckServerIsMember(*group_, tls_b, {}),
              StatusIs(kDenied, HasSubstr("it shows no member certificate for the group")));
  // Member 1's certificate, shown by SN-B.
  EXPECT_THAT(line::CheckServerIsMember(*group_, tls_b, ex_a.member.Der()),
              StatusIs(kDenied, HasSubstr("certifies another key than its TLS certificate")));
  // The outsider's member certificate of its own group.
  EXPECT_THAT(line::CheckServerIsMember(*group_, c.IdentityChain()[0], ex_c.member.Der()),
              StatusIs(kDenied, HasSubstr("is not issued by the trust anchor")));
  // An HSM identity certificate is not a member certificate.
  EXPECT_THAT(line::CheckServerIsMember(*group_, tls_b, tls_b.Der()),
              StatusIs(kDenied, HasSubstr("expected a member certificate")));
  // The group's own CA certificate is not one either.
  EXPECT_THAT(line::CheckServerIsMember(*group_, tls_b, ex_a.group_ca_chain[0].Der()),
              StatusIs(kDenied, HasSubstr("expected a member certificate")));
  EXPECT_OK(line::CheckServerIsMember(*group_, a.IdentityChain()[0], ex_a.member.Der()));
}

TEST_F(AnswerCheckTest, RefusesAClientChainOfTheWrongShape) {
  Hsm& a = *hsms_["SN-A"];
  EXPECT_THAT(line::LineGroupOfClient(crypto::Certificate::ChainToPem(a.IdentityChain()),
                                      supplier_->root().Pem()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the client chain must be the client certificate, group CA")));
}

TEST_F(AnswerCheckTest, RefusesAMemberTheHeldStatementRevokes) {
  // No statement seen yet, or one that revokes someone else: the member passes.
  EXPECT_OK(line::CheckMemberNotRevoked(*group_, *member_b_, {}));
  ASSERT_OK_AND_ASSIGN(IssuedStatement other, RevokeClient(*hsms_["SN-A"], gid_, "c0ffee"));
  EXPECT_OK(line::CheckMemberNotRevoked(*group_, *member_b_, other.message));
  // A statement of another group does not verify under the line's group: ignored, as the
  // client ignores it.
  ASSERT_OK_AND_ASSIGN(IssuedStatement foreign, RevokeClient(*hsms_["SN-C"], other_gid_, "c0ffee"));
  EXPECT_OK(line::CheckMemberNotRevoked(*group_, *member_b_, foreign.message));
  // 1.1 revoked on the founder: the line that holds that statement no longer believes 1.1.
  ASSERT_OK_AND_ASSIGN(IssuedStatement revoked, RevokeMember(*hsms_["SN-A"], gid_, "1.1", ""));
  EXPECT_THAT(line::CheckMemberNotRevoked(*group_, *member_b_, revoked.message),
              StatusIs(kDenied,
                       HasSubstr("member 1.1 (HSM SN-B) is revoked in group " + gid_ + " since ")));
  EXPECT_THAT(line::CheckMemberNotRevoked(*group_, *member_b_, revoked.message),
              StatusIs(kDenied, HasSubstr("(statement 2)")));
}

}  // namespace
}  // namespace clade::hsm::testing
