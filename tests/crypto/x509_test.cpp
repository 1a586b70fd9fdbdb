#include "crypto/x509.h"

#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "base/clock.h"
#include "crypto/digest.h"
#include "crypto/offline_ca.h"
#include "support/testing.h"

namespace clade::crypto {
namespace {

using ::clade::testing::StatusIs;
using ::clade::testing::TempDir;
using ::clade::testing::WriteText;
using ::testing::HasSubstr;

constexpr char kGroupPolicy[] = "2.25.244985840291328483061033119097598340044.1";
constexpr char kOtherPolicy[] = "2.25.244985840291328483061033119097598340044.2";
constexpr int64_t kDay = 86400;

// clade::testing::Run, under a name that gtest's Test::Run does not hide.
clade::testing::CommandResult Shell(const std::string& command) {
  return clade::testing::Run(command);
}

CertProfile RootProfile(const std::string& cn = "Clade Root") {
  CertProfile p;
  p.subject = {{"O", "Clade"}, {"CN", cn}};
  p.not_after = kNoExpiry;
  p.is_ca = true;
  p.key_usage = {"keyCertSign", "cRLSign"};
  return p;
}

CertProfile CaProfile(const std::string& cn, int path_len) {
  CertProfile p = RootProfile(cn);
  p.not_after = SystemClock().Now() + 365 * kDay;
  p.path_len = path_len;
  return p;
}

CertProfile LeafProfile(const std::string& cn = "HSM 0001") {
  CertProfile p;
  p.subject = {{"O", "Supplier"}, {"CN", cn}, {"serialNumber", "0001"}};
  p.not_after = SystemClock().Now() + 30 * kDay;
  p.key_usage = {"digitalSignature"};
  p.extended_key_usage = {"clientAuth"};
  p.policies = {kGroupPolicy};
  return p;
}

// A root (P-384) → intermediate CA with pathlen 0 (P-256) → leaf (P-256).
struct Pki {
  PrivateKey root_key = PrivateKey::Generate(Curve::kP384).value();
  PrivateKey inter_key = PrivateKey::Generate(Curve::kP256).value();
  PrivateKey leaf_key = PrivateKey::Generate(Curve::kP256).value();
  Certificate root = IssueCertificate(RootProfile(), root_key.Public(), nullptr, root_key).value();
  Certificate inter =
      IssueCertificate(CaProfile("Clade Intermediate", 0), inter_key.Public(), &root, root_key)
          .value();
  Certificate leaf = IssueCertificate(LeafProfile(), leaf_key.Public(), &inter, inter_key).value();
};

std::vector<uint8_t> FlipLastByte(std::vector<uint8_t> der) {
  der.back() ^= 0x01;
  return der;
}

// ---------------------------------------------------------------------------------------------
// Issuing and accessors

TEST(X509ChainTest, IssuesAndVerifiesRootIntermediateLeaf) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(
      auto path, VerifyChain(pki.leaf, {pki.inter}, pki.root, VerifyOptions(SystemClock().Now())));
  ASSERT_EQ(path.size(), 3u);
  EXPECT_EQ(path[0], pki.leaf);
  EXPECT_EQ(path[1], pki.inter);
  EXPECT_EQ(path[2], pki.root);
}

TEST(X509ChainTest, SignatureAlgorithmFollowsIssuerCurve) {
  Pki pki;
  EXPECT_EQ(X509_get_signature_nid(pki.root.x509()), NID_ecdsa_with_SHA384);
  EXPECT_EQ(X509_get_signature_nid(pki.inter.x509()), NID_ecdsa_with_SHA384);
  EXPECT_EQ(X509_get_signature_nid(pki.leaf.x509()), NID_ecdsa_with_SHA256);
  EXPECT_EQ(X509_get_version(pki.leaf.x509()), X509_VERSION_3);
}

TEST(X509ChainTest, VerifiesSelfSignedRootAgainstItself) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(auto path,
                       VerifyChain(pki.root, {}, pki.root, VerifyOptions(SystemClock().Now())));
  ASSERT_EQ(path.size(), 1u);
  EXPECT_EQ(path[0], pki.root);
}

TEST(X509ChainTest, IgnoresUnneededIntermediates) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(
      auto path, VerifyChain(pki.inter, {pki.leaf}, pki.root, VerifyOptions(SystemClock().Now())));
  EXPECT_EQ(path.size(), 2u);
}

