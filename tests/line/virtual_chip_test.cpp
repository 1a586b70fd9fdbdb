// Virtual chips on the factory line: a tray is made, a real group member provisions its chips
// (device key mode with the chip's own key, hsm key mode wrapped to the chip's transport
// certificate), the chips are programmed and locked; then every refusal of programming and every
// failure `verify` must catch: unlocked chip, certificate of another OEM, key mismatch, firmware
// or config altered.
#include "line/sim/virtual_chip.h"

#include <map>
#include <memory>

#include "base/clock.h"
#include "base/files.h"
#include "crypto/digest.h"
#include "hsm/group.h"
#include "hsm/job.h"
#include "hsm/world.h"
#include "oem/oem.h"

namespace clade::line {
namespace {

using ::clade::testing::StatusIs;
using hsm::testing::Bytes;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kDeviceProfile[] =
    R"({"product": "Sensor", "subject": {"CN": "{product} {uid}", "O": "Acme"}, )"
    R"("validity": {"days": 30}, "key_usage": ["digitalSignature"], "key_mode": "device"})";
constexpr char kHsmProfile[] =
    R"({"product": "Gateway", "subject": {"CN": "{product} {uid}"}, "validity": {"days": 30}, )"
    R"("key_usage": ["digitalSignature"], "key_mode": "hsm"})";

Bytes ToBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

class LineTest : public hsm::testing::World {
 protected:
  void SetUp() override {
    World::SetUp();
    if (HasFatalFailure()) return;
    auto o = oem::Oem::Init(dir_.File("oem"), "Acme Devices");
    ASSERT_OK(o);
    oem_.emplace(*std::move(o));
    auto other = oem::Oem::Init(dir_.File("other-oem"), "Acme Devices");
    ASSERT_OK(other);
    other_oem_.emplace(*std::move(other));
    member_ = &Make("SN-1");
    g_ = Found(*member_, "Acme");
    ASSERT_FALSE(g_.empty());
    ASSERT_OK(hsm::TrustOem(*member_, g_, oem_->root()));
    auto ex = hsm::ExportGroup(*member_, g_);
    ASSERT_OK(ex);
    ASSERT_OK(hsm::WriteGroupExport(*ex, dir_.File("gx")));
    dev_pkg_ = Package("J-DEV", kDeviceProfile);
    hsm_pkg_ = Package("J-HSM", kHsmProfile);
    ASSERT_OK(hsm::ImportJob(*member_, dev_pkg_));
    ASSERT_OK(hsm::ImportJob(*member_, hsm_pkg_));
    auto tray = Tray::Make(dir_.File("tray"), 4);
    ASSERT_OK(tray);
    tray_.emplace(*std::move(tray));
  }

  Bytes Package(const std::string& job, const std::string& profile) {
    oem::PackageOptions o;
    o.job_id = job;
    o.group_export_dir = dir_.File("gx");
    o.pinned_supplier_root = supplier_->root();
    o.profile_json = profile;
    o.firmware = ToBytes("firmware image v1.2.3");
    o.config = ToBytes("register settings");
    auto p = oem_->Package(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? p->package : Bytes{};
  }

  VirtualChip Chip(const std::string& uid) {
    auto c = tray_->Chip(uid);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) std::abort();
    return *std::move(c);
  }

  // What the member hands to `uid`: device mode with the chip's public key, hsm mode wrapped to
  // its transport certificate.
  absl::StatusOr<hsm::ProvisioningData> ProvisionFor(const std::string& uid, bool hsm_mode,
                                                     const std::string& device_uid = "") {
    VirtualChip chip = Chip(uid);
    ASSIGN_OR_RETURN(auto p, hsm::Provisioner::Create(*member_, g_, hsm_mode ? "J-HSM" : "J-DEV"));
    hsm::DeviceRequest req;
    req.uid = device_uid.empty() ? uid : device_uid;
    if (hsm_mode) {
      ASSIGN_OR_RETURN(req.transport_cert, chip.TransportCertificate());
    } else {
      ASSIGN_OR_RETURN(req.device_key, chip.DevicePublicKey());
    }
    ASSIGN_OR_RETURN(auto data, p->Provision(req));
    provisioners_.push_back(std::move(p));  // firmware and config are views into its job
    return data;
  }

  void ProgramAll() {
    for (size_t i = 0; i < tray_->uids().size(); ++i) {
      const std::string& uid = tray_->uids()[i];
      auto data = ProvisionFor(uid, i % 2 == 1);
      ASSERT_OK(data);
      VirtualChip chip = Chip(uid);
      ASSERT_OK(chip.Program(*data));
    }
  }

