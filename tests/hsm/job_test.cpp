// OEM jobs and provisioning (docs/design.md, "Messages"): an OEM packages a job for a group of
// three (1, 1.1, 1.2) that trusts its root; member 1.2 imports and provisions. Then every refusal:
// packages of another OEM, for another group, expired, wrapped for another key, with a CA key or
// chain that is not the OEM's, and each payload field changed and re-signed by the genuine OEM root
// key (so only the package's own consistency checks stand in the way); profiles and device uids;
// per-device refusals; the OEM root changed after import; provisioning records checked against the
// group.
#include "hsm/job.h"

#include <cstdio>

#include "base/files.h"
#include "clade/v1/audit.pb.h"
#include "clade/v1/job.pb.h"
#include "crypto/cms.h"
#include "crypto/digest.h"
#include "crypto/signature.h"
#include "hsm/audit.h"
#include "hsm/internal/jobs.h"
#include "hsm/profile.h"
#include "oem/oem.h"
#include "world.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using testing::AsSpan;
using testing::AsString;
using testing::Bytes;
using testing::DerString;
using testing::FlipPayloadBit;
using ::testing::HasSubstr;
using testing::PayloadOf;
using ::testing::StartsWith;

constexpr auto kDenied = absl::StatusCode::kPermissionDenied;
constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// The profile of the issue, exactly as written there.
constexpr char kDeviceProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, )"
    R"("validity": {"not_after": "99991231235959Z"}, "key_usage": ["digitalSignature"], )"
    R"("extended_key_usage": ["clientAuth"], "key_mode": "device"})";
constexpr char kHsmProfile[] =
    R"({"product": "Gateway", "subject": {"CN": "{product} {uid}", "OU": "{job}"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], )"
    R"("extensions": [{"oid": "1.3.6.1.4.1.32473.77.2", "utf8": "line 7"}], "key_mode": "hsm"})";
constexpr char kPlainProfile[] =
    R"({"product": "Legacy", "subject": {"CN": "{uid}"}, "validity": {"days": 1}, )"
    R"("key_mode": "hsm", "allow_plain_keys": true})";

std::string Str(std::span<const uint8_t> b) { return AsString(b); }
Bytes ToBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

crypto::PrivateKey LoadPem(const std::string& path) {
  Bytes pem = clade::testing::ReadBinary(path);
  auto key = crypto::PrivateKey::FromPem(crypto::SecretBytes::Adopt(pem));
  EXPECT_TRUE(key.ok()) << key.status();
  if (!key.ok()) std::abort();
  return *std::move(key);
}

crypto::PrivateKey NewKey() {
  auto key = crypto::PrivateKey::Generate(crypto::Curve::kP256);
  if (!key.ok()) std::abort();
  return *std::move(key);
}

// A self-signed P-256 certificate (keyAgreement) for `key`: a CMS recipient that is not the group.
crypto::Certificate SelfSigned(const crypto::PrivateKey& key, const std::string& cn) {
  crypto::CertProfile p;
  p.subject = {{"CN", cn}};
  p.not_after = SystemClock().Now() + 86400;
  p.key_usage = {"keyAgreement"};
  auto cert = crypto::IssueCertificate(p, key.Public(), nullptr, key);
  EXPECT_TRUE(cert.ok()) << cert.status();
  if (!cert.ok()) std::abort();
  return *std::move(cert);
}

// Rows of one namespace of an HSM's state.
size_t Rows(Hsm& h, const char* ns) {
  size_t n = 0;
  absl::Status s = h.state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto rows, tx.List(ns));
    n = rows.size();
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  return n;
}