// Without a not_before, a certificate starts a minute before the issuer's clock reads (some slack
// for a verifier whose clock lags).
TEST(CertificateTest, ADefaultNotBeforeIsAMinuteBeforeTheClock) {
  PrivateKey key = PrivateKey::Generate(Curve::kP256).value();
  CertProfile p = RootProfile();
  p.not_after = 2000000000;
  ASSERT_OK_AND_ASSIGN(Certificate cert,
                       IssueCertificate(p, key.Public(), nullptr, key, FixedClock(1800000000)));
  EXPECT_EQ(cert.NotBefore(), 1800000000 - 60);
  EXPECT_THAT(IssueCertificate(p, key.Public(), nullptr, key, FixedClock(2000000060)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "not_after must be after not_before and at most 9999"));
}

TEST(CertificateTest, AccessorsReflectTheProfile) {
  Pki pki;
  EXPECT_TRUE(pki.root.IsCa());
  EXPECT_EQ(pki.root.PathLen(), -1);
  EXPECT_TRUE(pki.inter.IsCa());
  EXPECT_EQ(pki.inter.PathLen(), 0);
  EXPECT_FALSE(pki.leaf.IsCa());
  EXPECT_EQ(pki.leaf.PathLen(), -1);

  EXPECT_TRUE(pki.leaf.HasPolicy(kGroupPolicy));
  EXPECT_FALSE(pki.leaf.HasPolicy(kOtherPolicy));
  EXPECT_FALSE(pki.root.HasPolicy(kGroupPolicy));
  EXPECT_FALSE(pki.leaf.HasPolicy("not an oid"));

  EXPECT_TRUE(pki.leaf.HasExtendedKeyUsage("clientAuth"));
  EXPECT_TRUE(pki.leaf.HasExtendedKeyUsage("1.3.6.1.5.5.7.3.2"));
  EXPECT_FALSE(pki.leaf.HasExtendedKeyUsage("serverAuth"));
  EXPECT_FALSE(pki.root.HasExtendedKeyUsage("clientAuth"));

  EXPECT_EQ(pki.leaf.SubjectAttribute("CN"), "HSM 0001");
  EXPECT_EQ(pki.leaf.SubjectAttribute("O"), "Supplier");
  EXPECT_EQ(pki.leaf.SubjectAttribute("serialNumber"), "0001");
  EXPECT_EQ(pki.leaf.SubjectAttribute("OU"), std::nullopt);
  EXPECT_EQ(pki.leaf.SubjectAttribute("noSuchAttribute"), std::nullopt);
  EXPECT_THAT(pki.leaf.Subject(), HasSubstr("CN=HSM 0001"));
  EXPECT_THAT(pki.leaf.Subject(), HasSubstr("O=Supplier"));
  EXPECT_THAT(pki.leaf.Issuer(), HasSubstr("CN=Clade Intermediate"));
  EXPECT_EQ(pki.root.Subject(), pki.root.Issuer());

  EXPECT_TRUE(pki.leaf.SubjectKey().Equals(pki.leaf_key.Public()));
  EXPECT_EQ(pki.leaf.Fingerprint(), Hex(Sha256(pki.leaf.Der())));
  EXPECT_EQ(pki.leaf.Fingerprint().size(), 64u);
}

TEST(CertificateTest, SubjectIsRfc2253Ordered) {
  Pki pki;
  EXPECT_EQ(pki.root.Subject(), "CN=Clade Root,O=Clade");
}

TEST(CertificateTest, NoExpiryIsGeneralizedTime99991231235959Z) {
  Pki pki;
  EXPECT_EQ(pki.root.NotAfter(), kNoExpiry);
  const ASN1_TIME* t = X509_get0_notAfter(pki.root.x509());
  EXPECT_EQ(ASN1_STRING_type(t), V_ASN1_GENERALIZEDTIME);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(t)),
                        static_cast<size_t>(ASN1_STRING_length(t))),
            "99991231235959Z");
}

