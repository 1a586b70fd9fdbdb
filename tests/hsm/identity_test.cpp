// A genuine HSM: manufactured by a supplier, and refused when anything about it is not genuine.
#include <sys/stat.h>

#include <cstdlib>

#include "base/clock.h"
#include "base/files.h"
#include "crypto/random.h"
#include "hsm/hsm.h"
#include "hsm/pki.h"
#include "supplier/supplier.h"
#include "support/testing.h"

namespace clade::hsm {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = supplier::Supplier::Init(dir_.File("supplier"), "Acme HSM Works");
    ASSERT_OK(s);
    supplier_.emplace(*std::move(s));
    auto other = supplier::Supplier::Init(dir_.File("other-supplier"), "Counterfeit Inc");
    ASSERT_OK(other);
    other_.emplace(*std::move(other));
  }
  Certifier By(const supplier::Supplier& s) {
    return [&s](const IdentityRequest& r) { return s.CertifyHsm(r); };
  }
  store::KekConfig Kek() { return store::KekConfig{}; }

  clade::testing::TempDir dir_;
  std::optional<supplier::Supplier> supplier_;
  std::optional<supplier::Supplier> other_;
};

TEST_F(IdentityTest, InitMakesAGenuineHsmThatReopens) {
  std::string state = dir_.File("hsm");
  ASSERT_OK_AND_ASSIGN(auto h, Hsm::Init(state, Kek(), "SN-0001", By(*supplier_)));
  HsmInfo info = h->Info();
  EXPECT_EQ(info.serial, "SN-0001");
  EXPECT_THAT(info.identity.subject, HasSubstr("SN-0001"));
  EXPECT_EQ(info.supplier_root.fingerprint, supplier_->root().Fingerprint());
  EXPECT_THAT(info.kek, HasSubstr("key file"));
  EXPECT_TRUE(info.groups.empty());
  h.reset();

  ASSERT_OK_AND_ASSIGN(auto again, Hsm::Open(state));
  EXPECT_EQ(again->Info().identity.fingerprint, info.identity.fingerprint);
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey id_key, again->IdentityKey());
  EXPECT_TRUE(id_key.Public().Equals(again->identity().identity.SubjectKey()));
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey wrap_key, again->WrapKey());
  EXPECT_TRUE(wrap_key.Public().Equals(again->wrap_cert().SubjectKey()));
  EXPECT_OK(KindOf(again->identity().identity));
  EXPECT_EQ(*KindOf(again->identity().identity), CertKind::kHsmIdentity);
  EXPECT_EQ(*KindOf(again->wrap_cert()), CertKind::kHsmWrap);
  EXPECT_TRUE(again->identity().identity.IsCa());
  EXPECT_EQ(again->identity().identity.PathLen(), 1);
}

TEST_F(IdentityTest, InitRefusesAnExistingState) {
  std::string state = dir_.File("hsm");
  ASSERT_OK(Hsm::Init(state, Kek(), "SN-1", By(*supplier_)));
  EXPECT_THAT(Hsm::Init(state, Kek(), "SN-2", By(*supplier_)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("refusing to overwrite")));
  ASSERT_OK_AND_ASSIGN(auto h, Hsm::Open(state));
  EXPECT_EQ(h->Info().serial, "SN-1");
}

TEST_F(IdentityTest, InitRefusesCertificatesForAnotherKey) {
  Certifier swapped_keys = [this](const IdentityRequest& r) {
    IdentityRequest forged = r;
    forged.identity_key = crypto::PrivateKey::Generate(crypto::Curve::kP256)->Public();
    return supplier_->CertifyHsm(forged);
  };
  EXPECT_THAT(Hsm::Init(dir_.File("hsm"), Kek(), "SN-1", swapped_keys),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("does not certify this HSM's identity key")));
  EXPECT_FALSE(PathExists(dir_.File("hsm") + "/state.db"));
}

TEST_F(IdentityTest, InitRefusesAnotherSerial) {
  Certifier other_serial = [this](const IdentityRequest& r) {
    IdentityRequest forged = r;
    forged.serial = "SN-9999";
    return supplier_->CertifyHsm(forged);
  };
  EXPECT_THAT(Hsm::Init(dir_.File("hsm"), Kek(), "SN-1", other_serial),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("certified serial SN-9999")));
}

TEST_F(IdentityTest, InitRefusesIdentityAndWrapSwapped) {
  Certifier swapped = [this](const IdentityRequest& r) -> absl::StatusOr<IdentityCertificates> {
    ASSIGN_OR_RETURN(IdentityCertificates c, supplier_->CertifyHsm(r));
    std::swap(c.identity, c.wrap);
    return c;
  };
  EXPECT_THAT(
      Hsm::Init(dir_.File("hsm"), Kek(), "SN-1", swapped),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("is an HSM wrap certificate, expected an HSM identity certificate")));
}