  ChipVerifyOptions Options(const Bytes& pkg) {
    ChipVerifyOptions o(SystemClock().Now());
    o.oem_root = &oem_->root();
    auto d = JobDigestsFromPackage(pkg, oem_->root());
    EXPECT_TRUE(d.ok()) << d.status();
    if (d.ok()) o.job = *d;
    return o;
  }

  // Failures per uid, for chips that failed.
  std::map<std::string, std::string> Failed(const ChipVerifyOptions& o) {
    std::map<std::string, std::string> out;
    for (const auto& r : tray_->Verify(o)) {
      for (const auto& f : r.failures) out[r.uid] += f + "\n";
    }
    return out;
  }

  std::optional<oem::Oem> oem_, other_oem_;
  hsm::Hsm* member_ = nullptr;
  std::string g_;
  Bytes dev_pkg_, hsm_pkg_;
  std::optional<Tray> tray_;
  std::vector<std::unique_ptr<hsm::Provisioner>> provisioners_;
};

TEST_F(LineTest, MakesATray) {
  EXPECT_EQ(tray_->uids(),
            (std::vector<std::string>{"CHIP-000001", "CHIP-000002", "CHIP-000003", "CHIP-000004"}));
  VirtualChip chip = Chip("CHIP-000002");
  EXPECT_EQ(chip.uid(), "CHIP-000002");
  EXPECT_FALSE(chip.locked());
  EXPECT_GT(chip.manufactured_at(), 0);
  EXPECT_OK(CheckPrivateFile(chip.dir() + "/device.key"));
  EXPECT_OK(CheckPrivateFile(chip.dir() + "/transport.key"));
  auto t = chip.TransportCertificate();
  ASSERT_OK(t);
  EXPECT_NE(t->Extension("2.5.29.15"), std::nullopt);  // keyUsage
  // The two keys differ, and from chip to chip.
  auto pub = chip.DevicePublicKey();
  ASSERT_OK(pub);
  EXPECT_FALSE(pub->Equals(t->SubjectKey()));
  auto pub1 = Chip("CHIP-000001").DevicePublicKey();
  ASSERT_OK(pub1);
  EXPECT_FALSE(pub->Equals(*pub1));
  // Not over an existing tray; a reopened tray lists the same chips.
  EXPECT_THAT(Tray::Make(dir_.File("tray"), 2),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("holds 4 chips")));
  auto again = Tray::Open(dir_.File("tray"));
  ASSERT_OK(again);
  EXPECT_EQ(again->uids(), tray_->uids());
  auto custom = Tray::Make(dir_.File("tray2"), 2, "LOT7-");
  ASSERT_OK(custom);
  EXPECT_EQ(custom->uids().back(), "LOT7-000002");
  EXPECT_THAT(tray_->Chip("../x"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("uid")));
  EXPECT_THAT(tray_->Chip("CHIP-000009"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no chip")));
}

TEST_F(LineTest, ProgramsAndVerifiesBothKeyModes) {
  ProgramAll();
  auto pub_before = Chip("CHIP-000001").DevicePublicKey();
  ASSERT_OK(pub_before);
  for (const std::string& uid : tray_->uids()) {
    VirtualChip chip = Chip(uid);
    EXPECT_TRUE(chip.locked()) << uid;
    EXPECT_GT(chip.programmed_at(), 0);
    EXPECT_TRUE(PathExists(chip.dir() + "/flash/device.crt"));
    EXPECT_TRUE(PathExists(chip.dir() + "/flash/firmware.bin"));
    EXPECT_OK(CheckPrivateFile(chip.dir() + "/device.key"));
  }
  // Device mode: the chip kept its own key.
  auto pub_after = Chip("CHIP-000001").DevicePublicKey();
  ASSERT_OK(pub_after);
  EXPECT_TRUE(pub_after->Equals(*pub_before));
  // Both jobs carry the same images, so either package's digests fit every chip.
  EXPECT_THAT(Failed(Options(dev_pkg_)), IsEmpty());
  EXPECT_THAT(Failed(Options(hsm_pkg_)), IsEmpty());
  ChipVerifyOptions no_job(SystemClock().Now());
  no_job.oem_root = &oem_->root();
  EXPECT_THAT(Failed(no_job), IsEmpty());
}

TEST_F(LineTest, ProgramsFromProvisionOutputFiles) {
  auto data = ProvisionFor("CHIP-000002", /*hsm_mode=*/true);
  ASSERT_OK(data);
  std::string out = dir_.File("out");
  ASSERT_OK(ProvisioningBundle::From(*data).Write(out, BundleWrite::kDurable));
  auto in = ProvisioningBundle::Read(out);
  ASSERT_OK(in);
  VirtualChip chip = Chip("CHIP-000002");
  ASSERT_OK(chip.Program(in->input));
  EXPECT_THAT(chip.Verify(Options(hsm_pkg_)), IsEmpty());
}

TEST_F(LineTest, TakesAPlainKeyWhenTheJobAllowsIt) {
  Bytes pkg = Package(
      "J-PLAIN", R"({"product": "Legacy", "subject": {"CN": "{uid}"}, "validity": {"days": 1}, )"
                 R"("key_mode": "hsm", "allow_plain_keys": true})");
  ASSERT_OK(hsm::ImportJob(*member_, pkg));
  auto p = hsm::Provisioner::Create(*member_, g_, "J-PLAIN");
  ASSERT_OK(p);
  hsm::DeviceRequest req;
  req.uid = "CHIP-000004";
  auto data = (*p)->Provision(req);
  ASSERT_OK(data);
  ASSERT_FALSE(data->plain_key.empty());
  VirtualChip chip = Chip("CHIP-000004");
  ASSERT_OK(chip.Program(*data));
  auto cert = data->DeviceCertificate();
  ASSERT_OK(cert);
  auto pub = Chip("CHIP-000004").DevicePublicKey();
  ASSERT_OK(pub);
  EXPECT_TRUE(pub->Equals(cert->SubjectKey()));
  EXPECT_THAT(Chip("CHIP-000004").Verify(Options(pkg)), IsEmpty());
}

TEST_F(LineTest, LockedChipRefusesSecondProgramming) {
  auto data = ProvisionFor("CHIP-000001", false);
  ASSERT_OK(data);
  VirtualChip chip = Chip("CHIP-000001");
  ASSERT_OK(chip.Program(*data));
  Bytes crt = clade::testing::ReadBinary(chip.dir() + "/flash/device.crt");
  auto again = hsm::Provisioner::Create(*member_, g_, "J-DEV");
  ASSERT_OK(again);
  hsm::DeviceRequest req;
  req.uid = "CHIP-000001";
  req.reissue = true;
  auto pub = chip.DevicePublicKey();
  ASSERT_OK(pub);
  req.device_key = *pub;
  auto data2 = (*again)->Provision(req);
  ASSERT_OK(data2);
  EXPECT_THAT(chip.Program(*data2), StatusIs(absl::StatusCode::kFailedPrecondition,
                                             HasSubstr("chip CHIP-000001 is locked; it was "
                                                       "programmed at ")));
  // Also when opened afresh from the directory.
  EXPECT_THAT(Chip("CHIP-000001").Program(*data2),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("is locked")));
  EXPECT_EQ(clade::testing::ReadBinary(chip.dir() + "/flash/device.crt"), crt);
}

TEST_F(LineTest, RefusesACertificateForAnotherKey) {
  // Device mode: a certificate made for chip 3's key offered to chip 1.
  auto data = ProvisionFor("CHIP-000003", false, "CHIP-000001");
  ASSERT_OK(data);
  VirtualChip chip = Chip("CHIP-000001");
  EXPECT_THAT(chip.Program(*data),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("certificate does not match the key on chip CHIP-000001")));
  EXPECT_FALSE(Chip("CHIP-000001").locked());
  EXPECT_FALSE(PathExists(chip.dir() + "/flash"));
  // Hsm mode: a key wrapped to chip 3's transport key does not open on chip 1.
  auto wrapped = ProvisionFor("CHIP-000003", true, "CHIP-000001-H");
  ASSERT_OK(wrapped);
  EXPECT_THAT(chip.Program(*wrapped), StatusIs(absl::StatusCode::kPermissionDenied,
                                               HasSubstr("cannot open the device key envelope")));
  EXPECT_FALSE(Chip("CHIP-000001").locked());
}

TEST_F(LineTest, VerifyCatchesEveryFailure) {
  ProgramAll();
  ASSERT_THAT(Failed(Options(dev_pkg_)), IsEmpty());
  auto chip = [&](int n) { return Chip("CHIP-00000" + std::to_string(n)); };

  // 1: firmware altered. 2: config altered. 3: key on chip replaced. 4: cert from another OEM.
  clade::testing::WriteText(chip(1).dir() + "/flash/firmware.bin", "firmware image v6.6.6");
  clade::testing::WriteText(chip(2).dir() + "/flash/config.bin", "evil settings");
  auto k = crypto::PrivateKey::Generate(crypto::Curve::kP256);
  ASSERT_OK(k);
  ASSERT_OK(WriteFileAtomic(chip(3).dir() + "/device.key",
                            std::string(k->ToPkcs8Pem().RevealSecretAsString()), 0600));
  {
    // A certificate for chip 4's key from an OEM of the same name, with its own chain.
    auto pub = chip(4).DevicePublicKey();
    ASSERT_OK(pub);
    Bytes key_pem = clade::testing::ReadBinary(dir_.File("other-oem/issuing.key"));
    auto issuing_key = crypto::PrivateKey::FromPem(crypto::SecretBytes::Adopt(key_pem));
    ASSERT_OK(issuing_key);
    crypto::CertProfile p;
    p.subject = {{"CN", "Sensor CHIP-000004"}, {"O", "Acme"}};
    p.not_after = SystemClock().Now() + 86400;
    p.key_usage = {"digitalSignature"};
    auto forged = crypto::IssueCertificate(p, *pub, &other_oem_->issuing(), *issuing_key);
    ASSERT_OK(forged);
    ASSERT_OK(WriteFileAtomic(chip(4).dir() + "/flash/device.crt", forged->Pem()));
    ASSERT_OK(WriteFileAtomic(
        chip(4).dir() + "/flash/chain.pem",
        crypto::Certificate::ChainToPem({other_oem_->issuing(), other_oem_->root()})));
  }
  auto failed = Failed(Options(dev_pkg_));
  ASSERT_EQ(failed.size(), 4u);
  EXPECT_THAT(failed["CHIP-000001"], HasSubstr("firmware digest"));
  EXPECT_THAT(failed["CHIP-000002"], HasSubstr("config digest"));
  EXPECT_THAT(failed["CHIP-000003"], HasSubstr("key on the chip does not match"));
  EXPECT_THAT(failed["CHIP-000004"], HasSubstr("does not chain to the OEM root"));
  // Only those: chip 1 still chains, chip 4's images are fine.
  EXPECT_THAT(failed["CHIP-000001"], ::testing::Not(HasSubstr("chain")));
  EXPECT_THAT(failed["CHIP-000004"], ::testing::Not(HasSubstr("digest")));

  // The anchor is the given root: against the other OEM's root, the genuine chips fail.
  ChipVerifyOptions other(SystemClock().Now());
  other.oem_root = &other_oem_->root();
  auto by_other = Failed(other);
  EXPECT_THAT(by_other["CHIP-000002"], HasSubstr("does not chain"));
  // …and chip 4, whose certificate is the other OEM's, passes: it is only a matter of anchor.
  EXPECT_EQ(by_other.count("CHIP-000004"), 0u);
}

TEST_F(LineTest, VerifyCatchesAnUnlockedChip) {
  auto data = ProvisionFor("CHIP-000001", false);
  ASSERT_OK(data);
  ASSERT_OK(Chip("CHIP-000001").Program(*data));
  auto failed = Failed(Options(dev_pkg_));
  EXPECT_EQ(failed.size(), 3u);
  EXPECT_EQ(failed.count("CHIP-000001"), 0u);
  EXPECT_THAT(failed["CHIP-000002"], HasSubstr("chip CHIP-000002 is not locked"));
  // A programmed chip whose lock bit was cleared.
  std::string json = clade::testing::ReadText(Chip("CHIP-000001").dir() + "/chip.json");
  json.replace(json.find("\"locked\": true"), 14, "\"locked\": false");
  clade::testing::WriteText(Chip("CHIP-000001").dir() + "/chip.json", json);
  EXPECT_THAT(Failed(Options(dev_pkg_))["CHIP-000001"], HasSubstr("is not locked"));
}

TEST_F(LineTest, JobPackageMustBeTheOemRootsSigned) {
  EXPECT_THAT(
      JobDigestsFromPackage(dev_pkg_, other_oem_->root()),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not signed by the OEM root")));
  auto d = JobDigestsFromPackage(dev_pkg_, oem_->root());
  ASSERT_OK(d);
  EXPECT_EQ(d->job_id, "J-DEV");
  EXPECT_EQ(d->firmware_sha256, crypto::Sha256(std::string("firmware image v1.2.3")));
}

}  // namespace
}  // namespace clade::line