TEST(CertificateTest, UtcTimeBefore2050GeneralizedTimeFrom2050) {
  ASSERT_OK_AND_ASSIGN(auto key, PrivateKey::Generate(Curve::kP256));
  CertProfile p = RootProfile();
  p.not_before = 1700000000;      // 2023-11-14T22:13:20Z
  p.not_after = 2524608000 + 10;  // 2050-01-01T00:00:10Z
  ASSERT_OK_AND_ASSIGN(auto cert, IssueCertificate(p, key.Public(), nullptr, key));
  EXPECT_EQ(ASN1_STRING_type(X509_get0_notBefore(cert.x509())), V_ASN1_UTCTIME);
  EXPECT_EQ(ASN1_STRING_type(X509_get0_notAfter(cert.x509())), V_ASN1_GENERALIZEDTIME);
  EXPECT_EQ(cert.NotBefore(), 1700000000);
  EXPECT_EQ(cert.NotAfter(), 2524608010);
}

TEST(CertificateTest, DefaultNotBeforeAllowsOneMinuteOfSkew) {
  Pki pki;
  int64_t now = SystemClock().Now();
  EXPECT_LE(pki.leaf.NotBefore(), now - 60);
  EXPECT_GE(pki.leaf.NotBefore(), now - 120);
}

TEST(CertificateTest, DefaultSerialIsRandomPositiveAndAtMost16Bytes) {
  Pki pki;
  const ASN1_INTEGER* serial = X509_get0_serialNumber(pki.leaf.x509());
  EXPECT_EQ(ASN1_STRING_type(serial), V_ASN1_INTEGER);  // not V_ASN1_NEG_INTEGER
  EXPECT_LE(ASN1_STRING_length(serial), 16);
  EXPECT_LE(pki.leaf.SerialHex().size(), 32u);
  EXPECT_NE(pki.leaf.SerialHex(), "0");
  EXPECT_NE(pki.leaf.SerialHex(), pki.inter.SerialHex());
}

TEST(CertificateTest, ExplicitSerialIsUsed) {
  ASSERT_OK_AND_ASSIGN(auto key, PrivateKey::Generate(Curve::kP256));
  CertProfile p = RootProfile();
  p.serial = std::vector<uint8_t>{0x00, 0x0a, 0xbc, 0xff};
  ASSERT_OK_AND_ASSIGN(auto cert, IssueCertificate(p, key.Public(), nullptr, key));
  EXPECT_EQ(cert.SerialHex(), "0abcff");
  p.serial = std::vector<uint8_t>{0x00, 0x00};
  EXPECT_THAT(IssueCertificate(p, key.Public(), nullptr, key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zero")));
}

TEST(CertificateTest, KeyIdentifiersLinkSubjectToIssuer) {
  Pki pki;
  const ASN1_OCTET_STRING* root_ski = X509_get0_subject_key_id(pki.root.x509());
  const ASN1_OCTET_STRING* inter_ski = X509_get0_subject_key_id(pki.inter.x509());
  ASSERT_NE(root_ski, nullptr);
  ASSERT_NE(inter_ski, nullptr);
  ASSERT_NE(X509_get0_authority_key_id(pki.root.x509()), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(pki.root.x509()), root_ski), 0);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(pki.inter.x509()), root_ski), 0);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(pki.leaf.x509()), inter_ski), 0);
  // Method 1: SHA-1 of the subjectPublicKey BIT STRING.
  const ASN1_BIT_STRING* bits = X509_get0_pubkey_bitstr(pki.inter.x509());
  unsigned char md[20];
  unsigned int len = 0;
  ASSERT_EQ(EVP_Digest(ASN1_STRING_get0_data(bits), static_cast<size_t>(ASN1_STRING_length(bits)),
                       md, &len, EVP_sha1(), nullptr),
            1);
  EXPECT_EQ(std::vector<uint8_t>(md, md + len),
            std::vector<uint8_t>(ASN1_STRING_get0_data(inter_ski),
                                 ASN1_STRING_get0_data(inter_ski) + ASN1_STRING_length(inter_ski)));
}

TEST(CertificateTest, ExtensionCriticality) {
  Pki pki;
  auto critical = [](const Certificate& c, int nid) {
    int i = X509_get_ext_by_NID(c.x509(), nid, -1);
    return i < 0 ? -1 : X509_EXTENSION_get_critical(X509_get_ext(c.x509(), i));
  };
  EXPECT_EQ(critical(pki.leaf, NID_basic_constraints), 1);
  EXPECT_EQ(critical(pki.leaf, NID_key_usage), 1);
  EXPECT_EQ(critical(pki.leaf, NID_ext_key_usage), 0);
  EXPECT_EQ(critical(pki.leaf, NID_certificate_policies), 0);
  EXPECT_EQ(critical(pki.leaf, NID_subject_key_identifier), 0);
  EXPECT_EQ(critical(pki.leaf, NID_authority_key_identifier), 0);
}