TEST_F(IdentityTest, InitRefusesBadSerialSyntax) {
  EXPECT_THAT(Hsm::Init(dir_.File("hsm"), Kek(), "SN 1/2", By(*supplier_)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("may hold only")));
}

TEST_F(IdentityTest, GenuineCheckRefusesAnotherSupplierRoot) {
  ASSERT_OK_AND_ASSIGN(auto h, Hsm::Init(dir_.File("hsm"), Kek(), "SN-1", By(*other_)));
  // Genuine under its own supplier, not under ours.
  EXPECT_OK(VerifyGenuineHsm(h->identity().identity, h->identity().issuing, other_->root(),
                             SystemClock().Now()));
  EXPECT_THAT(VerifyGenuineHsm(h->identity().identity, h->identity().issuing, supplier_->root(),
                               SystemClock().Now()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is not issued by the supplier root")));
  // Nor does pairing it with our issuing CA help.
  EXPECT_THAT(VerifyGenuineHsm(h->identity().identity, supplier_->issuing(), supplier_->root(),
                               SystemClock().Now()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is not issued by the supplier root")));
}

TEST_F(IdentityTest, GenuineCheckRefusesCertificateOfWrongKindOrPosition) {
  ASSERT_OK_AND_ASSIGN(auto h, Hsm::Init(dir_.File("hsm"), Kek(), "SN-1", By(*supplier_)));
  // An HSM identity key is a CA (it founds groups). What it issues must never pass as an HSM,
  // even when it carries the HSM identity marker.
  ASSERT_OK_AND_ASSIGN(crypto::PrivateKey id_key, h->IdentityKey());
  ASSERT_OK_AND_ASSIGN(auto fake_key, crypto::PrivateKey::Generate(crypto::Curve::kP256));
  crypto::CertProfile p;
  p.subject = {{"CN", "Clade HSM FAKE"}, {"serialNumber", "FAKE"}};
  p.not_after = h->identity().identity.NotAfter();
  p.is_ca = true;
  p.path_len = 0;
  p.key_usage = {"digitalSignature", "keyCertSign"};
  p.policies = {KindOid(CertKind::kHsmIdentity)};
  ASSERT_OK_AND_ASSIGN(
      auto fake, crypto::IssueCertificate(p, fake_key.Public(), &h->identity().identity, id_key));
  EXPECT_THAT(
      VerifyGenuineHsm(fake, h->identity().identity, supplier_->root(), SystemClock().Now()),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("expected a supplier issuing CA certificate")));
  // The root in the issuing position is refused by kind too.
  EXPECT_THAT(VerifyGenuineHsm(h->identity().identity, supplier_->root(), supplier_->root(),
                               SystemClock().Now()),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("expected a supplier issuing CA certificate")));
  EXPECT_THAT(
      VerifyHsmWrapCert(h->identity().identity, h->identity(), supplier_->root(),
                        SystemClock().Now()),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("expected an HSM wrap certificate")));
}

TEST_F(IdentityTest, ExpiredIdentityIsNotGenuine) {
  ASSERT_OK_AND_ASSIGN(auto h, Hsm::Init(dir_.File("hsm"), Kek(), "SN-1", By(*supplier_)));
  int64_t later = h->identity().identity.NotAfter() + 86400;
  EXPECT_THAT(
      VerifyGenuineHsm(h->identity().identity, h->identity().issuing, supplier_->root(), later),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("expired")));
}

TEST_F(IdentityTest, WrongKekDoesNotOpenTheHsm) {
  std::string state = dir_.File("hsm");
  ASSERT_OK(Hsm::Init(state, Kek(), "SN-1", By(*supplier_)));
  auto other_key = crypto::RandomBytes(32);
  ASSERT_OK(WriteFileAtomic(state + "/kek.key", other_key, 0600));
  EXPECT_THAT(Hsm::Open(state),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("wrong KEK")));
}

TEST_F(IdentityTest, SupplierLoadRefusesReadableIssuingKey) {
  ASSERT_EQ(::chmod((dir_.File("supplier") + "/issuing.key").c_str(), 0644), 0);
  EXPECT_THAT(supplier::Supplier::Load(dir_.File("supplier")),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("chmod 600")));
}

TEST_F(IdentityTest, SupplierInitRefusesToOverwrite) {
  EXPECT_THAT(supplier::Supplier::Init(dir_.File("supplier"), "Again"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("refusing to overwrite")));
}

}  // namespace
}  // namespace clade::hsm