class JobTest : public testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    auto o = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(o);
    oem_.emplace(*std::move(o));
    founder_ = &Make("SN-1");
    g_ = Found(*founder_, "Acme");
    ASSERT_FALSE(g_.empty());
    // Before enrolling, so that the members inherit the OEM root with the group.
    ASSERT_OK(TrustOem(*founder_, g_, oem_->root()));
    m11_ = &Make("SN-2");
    m12_ = &Make("SN-3");
    ASSERT_EQ(Enroll(*founder_, *m11_, g_), "1.1");
    ASSERT_EQ(Enroll(*founder_, *m12_, g_), "1.2");
    gx_ = ExportTo(*founder_, g_, "gx");
    ASSERT_FALSE(gx_.empty());
  }

  std::string ExportTo(Hsm& h, const std::string& group, const std::string& name) {
    auto ex = ExportGroup(h, group);
    EXPECT_TRUE(ex.ok()) << ex.status();
    if (!ex.ok()) return "";
    std::string dir = dir_.File(name);
    absl::Status s = WriteGroupExport(*ex, dir);
    EXPECT_TRUE(s.ok()) << s;
    return s.ok() ? dir : "";
  }

  oem::PackageOptions Options(const std::string& job_id = "J-1",
                              const std::string& profile = kDeviceProfile) {
    oem::PackageOptions o;
    o.job_id = job_id;
    o.group_export_dir = gx_;
    o.pinned_supplier_root = supplier_->root();
    o.profile_json = profile;
    o.firmware = ToBytes("firmware image v1.2.3");
    o.config = ToBytes("register settings");
    return o;
  }
  Bytes Package(const oem::PackageOptions& o, const oem::Oem* by = nullptr) {
    auto p = (by ? by : &*oem_)->Package(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? p->package : Bytes{};
  }

  // Decodes a package, lets `change` edit the payload and re-signs it with the genuine OEM root
  // key: what only the OEM could do, so only the package's own consistency checks refuse it.
  Bytes ResignedByOem(const Bytes& package, const std::function<void(v1::JobPackage&)>& change) {
    auto pkg = PayloadOf<v1::JobPackage>(package);
    EXPECT_TRUE(pkg.ok()) << pkg.status();
    if (!pkg.ok()) return {};
    change(*pkg);
    std::string payload = pkg->SerializeAsString();
    crypto::PrivateKey root_key = LoadPem(dir_.File("oem/root.key"));
    auto sealed = wire::SealMessage(kJobPackageType, AsSpan(payload), root_key, {oem_->root()});
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : Bytes{};
  }

  // A second OEM, with its own root and device-issuing CA.
  const oem::Oem& OtherOem() {
    if (!other_oem_) {
      auto o = oem::Oem::Init(dir_.File("oem2"), "Mallory Devices");
      EXPECT_TRUE(o.ok()) << o.status();
      if (!o.ok()) std::abort();
      other_oem_.emplace(*std::move(o));
    }
    return *other_oem_;
  }

  std::unique_ptr<Provisioner> Prov(Hsm& h, const std::string& job_id) {
    auto p = Provisioner::Create(h, g_, job_id);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  DeviceRequest DeviceKeyRequest(const std::string& uid) {
    DeviceRequest r;
    r.uid = uid;
    r.device_key = NewKey().Public();
    return r;
  }

  std::vector<crypto::Certificate> GroupChain() {
    auto ex = ExportGroup(*m12_, g_);
    EXPECT_TRUE(ex.ok()) << ex.status();
    return ex.ok() ? ex->group_ca_chain : std::vector<crypto::Certificate>{};
  }

  std::optional<oem::Oem> oem_;
  std::optional<oem::Oem> other_oem_;
  Hsm* founder_ = nullptr;
  Hsm* m11_ = nullptr;
  Hsm* m12_ = nullptr;
  std::string g_;
  std::string gx_;
};

// --- The main path. ------------------------------------------------------------------------------

TEST_F(JobTest, ImportAndProvisionInDeviceKeyMode) {
  Bytes pkg = Package(Options());
  ASSERT_OK_AND_ASSIGN(JobSummary job, ImportJob(*m12_, pkg));
  EXPECT_EQ(job.job_id, "J-1");
  EXPECT_EQ(job.group_id, g_);
  EXPECT_EQ(job.product, "Sensor");
  EXPECT_EQ(job.key_mode, "device");
  EXPECT_EQ(job.device_ca_subject, oem_->issuing().Subject());
  EXPECT_TRUE(job.has_firmware);
  EXPECT_TRUE(job.has_config);
  EXPECT_EQ(job.expires_at, 0);
  // Importing the same package again is a no-op.
  std::string before = testing::StateDump(*m12_);
  EXPECT_OK(ImportJob(*m12_, pkg));
  EXPECT_EQ(testing::StateDump(*m12_), before);

  auto p = Prov(*m12_, "J-1");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->member_id(), "1.2");
  crypto::PrivateKey chip = NewKey();
  DeviceRequest req;
  req.uid = "DEV-0001";
  req.device_key = chip.Public();
  ASSERT_OK_AND_ASSIGN(ProvisioningData d, p->Provision(req));
  EXPECT_TRUE(d.DeviceCertificate()->SubjectKey().Equals(chip.Public()));
  // Subject() prints RFC 2253 order (last attribute first): CN was written first, as in the
  // profile.
  EXPECT_EQ(d.DeviceCertificate()->Subject(), "O=Acme,CN=Sensor DEV-0001");
  EXPECT_EQ(d.DeviceCertificate()->NotAfter(), crypto::kNoExpiry);
  EXPECT_FALSE(d.DeviceCertificate()->IsCa());
  EXPECT_TRUE(d.DeviceCertificate()->HasExtendedKeyUsage("1.3.6.1.5.5.7.3.2"));
  ASSERT_EQ(d.chain.size(), 2u);
  EXPECT_EQ(d.chain[0], oem_->issuing());
  EXPECT_EQ(d.chain[1], oem_->root());
  EXPECT_OK(crypto::VerifyChain(*d.DeviceCertificate(), {oem_->issuing()}, oem_->root(),
                                crypto::VerifyOptions(clock_.Now())));
  EXPECT_EQ(Str(d.firmware), "firmware image v1.2.3");
  EXPECT_EQ(Str(d.config), "register settings");
  EXPECT_TRUE(d.key_envelope.empty());
  EXPECT_TRUE(d.plain_key.empty());

  ASSERT_OK_AND_ASSIGN(VerifiedRecord rec,
                       VerifyProvisioningRecord(d.record, GroupChain(), m12_->supplier_root()));
  EXPECT_EQ(rec.group_id, g_);
  EXPECT_EQ(rec.member_id, "1.2");
  EXPECT_EQ(rec.job_id, "J-1");
  EXPECT_EQ(rec.device_uid, "DEV-0001");
  EXPECT_EQ(rec.cert_serial, d.DeviceCertificate()->SerialHex());
  EXPECT_EQ(rec.cert_sha256, crypto::Sha256(d.device_cert_der));
  EXPECT_EQ(rec.key_mode, "device");
  ASSERT_OK_AND_ASSIGN(auto payload, PayloadOf<v1::ProvisioningRecord>(d.record));
  EXPECT_EQ(payload.firmware_sha256(), Str(crypto::Sha256(ToBytes("firmware image v1.2.3"))));
  EXPECT_EQ(payload.config_sha256(), Str(crypto::Sha256(ToBytes("register settings"))));
  EXPECT_FALSE(payload.reissue());

  ASSERT_OK_AND_ASSIGN(auto jobs, ListJobs(*m12_));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].devices_provisioned, 1u);
  // Other members hold nothing until they import.
  ASSERT_OK_AND_ASSIGN(auto none, ListJobs(*m11_));
  EXPECT_TRUE(none.empty());
  EXPECT_THAT(Provisioner::Create(*m11_, g_, "J-1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("is not imported on this HSM")));
}

TEST_F(JobTest, HsmKeyModeWrapsTheKeyForTheTransportKey) {
  ASSERT_OK(ImportJob(*m12_, Package(Options("J-H", kHsmProfile))));
  auto p = Prov(*m12_, "J-H");
  ASSERT_NE(p, nullptr);
  crypto::PrivateKey transport = NewKey();
  crypto::Certificate transport_cert = SelfSigned(transport, "transport");
  DeviceRequest req;
  req.uid = "GW-1";
  req.transport_cert = transport_cert;
  ASSERT_OK_AND_ASSIGN(ProvisioningData d, p->Provision(req));
  ASSERT_FALSE(d.key_envelope.empty());
  EXPECT_TRUE(d.plain_key.empty());
  ASSERT_OK_AND_ASSIGN(crypto::SecretBytes der,
                       crypto::CmsDecrypt(d.key_envelope, transport, transport_cert));
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey device_key, crypto::PrivateKey::FromPkcs8Der(der));
  EXPECT_TRUE(device_key.Public().Equals(d.DeviceCertificate()->SubjectKey()));
  EXPECT_EQ(d.DeviceCertificate()->SubjectAttribute("OU"), "J-H");
  auto ext = d.DeviceCertificate()->Extension("1.3.6.1.4.1.32473.77.2");
  ASSERT_TRUE(ext.has_value());
  EXPECT_EQ(Str(*ext), std::string("\x0c\x06line 7"));
  EXPECT_NEAR(d.DeviceCertificate()->NotAfter() - SystemClock().Now(), 30 * 86400, 120);
  ASSERT_OK_AND_ASSIGN(auto rec, PayloadOf<v1::ProvisioningRecord>(d.record));
  EXPECT_EQ(rec.key_mode(), "hsm");
  EXPECT_EQ(rec.key_envelope_sha256(), Str(crypto::Sha256(d.key_envelope)));
  EXPECT_FALSE(rec.plain_key());

  // A bare transport public key: the envelope opens with the device's private key alone.
  DeviceRequest bare;
  bare.uid = "GW-2";
  bare.transport_key = transport.Public();
  ASSERT_OK_AND_ASSIGN(ProvisioningData d2, p->Provision(bare));
  clade::testing::WriteBinary(dir_.File("gw2.cms"), d2.key_envelope);
  crypto::SecretBytes tpem = transport.ToPkcs8Pem();
  clade::testing::WriteText(dir_.File("transport.key"), std::string(tpem.RevealSecretAsString()));
  auto r = clade::testing::Run("openssl cms -decrypt -binary -inform DER -in " +
                               dir_.File("gw2.cms") + " -inkey " + dir_.File("transport.key") +
                               " -out " + dir_.File("gw2.key"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Bytes key_der = clade::testing::ReadBinary(dir_.File("gw2.key"));
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey k2,
                       crypto::PrivateKey::FromPkcs8Der(crypto::SecretBytes::Adopt(key_der)));
  EXPECT_TRUE(k2.Public().Equals(d2.DeviceCertificate()->SubjectKey()));
}

TEST_F(JobTest, PlainKeysOnlyWhenTheProfileAllowsThem) {
  ASSERT_OK(ImportJob(*m12_, Package(Options("J-P", kPlainProfile))));
  auto p = Prov(*m12_, "J-P");
  ASSERT_NE(p, nullptr);
  DeviceRequest req;
  req.uid = "L-1";
  ASSERT_OK_AND_ASSIGN(ProvisioningData d, p->Provision(req));
  ASSERT_FALSE(d.plain_key.empty());
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey k, crypto::PrivateKey::FromPem(d.plain_key));
  EXPECT_TRUE(k.Public().Equals(d.DeviceCertificate()->SubjectKey()));
  ASSERT_OK_AND_ASSIGN(auto rec, PayloadOf<v1::ProvisioningRecord>(d.record));
  EXPECT_TRUE(rec.plain_key());
}