TEST(CertificateTest, RawExtensionRoundTrips) {
  ASSERT_OK_AND_ASSIGN(auto key, PrivateKey::Generate(Curve::kP256));
  CertProfile p = RootProfile();
  std::vector<uint8_t> value = {0x04, 0x03, 'a', 'b', 'c'};  // OCTET STRING "abc"
  std::string oid = std::string(kGroupPolicy) + ".7";
  p.extra_extensions.push_back({oid, false, value});
  ASSERT_OK_AND_ASSIGN(auto cert, IssueCertificate(p, key.Public(), nullptr, key));
  EXPECT_EQ(cert.Extension(oid), value);
  EXPECT_EQ(cert.Extension(std::string(kGroupPolicy) + ".8"), std::nullopt);
  ASSERT_OK_AND_ASSIGN(auto reparsed, Certificate::FromDer(cert.Der()));
  EXPECT_EQ(reparsed.Extension(oid), value);
}

TEST(CertificateTest, LongPolicyOidSurvivesOpenSslText) {
  Pki pki;
  TempDir dir;
  WriteText(dir.File("leaf.pem"), pki.leaf.Pem());
  auto r = Shell("openssl x509 -noout -text -in " + dir.File("leaf.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(std::string("Policy: ") + kGroupPolicy));
}

TEST(CertificateTest, PemAndCopyRoundTrip) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(auto parsed, Certificate::FromPem(pki.leaf.Pem()));
  EXPECT_EQ(parsed, pki.leaf);
  EXPECT_EQ(parsed.Subject(), pki.leaf.Subject());
  Certificate copy = parsed;
  EXPECT_EQ(copy, pki.leaf);
  Certificate assigned = pki.root;
  assigned = copy;
  EXPECT_EQ(assigned.SerialHex(), pki.leaf.SerialHex());
  ASSERT_OK_AND_ASSIGN(
      auto path, VerifyChain(copy, {pki.inter}, pki.root, VerifyOptions(SystemClock().Now())));
  EXPECT_EQ(path.size(), 3u);
}

TEST(CertificateTest, ChainPemRoundTripsInOrder) {
  Pki pki;
  std::string pem = Certificate::ChainToPem({pki.leaf, pki.inter, pki.root});
  ASSERT_OK_AND_ASSIGN(auto chain, Certificate::ChainFromPem(pem));
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0], pki.leaf);
  EXPECT_EQ(chain[1], pki.inter);
  EXPECT_EQ(chain[2], pki.root);
}