TEST_F(JobTest, ProvisioningWritesTheDeviceAndOneAuditEntryTogether) {
  ASSERT_OK(ImportJob(*m12_, Package(Options())));
  auto p = Prov(*m12_, "J-1");
  ASSERT_NE(p, nullptr);
  size_t devices = Rows(*m12_, internal::kDeviceNs);
  size_t audit = Rows(*m12_, internal::kAuditNs);
  ASSERT_OK_AND_ASSIGN(ProvisioningData d, p->Provision(DeviceKeyRequest("DEV-7")));
  EXPECT_EQ(Rows(*m12_, internal::kDeviceNs), devices + 1);
  EXPECT_EQ(Rows(*m12_, internal::kAuditNs), audit + 1);
  // The new entry is the last one and names the job, the uid and the certificate serial.
  v1::AuditEntry last;
  ASSERT_OK(m12_->state().Read([&](store::Transaction& tx) -> absl::Status {
    ASSIGN_OR_RETURN(auto rows, tx.List(internal::kAuditNs));
    if (rows.empty() || !last.ParseFromArray(rows.back().second.data(),
                                             static_cast<int>(rows.back().second.size()))) {
      return absl::InternalError("test: no audit entry");
    }
    return absl::OkStatus();
  }));
  EXPECT_EQ(last.operation(), audit_op::kProvision);
  EXPECT_EQ(last.group_id(), g_);
  EXPECT_EQ(last.member_id(), "1.2");
  EXPECT_THAT(last.subject(), HasSubstr("J-1/DEV-7"));
  EXPECT_THAT(last.subject(), HasSubstr(d.DeviceCertificate()->SerialHex()));
  // A refused device writes neither.
  std::string before = testing::StateDump(*m12_);
  EXPECT_THAT(p->Provision(DeviceKeyRequest("DEV-7")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already provisioned")));
  EXPECT_EQ(testing::StateDump(*m12_), before);
}

TEST_F(JobTest, FounderGoneMemberCarriesOn) {
  Bytes pkg = Package(Options());
  hsms_["SN-1"].reset();  // the founder is gone; its export and the package were made before
  founder_ = nullptr;
  ASSERT_OK(ImportJob(*m11_, pkg));
  auto p = Prov(*m11_, "J-1");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->member_id(), "1.1");
  ASSERT_OK_AND_ASSIGN(ProvisioningData d, p->Provision(DeviceKeyRequest("DEV-1")));
  EXPECT_OK(crypto::VerifyChain(*d.DeviceCertificate(), {oem_->issuing()}, oem_->root(),
                                crypto::VerifyOptions(clock_.Now())));
}

TEST_F(JobTest, CaKeyWrappedWithTheOemsOwnEnvelope) {
  crypto::PrivateKey issuing = LoadPem(dir_.File("oem/issuing.key"));
  ASSERT_OK_AND_ASSIGN(auto enc, ExportGroup(*m12_, g_));
  crypto::SecretBytes der = issuing.ToPkcs8Der();
  for (auto cipher : {crypto::CmsContentCipher::kAes256Gcm, crypto::CmsContentCipher::kAes256Cbc}) {
    ASSERT_OK_AND_ASSIGN(Bytes wrapped,
                         crypto::CmsEncrypt(der.RevealSecret(), enc.encryption, cipher));
    oem::PackageOptions o = Options(cipher == crypto::CmsContentCipher::kAes256Gcm ? "J-G" : "J-C");
    o.wrapped_ca_key = wrapped;
    ASSERT_OK(ImportJob(*m12_, Package(o)));
    auto p = Prov(*m12_, o.job_id);
    ASSERT_NE(p, nullptr);
    EXPECT_OK(p->Provision(DeviceKeyRequest("D-1")));
  }
}

// --- Refused packages. ---------------------------------------------------------------------------

TEST_F(JobTest, PackageOfAnotherOemRefused) {
  Bytes pkg = Package(Options(), &OtherOem());
  std::string before = testing::StateDump(*m12_);
  EXPECT_THAT(ImportJob(*m12_, pkg),
              StatusIs(kDenied, HasSubstr("package is not signed by the OEM root group " + g_ +
                                          " trusts ('O=Acme Devices,CN=Acme Devices Root CA')")));
  EXPECT_EQ(testing::StateDump(*m12_), before);
}

TEST_F(JobTest, PackageForAnotherGroupRefused) {
  Hsm& h4 = Make("SN-4");
  std::string other = Found(h4, "Other");
  ASSERT_OK(TrustOem(h4, other, oem_->root()));
  oem::PackageOptions o = Options();
  o.group_export_dir = ExportTo(h4, other, "gy");
  Bytes pkg = Package(o);
  EXPECT_OK(ImportJob(h4, pkg));
  EXPECT_THAT(ImportJob(*m12_, pkg),
              StatusIs(kDenied, HasSubstr("package is for group " + other +
                                          "; this HSM is not a member of it")));
}

TEST_F(JobTest, ExpiredPackageRefused) {
  int64_t now = SystemClock().Now();
  oem::PackageOptions o = Options();
  o.expires_at = now + 100;
  Bytes pkg = Package(o);
  clock_.Set(now + 200);
  EXPECT_THAT(ImportJob(*m12_, pkg),
              StatusIs(kDenied, HasSubstr("package expired at " + FormatTime(now + 100))));
  // At exactly expires_at it still imports; afterwards neither a new Provisioner nor one made
  // earlier provisions with it.
  clock_.Set(now + 100);
  ASSERT_OK(ImportJob(*m12_, pkg));
  clock_.Set(now + 50);
  auto p = Prov(*m12_, "J-1");
  ASSERT_NE(p, nullptr);
  clock_.Set(now + 60);
  EXPECT_OK(p->Provision(DeviceKeyRequest("D-1")));
  clock_.Set(now + 200);
  EXPECT_THAT(p->Provision(DeviceKeyRequest("D-2")),
              StatusIs(kDenied, HasSubstr("package expired at")));
  EXPECT_THAT(Provisioner::Create(*m12_, g_, "J-1"),
              StatusIs(kDenied, HasSubstr("package expired at")));
  // The OEM cannot make an already expired package.
  o.expires_at = now - 1;
  EXPECT_THAT(oem_->Package(o), StatusIs(kInvalid, HasSubstr("--expires is in the past")));
}

TEST_F(JobTest, GroupWithoutOemRootRefuses) {
  Hsm& h4 = Make("SN-4");
  std::string other = Found(h4, "NoOem");
  oem::PackageOptions o = Options();
  o.group_export_dir = ExportTo(h4, other, "gz");
  EXPECT_THAT(ImportJob(h4, Package(o)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("trusts no OEM root yet")));
}

TEST_F(JobTest, TamperedPackageWithoutResigningRefused) {
  Bytes pkg = Package(Options());
  EXPECT_THAT(ImportJob(*m12_, FlipPayloadBit(pkg)),
              StatusIs(kDenied, HasSubstr("message signature does not verify")));
  Bytes truncated(pkg.begin(), pkg.begin() + static_cast<long>(pkg.size() / 2));
  EXPECT_THAT(ImportJob(*m12_, truncated), StatusIs(kInvalid, HasSubstr("malformed message")));
}

TEST_F(JobTest, PackageWithAnUnknownFieldResignedByTheOemIsRefused) {
  Bytes forged = ResignedByOem(Package(Options()),
                               [](v1::JobPackage& p) { testing::AddUnknownField(&p, 99); });
  std::string before = testing::StateDump(*m12_);
  EXPECT_THAT(ImportJob(*m12_, forged),
              StatusIs(kInvalid, ::testing::Eq("malformed message: clade.v1.JobPackage payload "
                                               "has unknown field 99")));
  EXPECT_EQ(testing::StateDump(*m12_), before);
}

TEST_F(JobTest, EachFieldChangedAndResignedByTheOem) {
  Bytes pkg = Package(Options());
  auto import = [&](const std::function<void(v1::JobPackage&)>& change) {
    return ImportJob(*m12_, ResignedByOem(pkg, change));
  };
  // The forging path itself is sound: the unchanged payload re-signed imports.
  ASSERT_OK(import([](v1::JobPackage&) {}));

  // job_id: a new id is harmless by design — the OEM signed it, so it is simply another job.
  ASSERT_OK_AND_ASSIGN(JobSummary renamed,
                       import([](v1::JobPackage& p) { p.set_job_id("J-RENAMED"); }));
  EXPECT_EQ(renamed.job_id, "J-RENAMED");
  // A job id that breaks the syntax is refused.
  EXPECT_THAT(import([](v1::JobPackage& p) { p.set_job_id("J 1/../x"); }),
              StatusIs(kInvalid, HasSubstr("job id 'J 1/../x' must be 1 to 64 letters")));
  // The same id with other content.
  EXPECT_THAT(import([](v1::JobPackage& p) { p.set_issued_at(p.issued_at() + 1); }),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("job J-1 is already imported with other content")));
  // group_id: another group.
  EXPECT_THAT(import([](v1::JobPackage& p) { p.set_group_id(std::string(32, 'a')); }),
              StatusIs(kDenied, HasSubstr("package is for group " + std::string(32, 'a') +
                                          "; this HSM is not a member of it")));
  // profile_json: malformed, or naming a setting that does not exist.
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_profile_json("{not json");
              }),
              StatusIs(kInvalid, HasSubstr("profile: not valid JSON")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_profile_json(R"({"subject": {"CN": "x"}, "validity": {"days": 1}, )"
                                   R"("key_mode": "device", "ca": true})");
              }),
              StatusIs(kInvalid, HasSubstr("profile: unknown key 'ca'")));
  // device_ca_chain: the other OEM's issuing CA in place of ours; only one certificate; another
  // root at the end.
  const oem::Oem& mallory = OtherOem();
  EXPECT_THAT(import([&](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_device_ca_chain(0, DerString(mallory.issuing()));
              }),
              StatusIs(kDenied, HasSubstr("device-issuing CA is not issued by the OEM root")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.mutable_device_ca_chain()->RemoveLast();
              }),
              StatusIs(kDenied, HasSubstr("device CA chain must be the device-issuing CA and the "
                                          "OEM root the group trusts")));
  EXPECT_THAT(import([&](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_device_ca_chain(1, DerString(mallory.root()));
              }),
              StatusIs(kDenied, HasSubstr("device CA chain must be the device-issuing CA")));
  // The OEM root itself as the "issuing CA" (a certificate the root issued, but no issuing CA
  // key can match it: the wrapped key is the issuing CA's).
  EXPECT_THAT(import([&](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_device_ca_chain(0, DerString(oem_->root()));
              }),
              StatusIs(kDenied, HasSubstr("the wrapped device CA key does not match the "
                                          "device-issuing CA certificate")));
  // wrapped_ca_key: one bit of the authentication tag; or emptied.
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                std::string w = p.wrapped_ca_key();
                w.back() = static_cast<char>(w.back() ^ 0x01);
                p.set_wrapped_ca_key(w);
              }),
              StatusIs(kDenied, HasSubstr("the device CA key is not wrapped for this group's "
                                          "encryption key: ")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.clear_wrapped_ca_key();
              }),
              StatusIs(kDenied, HasSubstr("is not wrapped for this group's encryption key")));
  // firmware and its digest, config and its digest.
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_firmware("firmware image v6.6.6");
              }),
              StatusIs(kDenied, HasSubstr("firmware digest does not match the firmware")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_firmware_sha256(std::string(32, '\0'));
              }),
              StatusIs(kDenied, HasSubstr("firmware digest does not match the firmware")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.clear_firmware_sha256();
              }),
              StatusIs(kDenied, HasSubstr("firmware digest does not match the firmware")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_config("other registers");
              }),
              StatusIs(kDenied, HasSubstr("config digest does not match the config")));
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.clear_config();
              }),
              StatusIs(kDenied, HasSubstr("config digest does not match the config")));
  // expires_at: in the past.
  EXPECT_THAT(import([](v1::JobPackage& p) {
                p.set_job_id("J-2");
                p.set_expires_at(SystemClock().Now() - 10);
              }),
              StatusIs(kDenied, HasSubstr("package expired at")));
  // Dropping the firmware together with its digest is harmless by design: a job need not carry
  // firmware, and only the OEM can sign such a package.
  ASSERT_OK_AND_ASSIGN(JobSummary bare, import([](v1::JobPackage& p) {
                         p.set_job_id("J-BARE");
                         p.clear_firmware();
                         p.clear_firmware_sha256();
                       }));
  EXPECT_FALSE(bare.has_firmware);
  // None of the refusals left a job behind.
  ASSERT_OK_AND_ASSIGN(auto jobs, ListJobs(*m12_));
  std::vector<std::string> ids;
  for (const auto& j : jobs) ids.push_back(j.job_id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre("J-1", "J-RENAMED", "J-BARE"));
}

TEST_F(JobTest, CaKeyWrappedForAnotherKeyRefused) {
  crypto::PrivateKey issuing = LoadPem(dir_.File("oem/issuing.key"));
  crypto::PrivateKey other = NewKey();
  crypto::SecretBytes der = issuing.ToPkcs8Der();
  ASSERT_OK_AND_ASSIGN(Bytes wrapped,
                       crypto::CmsEncrypt(der.RevealSecret(), SelfSigned(other, "not the group")));
  oem::PackageOptions o = Options();
  o.wrapped_ca_key = wrapped;
  std::string before = testing::StateDump(*m12_);
  EXPECT_THAT(ImportJob(*m12_, Package(o)),
              StatusIs(kDenied, HasSubstr("the device CA key is not wrapped for this group's "
                                          "encryption key: ")));
  EXPECT_EQ(testing::StateDump(*m12_), before);
}

TEST_F(JobTest, CaKeyNotMatchingTheIssuingCaRefused) {
  ASSERT_OK_AND_ASSIGN(auto ex, ExportGroup(*m12_, g_));
  crypto::SecretBytes wrong = NewKey().ToPkcs8Der();
  ASSERT_OK_AND_ASSIGN(Bytes wrapped, crypto::CmsEncrypt(wrong.RevealSecret(), ex.encryption));
  oem::PackageOptions o = Options();
  o.wrapped_ca_key = wrapped;
  EXPECT_THAT(ImportJob(*m12_, Package(o)),
              StatusIs(kDenied, HasSubstr("the wrapped device CA key does not match the "
                                          "device-issuing CA certificate")));
  // Something that is not a key at all.
  ASSERT_OK_AND_ASSIGN(Bytes junk, crypto::CmsEncrypt(AsSpan("not a key"), ex.encryption));
  o.job_id = "J-2";
  o.wrapped_ca_key = junk;
  EXPECT_THAT(ImportJob(*m12_, Package(o)),
              StatusIs(kInvalid, HasSubstr("the wrapped device CA key is not a private key")));
}