TEST(CertificateTest, FromDerRefusesTruncatedInput) {
  Pki pki;
  std::vector<uint8_t> der = pki.leaf.Der();
  der.resize(der.size() - 10);
  EXPECT_THAT(Certificate::FromDer(der),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed certificate")));
  EXPECT_THAT(Certificate::FromDer({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed certificate")));
}

TEST(CertificateTest, FromDerRefusesTrailingBytes) {
  Pki pki;
  std::vector<uint8_t> der = pki.leaf.Der();
  der.push_back(0x00);
  EXPECT_THAT(Certificate::FromDer(der),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("trailing bytes")));
}

TEST(CertificateTest, FromDerRefusesOversizedInput) {
  std::vector<uint8_t> big(kMaxCertificateDer + 1, 0x30);
  EXPECT_THAT(Certificate::FromDer(big),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

TEST(CertificateTest, FromDerRefusesGarbage) {
  std::vector<uint8_t> junk = {0x30, 0x03, 0x02, 0x01, 0x01};
  EXPECT_THAT(Certificate::FromDer(junk),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed certificate")));
}

TEST(CertificateTest, FromPemRefusesTwoCertificates) {
  Pki pki;
  EXPECT_THAT(Certificate::FromPem(pki.leaf.Pem() + pki.inter.Pem()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected exactly one")));
}

TEST(CertificateTest, FromPemRefusesNoCertificate) {
  EXPECT_THAT(Certificate::FromPem("hello\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no certificate")));
  EXPECT_THAT(
      Certificate::FromPem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
      StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(CertificateTest, FromPemRefusesOtherPemBlocks) {
  ASSERT_OK_AND_ASSIGN(auto key, PrivateKey::Generate(Curve::kP256));
  EXPECT_THAT(Certificate::FromPem(key.Public().ToPem()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("PUBLIC KEY")));
}

TEST(CertificateTest, ChainFromPemRefusesTooManyOrTooLargeOrEmpty) {
  Pki pki;
  std::string pem;
  for (size_t i = 0; i <= kMaxChainLength; ++i) pem += pki.leaf.Pem();
  EXPECT_THAT(Certificate::ChainFromPem(pem),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("more than 16")));
  EXPECT_THAT(Certificate::ChainFromPem(std::string(kMaxChainPem + 1, '\n')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
  EXPECT_THAT(Certificate::ChainFromPem(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no certificate")));
}

// ---------------------------------------------------------------------------------------------
// IssueCertificate refusals

TEST(X509IssueTest, RefusesIssuerKeyThatDoesNotMatchIssuerCertificate) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(auto other, PrivateKey::Generate(Curve::kP384));
  EXPECT_THAT(IssueCertificate(LeafProfile(), pki.leaf_key.Public(), &pki.root, other),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("issuer key does not match")));
}

TEST(X509IssueTest, RefusesSelfSignedWithAnotherKey) {
  ASSERT_OK_AND_ASSIGN(auto a, PrivateKey::Generate(Curve::kP256));
  ASSERT_OK_AND_ASSIGN(auto b, PrivateKey::Generate(Curve::kP256));
  EXPECT_THAT(IssueCertificate(RootProfile(), a.Public(), nullptr, b),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("self-signed")));
}

TEST(X509IssueTest, RefusesBadProfiles) {
  ASSERT_OK_AND_ASSIGN(auto key, PrivateKey::Generate(Curve::kP256));
  auto issue = [&](const CertProfile& p) {
    return IssueCertificate(p, key.Public(), nullptr, key);
  };
  CertProfile p = RootProfile();
  p.not_after = 0;
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after")));
  p = RootProfile();
  p.key_usage = {"keyCertSign", "everything"};
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("everything")));
  p = RootProfile();
  p.policies = {"clade-policy"};
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("policy OID")));
  p = RootProfile();
  p.subject = {};
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject")));
  p = RootProfile();
  p.subject = {{"noSuchAttribute", "x"}};
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("noSuchAttribute")));
  p = LeafProfile();
  p.path_len = 1;
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("path_len")));
  p = RootProfile();
  p.extra_extensions.push_back({"2.5.29.19", true, {0x30, 0x00}});  // a second basicConstraints
  EXPECT_THAT(issue(p), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate")));
}

// ---------------------------------------------------------------------------------------------
// VerifyChain refusals, each with its named reason

TEST(X509VerifyTest, RefusesLeafFromAnotherRoot) {
  Pki pki;
  Pki other;
  EXPECT_THAT(
      VerifyChain(other.leaf, {other.inter}, pki.root, VerifyOptions(SystemClock().Now())),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("(depth 1) is not issued by the trust anchor 'CN=Clade Root,O=Clade'")));
  EXPECT_THAT(VerifyChain(other.leaf, {}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("certificate 'serialNumber=0001,CN=HSM 0001,O=Supplier' (depth 0) "
                                 "is not issued by the trust anchor")));
  // The other root passed as an intermediate does not help.
  EXPECT_THAT(VerifyChain(other.leaf, {other.inter, other.root}, pki.root,
                          VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("is not issued by the trust anchor")));
}

TEST(X509VerifyTest, RefusesLeafFromImpostorRootWithTheSameName) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(auto evil_key, PrivateKey::Generate(Curve::kP384));
  ASSERT_OK_AND_ASSIGN(auto evil_root,
                       IssueCertificate(RootProfile(), evil_key.Public(), nullptr, evil_key));
  ASSERT_OK_AND_ASSIGN(
      auto leaf, IssueCertificate(LeafProfile(), pki.leaf_key.Public(), &evil_root, evil_key));
  EXPECT_THAT(VerifyChain(leaf, {}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("(depth 0) is not issued by the trust anchor")));
}

TEST(X509VerifyTest, RefusesExpiredLeaf) {
  Pki pki;
  CertProfile p = LeafProfile();
  p.not_before = 1767139200;  // 2025-12-31T00:00:00Z
  p.not_after = 1767225600;   // 2026-01-01T00:00:00Z
  ASSERT_OK_AND_ASSIGN(auto leaf,
                       IssueCertificate(p, pki.leaf_key.Public(), &pki.inter, pki.inter_key));
  EXPECT_THAT(VerifyChain(leaf, {pki.inter}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("certificate 'serialNumber=0001,CN=HSM 0001,O=Supplier' (depth 0) "
                                 "has expired (not after 2026-01-01T00:00:00Z)")));
}