TEST_F(JobTest, DeviceCaChainNotIssuedByTheOemRootRefused) {
  // Another OEM's issuing CA, with its key properly wrapped for the group, in a package signed by
  // our OEM's root: the chain check, not the key check, refuses it.
  const oem::Oem& mallory = OtherOem();
  crypto::PrivateKey mallory_issuing = LoadPem(dir_.File("oem2/issuing.key"));
  ASSERT_OK_AND_ASSIGN(auto ex, ExportGroup(*m12_, g_));
  crypto::SecretBytes der = mallory_issuing.ToPkcs8Der();
  ASSERT_OK_AND_ASSIGN(Bytes wrapped, crypto::CmsEncrypt(der.RevealSecret(), ex.encryption));
  Bytes forged = ResignedByOem(Package(Options()), [&](v1::JobPackage& p) {
    p.set_device_ca_chain(0, DerString(mallory.issuing()));
    p.set_wrapped_ca_key(Str(wrapped));
  });
  EXPECT_THAT(ImportJob(*m12_, forged),
              StatusIs(kDenied, HasSubstr("device-issuing CA is not issued by the OEM root: ")));
}

TEST_F(JobTest, OemRootChangedAfterImportStopsProvisioning) {
  ASSERT_OK(ImportJob(*m12_, Package(Options())));
  ASSERT_NE(Prov(*m12_, "J-1"), nullptr);
  ASSERT_OK(TrustOem(*m12_, g_, OtherOem().root()));
  EXPECT_THAT(
      Provisioner::Create(*m12_, g_, "J-1"),
      StatusIs(kDenied, HasSubstr("package is not signed by the OEM root group " + g_ +
                                  " trusts ('O=Mallory Devices,CN=Mallory Devices Root CA')")));
  // Only this member's copy changed: 1.1 still takes the package.
  EXPECT_OK(ImportJob(*m11_, Package(Options("J-9"))));
}

// What only OpenSSL knows — an unknown subject attribute or key usage name — is refused when the
// OEM packages (a trial certificate) and, by the comment in profile.cpp ("at packaging and
// import, not per device"), again at import of a package the OEM signed anyway.
TEST_F(JobTest, ProfileThatMakesNoCertificateRefused) {
  const std::string bad_attr =
      R"({"subject": {"XX": "x"}, "validity": {"days": 1}, "key_mode": "device"})";
  const std::string bad_ku = R"({"subject": {"CN": "x"}, "key_usage": ["signEverything"], )"
                             R"("validity": {"days": 1}, "key_mode": "device"})";
  int n = 0;
  for (const std::string& profile : {bad_attr, bad_ku}) {
    std::string job = "J-X" + std::to_string(n++);
    SCOPED_TRACE(profile);
    EXPECT_THAT(oem_->Package(Options(job, profile)),
                StatusIs(kInvalid, HasSubstr("profile does not make a valid certificate")));
    Bytes forged = ResignedByOem(Package(Options()), [&](v1::JobPackage& p) {
      p.set_job_id(job);
      p.set_profile_json(profile);
    });
    auto imported = ImportJob(*m12_, forged);
    EXPECT_FALSE(imported.ok()) << "an OEM-signed package whose profile makes no certificate was "
                                   "imported";
    if (imported.ok()) {
      // Then it fails per device instead.
      auto p = Prov(*m12_, job);
      ASSERT_NE(p, nullptr);
      auto d = p->Provision(DeviceKeyRequest("D-1"));
      EXPECT_FALSE(d.ok());
      ADD_FAILURE() << "provisioning with it: " << d.status();
    }
  }
}

// --- Profiles and device uids. -------------------------------------------------------------------

std::string ProfileError(const std::string& json) {
  auto p = ParseProfile(json);
  if (p.ok()) return "(accepted)";
  EXPECT_EQ(p.status().code(), kInvalid) << p.status();
  return std::string(p.status().message());
}

TEST(ProfileTest, TheIssuesProfile) {
  ASSERT_OK_AND_ASSIGN(DeviceProfile p, ParseProfile(kDeviceProfile));
  EXPECT_EQ(p.product, "Sensor");
  using Attr = std::pair<std::string, std::string>;
  EXPECT_THAT(p.subject, ::testing::ElementsAre(Attr{"CN", "{product} {uid}"}, Attr{"O", "Acme"}));
  EXPECT_EQ(p.not_after, crypto::kNoExpiry);
  EXPECT_EQ(p.validity_days, 0);
  EXPECT_THAT(p.key_usage, ::testing::ElementsAre("digitalSignature"));
  EXPECT_THAT(p.extended_key_usage, ::testing::ElementsAre("clientAuth"));
  EXPECT_EQ(p.key_mode, DeviceKeyMode::kDevice);
  EXPECT_FALSE(p.allow_plain_keys);
  ASSERT_OK_AND_ASSIGN(crypto::CertProfile c, DeviceCertProfile(p, "J-1", "U-1", 1000));
  EXPECT_THAT(c.subject, ::testing::ElementsAre(Attr{"CN", "Sensor U-1"}, Attr{"O", "Acme"}));
  EXPECT_EQ(c.not_before, 940);
  EXPECT_EQ(c.not_after, crypto::kNoExpiry);
}

TEST(ProfileTest, OrderTemplatesDaysAndExtensions) {
  ASSERT_OK_AND_ASSIGN(
      DeviceProfile p,
      ParseProfile(R"({"product": "P", "subject": {"O": "{product}", "2.5.4.5": "{uid}", )"
                   R"("CN": "{job}-{uid}-{uid}"}, "validity": {"days": 10}, "extensions": [)"
                   R"({"oid": "1.2.3.4", "critical": true, "der_hex": "0500"}, )"
                   R"({"oid": "1.2.3.5", "utf8": "hi"}], "key_mode": "hsm", )"
                   R"("allow_plain_keys": true})"));
  EXPECT_EQ(p.key_mode, DeviceKeyMode::kHsm);
  EXPECT_TRUE(p.allow_plain_keys);
  EXPECT_EQ(p.validity_days, 10);
  ASSERT_EQ(p.extensions.size(), 2u);
  EXPECT_TRUE(p.extensions[0].critical);
  EXPECT_EQ(p.extensions[0].value, (Bytes{0x05, 0x00}));
  EXPECT_FALSE(p.extensions[1].critical);
  EXPECT_EQ(p.extensions[1].value, (Bytes{0x0c, 0x02, 'h', 'i'}));
  ASSERT_OK_AND_ASSIGN(crypto::CertProfile c, DeviceCertProfile(p, "J", "U", 1000));
  using Attr = std::pair<std::string, std::string>;
  EXPECT_THAT(c.subject,
              ::testing::ElementsAre(Attr{"O", "P"}, Attr{"2.5.4.5", "U"}, Attr{"CN", "J-U-U"}));
  EXPECT_EQ(c.not_after, 1000 + 10 * 86400);
}