TEST(X509VerifyTest, RefusesNotYetValidLeaf) {
  Pki pki;
  CertProfile p = LeafProfile();
  p.not_before = SystemClock().Now() + kDay;
  p.not_after = SystemClock().Now() + 2 * kDay;
  ASSERT_OK_AND_ASSIGN(auto leaf,
                       IssueCertificate(p, pki.leaf_key.Public(), &pki.inter, pki.inter_key));
  EXPECT_THAT(
      VerifyChain(leaf, {pki.inter}, pki.root, VerifyOptions(SystemClock().Now())),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("(depth 0) is not yet valid")));
  // …but it is valid at a time inside its window.
  VerifyOptions at(p.not_before + 10);
  EXPECT_OK(VerifyChain(leaf, {pki.inter}, pki.root, at));
}

TEST(X509VerifyTest, AtTimeAfterExpiryRefusesIntermediate) {
  Pki pki;
  // The intermediate lives 365 days, the leaf 30.
  VerifyOptions at(SystemClock().Now() + 400 * kDay);
  EXPECT_THAT(
      VerifyChain(pki.leaf, {pki.inter}, pki.root, at),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr("certificate 'CN=Clade Intermediate,O=Clade' (depth 1) has expired")));
}

TEST(X509VerifyTest, RefusesIntermediateWithoutCaFlag) {
  Pki pki;
  CertProfile p = LeafProfile("Not A CA");
  p.policies.clear();
  ASSERT_OK_AND_ASSIGN(auto fake_ca,
                       IssueCertificate(p, pki.inter_key.Public(), &pki.root, pki.root_key));
  ASSERT_OK_AND_ASSIGN(
      auto leaf, IssueCertificate(LeafProfile(), pki.leaf_key.Public(), &fake_ca, pki.inter_key));
  EXPECT_THAT(VerifyChain(leaf, {fake_ca}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("(depth 1) is not a CA")));
}

TEST(X509VerifyTest, RefusesPathLengthViolation) {
  Pki pki;  // pki.inter has pathlen 0
  ASSERT_OK_AND_ASSIGN(auto sub_key, PrivateKey::Generate(Curve::kP256));
  ASSERT_OK_AND_ASSIGN(auto sub_ca, IssueCertificate(CaProfile("Sub CA", -1), sub_key.Public(),
                                                     &pki.inter, pki.inter_key));
  ASSERT_OK_AND_ASSIGN(auto leaf,
                       IssueCertificate(LeafProfile(), pki.leaf_key.Public(), &sub_ca, sub_key));
  EXPECT_THAT(VerifyChain(leaf, {sub_ca, pki.inter}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("'CN=Clade Intermediate,O=Clade' (depth 2) exceeds the path "
                                 "length constraint")));
}

TEST(X509VerifyTest, RefusesIntermediateWithoutKeyCertSign) {
  Pki pki;
  CertProfile p = CaProfile("No Cert Sign", -1);
  p.key_usage = {"digitalSignature", "cRLSign"};
  ASSERT_OK_AND_ASSIGN(auto ca,
                       IssueCertificate(p, pki.inter_key.Public(), &pki.root, pki.root_key));
  ASSERT_OK_AND_ASSIGN(auto leaf,
                       IssueCertificate(LeafProfile(), pki.leaf_key.Public(), &ca, pki.inter_key));
  EXPECT_THAT(VerifyChain(leaf, {ca}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("'CN=No Cert Sign,O=Clade' (depth 1) key usage does not allow "
                                 "certificate signing")));
}

TEST(X509VerifyTest, RefusesTamperedSignature) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(auto tampered, Certificate::FromDer(FlipLastByte(pki.leaf.Der())));
  EXPECT_THAT(VerifyChain(tampered, {pki.inter}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("(depth 0) signature does not verify")));
}

TEST(X509VerifyTest, RefusesTamperedIntermediate) {
  Pki pki;
  ASSERT_OK_AND_ASSIGN(auto tampered, Certificate::FromDer(FlipLastByte(pki.inter.Der())));
  EXPECT_THAT(VerifyChain(pki.leaf, {tampered}, pki.root, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("(depth 1) signature does not verify")));
}