TEST(ProfileTest, RefusalsNameTheKey) {
  const std::string ok_rest = R"("validity": {"days": 1}, "key_mode": "device")";
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validty": {"days": 1}, )"
                         R"("validity": {"days": 1}, "key_mode": "device"})"),
            "profile: unknown key 'validty'");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"days": 1}, "key_mode": "tpm"})"),
            "profile: key_mode must be 'device' or 'hsm', not 'tpm'");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"days": 1}})"),
            "profile: key_mode is required: 'device' or 'hsm'");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"not_after": )"
                         R"("20251340000000Z"}, "key_mode": "device"})"),
            "profile: validity.not_after must be a GeneralizedTime like 99991231235959Z, not "
            "'20251340000000Z'");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"not_after": )"
                         R"("20250230000000Z"}, "key_mode": "device"})"),
            "profile: validity.not_after must be a GeneralizedTime like 99991231235959Z, not "
            "'20250230000000Z'");
  EXPECT_EQ(ProfileError("{" + ok_rest + "}"),
            "profile: subject is required: an object of attributes, e.g. {\"CN\": \"{product} "
            "{uid}\"}");
  EXPECT_EQ(ProfileError(R"({"subject": {}, )" + ok_rest + "}"),
            "profile: subject is required: an object of attributes, e.g. {\"CN\": \"{product} "
            "{uid}\"}");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": 5}, )" + ok_rest + "}"),
            "profile: subject.CN must be a string");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "key_mode": "device"})"),
            "profile: validity is required: {\"not_after\": \"99991231235959Z\"} or {\"days\": N}");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"days": 1, "not_after": )"
                         R"("99991231235959Z"}, "key_mode": "device"})"),
            "profile: validity needs exactly one of not_after or days");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"days": 0}, "key_mode": )"
                         R"("device"})"),
            "profile: validity.days must be a whole number from 1 to 36500");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "validity": {"weeks": 1}, "key_mode": )"
                         R"("device"})"),
            "profile: unknown key 'validity.weeks'");
  EXPECT_EQ(
      ProfileError(R"({"subject": {"CN": "x"}, "key_usage": "digitalSignature", )" + ok_rest + "}"),
      "profile: key_usage must be a list of strings");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "extensions": [{"oid": "1.2.3", "utf8": )"
                         R"("a", "der_hex": "0500"}], )" +
                         ok_rest + "}"),
            "profile: extensions[0] needs exactly one of utf8 or der_hex");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "extensions": [{"oid": "1.2.3", "value": )"
                         R"("a"}], )" +
                         ok_rest + "}"),
            "profile: unknown key 'extensions[0].value'");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "extensions": [{"oid": "1.2.3", "der_hex": )"
                         R"("05F"}], )" +
                         ok_rest + "}"),
            "profile: extensions[0].der_hex must be an even-length hex string");
  EXPECT_EQ(ProfileError(R"({"subject": {"CN": "x"}, "allow_plain_keys": "yes", )" + ok_rest + "}"),
            "profile: allow_plain_keys must be true or false");
  EXPECT_EQ(ProfileError("{not json"), "profile: not valid JSON");
  EXPECT_EQ(ProfileError("[1, 2]"), "profile: must be a JSON object");
  EXPECT_EQ(ProfileError(std::string(kMaxProfileJson + 1, ' ')), "profile: larger than 64 KiB");
}

TEST(ProfileTest, PastNotAfterRefusedWhenTheCertificateIsMade) {
  ASSERT_OK_AND_ASSIGN(DeviceProfile p,
                       ParseProfile(R"({"subject": {"CN": "x"}, "validity": {"not_after": )"
                                    R"("20200101000000Z"}, "key_mode": "device"})"));
  EXPECT_THAT(DeviceCertProfile(p, "J", "U", SystemClock().Now()),
              StatusIs(kInvalid, "profile: validity.not_after is in the past"));
}

TEST(ProfileTest, DeviceUids) {
  EXPECT_OK(CheckDeviceUid("AB:cd-01_x.y"));
  EXPECT_OK(CheckDeviceUid(std::string(128, 'a')));
  EXPECT_THAT(CheckDeviceUid(""), StatusIs(kInvalid, "device uid must be 1 to 128 characters"));
  EXPECT_THAT(CheckDeviceUid(std::string(129, 'a')),
              StatusIs(kInvalid, "device uid must be 1 to 128 characters"));
  EXPECT_THAT(
      CheckDeviceUid("a b"),
      StatusIs(kInvalid, "device uid 'a b' may hold only letters, digits, '.', '_', ':' and '-'"));
  EXPECT_THAT(CheckDeviceUid("../etc"), StatusIs(kInvalid, HasSubstr("may hold only")));
  EXPECT_THAT(CheckDeviceUid("job/uid"), StatusIs(kInvalid, HasSubstr("may hold only")));
}

// --- Per-device refusals and records. ------------------------------------------------------------

class ProvisionTest : public JobTest {};

TEST_F(ProvisionTest, UidReuseRefusedReissueAllowed) {
  Bytes pkg = Package(Options());
  ASSERT_OK(ImportJob(*m12_, pkg));
  auto p = Prov(*m12_, "J-1");
  ASSERT_NE(p, nullptr);
  ASSERT_OK_AND_ASSIGN(ProvisioningData first, p->Provision(DeviceKeyRequest("DEV-1")));
  EXPECT_THAT(
      p->Provision(DeviceKeyRequest("DEV-1")),
      StatusIs(absl::StatusCode::kAlreadyExists,
               "device uid DEV-1 was already provisioned for job J-1 (serial " +
                   first.DeviceCertificate()->SerialHex() + "); use --reissue to issue it again"));
  DeviceRequest again = DeviceKeyRequest("DEV-1");
  again.reissue = true;
  ASSERT_OK_AND_ASSIGN(ProvisioningData second, p->Provision(again));
  EXPECT_NE(second.cert_serial, first.cert_serial);
  ASSERT_OK_AND_ASSIGN(auto rec, PayloadOf<v1::ProvisioningRecord>(second.record));
  EXPECT_TRUE(rec.reissue());
  DeviceRequest never = DeviceKeyRequest("DEV-2");
  never.reissue = true;
  EXPECT_THAT(p->Provision(never),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("device uid DEV-2 was never provisioned for job J-1")));
  // A reissue does not count as a new device.
  ASSERT_OK_AND_ASSIGN(auto jobs, ListJobs(*m12_));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].devices_provisioned, 1u);
  // Another member keeps its own list of uids: 1.1 provisions DEV-1 of the same job too.
  ASSERT_OK(ImportJob(*m11_, pkg));
  auto p11 = Prov(*m11_, "J-1");
  ASSERT_NE(p11, nullptr);
  EXPECT_OK(p11->Provision(DeviceKeyRequest("DEV-1")));
}