TEST(X509VerifyTest, RefusesNonSelfSignedAnchor) {
  Pki pki;
  EXPECT_THAT(VerifyChain(pki.leaf, {}, pki.inter, VerifyOptions(SystemClock().Now())),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a self-signed")));
}

TEST(X509VerifyTest, ChecksLeafKeyUsage) {
  Pki pki;
  VerifyOptions opts(SystemClock().Now());
  opts.leaf_key_usage = {"digitalSignature"};
  EXPECT_OK(VerifyChain(pki.leaf, {pki.inter}, pki.root, opts));
  opts.leaf_key_usage = {"digitalSignature", "keyAgreement"};
  EXPECT_THAT(VerifyChain(pki.leaf, {pki.inter}, pki.root, opts),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("certificate 'serialNumber=0001,CN=HSM 0001,O=Supplier' key usage "
                                 "does not allow keyAgreement")));
  opts.leaf_key_usage = {"frobnicate"};
  EXPECT_THAT(VerifyChain(pki.leaf, {pki.inter}, pki.root, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frobnicate")));
}

// ---------------------------------------------------------------------------------------------
// PKCS#10

struct OpensslCsr {
  TempDir dir;
  std::string pem;
  std::vector<uint8_t> der;
  std::string public_pem;
};

void MakeCsr(OpensslCsr& csr) {
  auto r = Shell(
      "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=dev "
      "-keyout " +
      csr.dir.File("key.pem") + " -out " + csr.dir.File("csr.pem") + " && openssl req -in " +
      csr.dir.File("csr.pem") + " -outform DER -out " + csr.dir.File("csr.der") +
      " && openssl pkey -in " + csr.dir.File("key.pem") + " -pubout");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  csr.pem = testing::ReadText(csr.dir.File("csr.pem"));
  csr.der = testing::ReadBinary(csr.dir.File("csr.der"));
  csr.public_pem = r.out;
}

TEST(CsrTest, AcceptsOpensslCsrAsPemAndDer) {
  OpensslCsr csr;
  ASSERT_NO_FATAL_FAILURE(MakeCsr(csr));
  ASSERT_OK_AND_ASSIGN(auto expected, PublicKey::FromPem(csr.public_pem));
  ASSERT_OK_AND_ASSIGN(auto from_pem, VerifiedCsrKey(csr.pem));
  EXPECT_TRUE(from_pem.Equals(expected));
  ASSERT_OK_AND_ASSIGN(auto from_der, VerifiedCsrKey(std::string(csr.der.begin(), csr.der.end())));
  EXPECT_TRUE(from_der.Equals(expected));
  EXPECT_EQ(from_der.curve(), Curve::kP256);
}

TEST(CsrTest, RefusesCorruptedSignature) {
  OpensslCsr csr;
  ASSERT_NO_FATAL_FAILURE(MakeCsr(csr));
  std::vector<uint8_t> bad = FlipLastByte(csr.der);
  EXPECT_THAT(VerifiedCsrKey(std::string(bad.begin(), bad.end())),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("CSR self-signature does not verify")));
}

TEST(CsrTest, RefusesMalformedInput) {
  EXPECT_THAT(VerifiedCsrKey("not a csr"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(VerifiedCsrKey(std::string(64 * 1024 + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
  Pki pki;
  EXPECT_THAT(VerifiedCsrKey(pki.leaf.Pem()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CERTIFICATE REQUEST")));
}

// ---------------------------------------------------------------------------------------------
// Interoperability with other implementations

TEST(X509InteropTest, OpensslVerifiesIssuedChain) {
  Pki pki;
  TempDir dir;
  WriteText(dir.File("root.pem"), pki.root.Pem());
  WriteText(dir.File("inter.pem"), pki.inter.Pem());
  WriteText(dir.File("leaf.pem"), pki.leaf.Pem());
  auto r = Shell("openssl verify -x509_strict -CAfile " + dir.File("root.pem") + " -untrusted " +
                 dir.File("inter.pem") + " " + dir.File("leaf.pem"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("OK"));
}

TEST(X509InteropTest, GnutlsVerifiesIssuedChain) {
  Pki pki;
  TempDir dir;
  WriteText(dir.File("root.pem"), pki.root.Pem());
  WriteText(dir.File("chain.pem"), Certificate::ChainToPem({pki.leaf, pki.inter}));
  WriteText(dir.File("full.pem"), Certificate::ChainToPem({pki.leaf, pki.inter, pki.root}));
  // certtool's --verify-chain takes no CA option (it trusts the chain's own last certificate);
  // --verify checks the chain against the given trust anchor.
  auto r = Shell("certtool --verify --load-ca-certificate " + dir.File("root.pem") + " --infile " +
                 dir.File("chain.pem"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Chain verification output: Verified"));
  r = Shell("certtool --verify-chain --infile " + dir.File("full.pem"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Chain verification output: Verified"));
  // And GnuTLS refuses the chain against another root.
  Pki other;
  WriteText(dir.File("other.pem"), other.root.Pem());
  r = Shell("certtool --verify --load-ca-certificate " + dir.File("other.pem") + " --infile " +
            dir.File("chain.pem"));
  EXPECT_NE(r.exit_code, 0) << r.out;
}

TEST(X509InteropTest, OpensslShowsIntermediatePathLenZero) {
  Pki pki;
  TempDir dir;
  WriteText(dir.File("inter.pem"), pki.inter.Pem());
  auto r = Shell("openssl x509 -noout -text -in " + dir.File("inter.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("CA:TRUE, pathlen:0"));
  EXPECT_THAT(r.out, HasSubstr("X509v3 Key Usage: critical"));
  EXPECT_THAT(r.out, HasSubstr("ecdsa-with-SHA384"));
}

TEST(X509InteropTest, ReadsOpensslIssuedCertificate) {
  TempDir dir;
  auto r = Shell(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes "
      "-subj '/O=Elsewhere/CN=Foreign Root' -days 10 -keyout " +
      dir.File("k.pem") + " -out " + dir.File("c.pem"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_OK_AND_ASSIGN(auto cert, Certificate::FromPem(testing::ReadText(dir.File("c.pem"))));
  EXPECT_EQ(cert.SubjectAttribute("CN"), "Foreign Root");
  EXPECT_TRUE(cert.IsCa());
  EXPECT_EQ(cert.SubjectKey().curve(), Curve::kP384);
  ASSERT_OK_AND_ASSIGN(auto path, VerifyChain(cert, {}, cert, VerifyOptions(SystemClock().Now())));
  EXPECT_EQ(path.size(), 1u);
}

OfflineCaSpec TestCaSpec() {
  OfflineCaSpec spec;
  spec.owner = "Test";
  spec.noun = "OEM";
  spec.role = "an OEM";
  spec.root = {"Root CA", 30 * 86400, {"keyCertSign", "cRLSign"}, {}, -1};
  spec.issuing = {"Issuing CA", 20 * 86400, {"keyCertSign", "cRLSign"}, {}, 0};
  return spec;
}

TEST(OfflineCa, LoadsWhatItCreatedAndRefusesToOverwrite) {
  TempDir dir;
  const int64_t now = SystemClock().Now();
  auto made = CreateOfflineCa(dir.File("ca"), TestCaSpec(), now);
  ASSERT_TRUE(made.ok()) << made.status();
  auto loaded = LoadOfflineCa(dir.File("ca"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->issuing, made->issuing);
  EXPECT_TRUE(LoadIssuingKey(dir.File("ca"), *loaded).ok());
  EXPECT_THAT(CreateOfflineCa(dir.File("ca"), TestCaSpec(), now),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr(dir.File("ca") + "/root.crt already exists; refusing to "
                                                  "overwrite an OEM")));
}

TEST(OfflineCa, LoadRefusesAnExpiredOrNotYetValidIssuingCaByTheGivenClock) {
  TempDir dir;
  const int64_t now = SystemClock().Now();
  ASSERT_TRUE(CreateOfflineCa(dir.File("ca"), TestCaSpec(), now).ok());
  FixedClock later(now + 25 * 86400);
  EXPECT_THAT(
      LoadOfflineCa(dir.File("ca"), later),
      StatusIs(absl::StatusCode::kPermissionDenied,
               HasSubstr(dir.File("ca") + "/issuing.crt: certificate 'O=Test,CN=Test Issuing "
                                          "CA' (depth 0) has expired")));
  FixedClock earlier(now - 86400);
  EXPECT_THAT(LoadOfflineCa(dir.File("ca"), earlier),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("is not yet valid")));
}

}  // namespace
}  // namespace clade::crypto