TEST_F(ProvisionTest, KeyModeMismatchRefused) {
  ASSERT_OK(ImportJob(*m12_, Package(Options())));
  ASSERT_OK(ImportJob(*m12_, Package(Options("J-H", kHsmProfile))));
  auto dev = Prov(*m12_, "J-1");
  auto hsm = Prov(*m12_, "J-H");
  ASSERT_NE(dev, nullptr);
  ASSERT_NE(hsm, nullptr);
  DeviceRequest none;
  none.uid = "U-1";
  EXPECT_THAT(
      dev->Provision(none),
      StatusIs(kInvalid, "job J-1 expects the device's own key: give --public-key or --csr"));
  EXPECT_THAT(hsm->Provision(DeviceKeyRequest("U-1")),
              StatusIs(kInvalid, HasSubstr("job J-H has the HSM make the device key")));
  EXPECT_THAT(hsm->Provision(none),
              StatusIs(kInvalid,
                       "job J-H requires --transport-key: its profile does not allow "
                       "plain device keys"));
  DeviceRequest bad_uid = DeviceKeyRequest("U 1");
  EXPECT_THAT(dev->Provision(bad_uid), StatusIs(kInvalid, HasSubstr("may hold only")));
  EXPECT_EQ(Rows(*m12_, internal::kDeviceNs), 0u);
}

TEST_F(ProvisionTest, CsrWithBadSelfSignatureRefused) {
  crypto::PrivateKey chip = NewKey();
  crypto::SecretBytes pem = chip.ToPkcs8Pem();
  clade::testing::WriteText(dir_.File("chip.key"), std::string(pem.RevealSecretAsString()));
  auto r = clade::testing::Run("openssl req -new -key " + dir_.File("chip.key") +
                               " -subj /CN=chip -outform DER -out " + dir_.File("chip.der"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Bytes csr = clade::testing::ReadBinary(dir_.File("chip.der"));
  ASSERT_OK_AND_ASSIGN(crypto::PublicKey key, crypto::VerifiedCsrKey(AsString(csr)));
  EXPECT_TRUE(key.Equals(chip.Public()));
  csr.back() ^= 0x01;  // inside the ECDSA s value
  EXPECT_THAT(crypto::VerifiedCsrKey(AsString(csr)),
              StatusIs(kDenied, "CSR self-signature does not verify"));
}

TEST_F(ProvisionTest, RecordsVerifyOnlyAgainstTheirGroupAndSigner) {
  ASSERT_OK(ImportJob(*m12_, Package(Options())));
  auto p = Prov(*m12_, "J-1");
  ASSERT_NE(p, nullptr);
  ASSERT_OK_AND_ASSIGN(ProvisioningData d, p->Provision(DeviceKeyRequest("DEV-1")));
  std::vector<crypto::Certificate> chain = GroupChain();
  const crypto::Certificate& root = m12_->supplier_root();
  EXPECT_OK(VerifyProvisioningRecord(d.record, chain, root));

  // Against another group's chain.
  Hsm& h4 = Make("SN-4");
  std::string other = Found(h4, "Other");
  ASSERT_OK_AND_ASSIGN(auto other_export, ExportGroup(h4, other));
  EXPECT_THAT(
      VerifyProvisioningRecord(d.record, other_export.group_ca_chain, root),
      StatusIs(kDenied,
               HasSubstr("provisioning record is not signed by a member of group " + other)));

  // The member id (or group id) changed and re-signed by the same HSM: its member certificate
  // still names 1.2.
  ASSERT_OK_AND_ASSIGN(wire::Envelope env, wire::OpenMessage(d.record, kProvisioningRecordType));
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey identity, m12_->IdentityKey());
  auto resign = [&](const std::function<void(v1::ProvisioningRecord&)>& change) {
    v1::ProvisioningRecord rec;
    EXPECT_TRUE(rec.ParseFromArray(env.payload.data(), static_cast<int>(env.payload.size())));
    change(rec);
    std::string payload = rec.SerializeAsString();
    auto sealed =
        wire::SealMessage(kProvisioningRecordType, AsSpan(payload), identity, env.signer_chain);
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : Bytes{};
  };
  EXPECT_OK(VerifyProvisioningRecord(resign([](v1::ProvisioningRecord&) {}), chain, root));
  EXPECT_THAT(VerifyProvisioningRecord(
                  resign([](v1::ProvisioningRecord& r) { r.set_member_id("1.1"); }), chain, root),
              StatusIs(kDenied, "provisioning record claims member 1.1 of group " + g_ +
                                    ", the signer is 1.2 of group " + g_));
  EXPECT_THAT(VerifyProvisioningRecord(
                  resign([](v1::ProvisioningRecord& r) { r.set_group_id(std::string(32, 'b')); }),
                  chain, root),
              StatusIs(kDenied, HasSubstr("provisioning record claims member 1.2 of group " +
                                          std::string(32, 'b'))));
  // Signed by an HSM outside the group (its identity chain, no member certificate).
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey h4_key, h4.IdentityKey());
  ASSERT_OK_AND_ASSIGN(Bytes outsider, wire::SealMessage(kProvisioningRecordType, env.payload,
                                                         h4_key, h4.IdentityChain()));
  EXPECT_THAT(
      VerifyProvisioningRecord(outsider, chain, root),
      StatusIs(kDenied, HasSubstr("provisioning record is not signed by a member of group")));
  // Changed without re-signing.
  EXPECT_THAT(VerifyProvisioningRecord(FlipPayloadBit(d.record), chain, root),
              StatusIs(kDenied, HasSubstr("message signature does not verify")));
}

}  // namespace
}  // namespace clade::hsm
