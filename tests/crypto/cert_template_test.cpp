// The template path must make certificates OpenSSL, GnuTLS-free tools and python-cryptography
// accept, with the same content as the object path.
#include "crypto/cert_template.h"

#include "base/clock.h"
#include "support/testing.h"

namespace clade::crypto {
namespace {

using ::clade::testing::StatusIs;
using ::testing::HasSubstr;

struct Ca {
  PrivateKey key;
  Certificate cert;
};

Ca MakeCa(Curve curve) {
  auto key = PrivateKey::Generate(curve).value();
  CertProfile p;
  p.subject = {{"CN", "Template Test CA"}, {"O", "Acme"}};
  p.not_after = kNoExpiry;
  p.is_ca = true;
  p.path_len = 0;
  p.key_usage = {"keyCertSign", "cRLSign"};
  auto cert = IssueCertificate(p, key.Public(), nullptr, key).value();
  return Ca{std::move(key), std::move(cert)};
}

CertProfile DeviceProfile() {
  CertProfile p;
  p.key_usage = {"digitalSignature"};
  p.extended_key_usage = {"clientAuth"};
  p.extra_extensions.push_back({"1.3.6.1.4.1.32473.1.1", false, {0x0c, 0x02, 'h', 'i'}});
  return p;
}

TEST(CertTemplate, IssuesWhatOpensslParsesAndVerifies) {
  for (Curve curve : {Curve::kP256, Curve::kP384}) {
    Ca ca = MakeCa(curve);
    ASSERT_OK_AND_ASSIGN(CertTemplate t, CertTemplate::Create(DeviceProfile(), ca.cert, ca.key));
    ASSERT_OK_AND_ASSIGN(auto dev, PrivateKey::Generate(Curve::kP256));
    ASSERT_OK_AND_ASSIGN(auto issued, t.Issue({{"CN", "Sensor 0001"}, {"O", "Acme"}}, 1700000000,
                                              kNoExpiry, dev.Public()));
    // FromDer refuses anything that is not exact DER (it re-encodes and compares).
    ASSERT_OK_AND_ASSIGN(Certificate c, Certificate::FromDer(issued.der));
    EXPECT_EQ(c.SerialHex(), issued.serial_hex);
    EXPECT_EQ(issued.serial_hex.size(), 32u);
    EXPECT_TRUE(c.SubjectKey().Equals(dev.Public()));
    EXPECT_EQ(c.SubjectAttribute("CN").value_or(""), "Sensor 0001");
    EXPECT_EQ(c.Issuer(), ca.cert.Subject());
    EXPECT_EQ(c.NotBefore(), 1700000000);
    EXPECT_EQ(c.NotAfter(), kNoExpiry);
    EXPECT_FALSE(c.IsCa());
    EXPECT_TRUE(c.HasExtendedKeyUsage("clientAuth"));
    EXPECT_TRUE(c.Extension("1.3.6.1.4.1.32473.1.1").has_value());
    VerifyOptions opts(SystemClock().Now());
    opts.leaf_key_usage = {"digitalSignature"};
    EXPECT_OK(VerifyChain(c, {}, ca.cert, opts));
  }
}

TEST(CertTemplate, MatchesTheObjectPathExceptSerialKeyIdAndSignature) {
  Ca ca = MakeCa(Curve::kP256);
  ASSERT_OK_AND_ASSIGN(CertTemplate t, CertTemplate::Create(DeviceProfile(), ca.cert, ca.key));
  ASSERT_OK_AND_ASSIGN(auto dev, PrivateKey::Generate(Curve::kP256));
  CertProfile slow_profile = DeviceProfile();
  slow_profile.subject = {{"CN", "Sensor 0002"}, {"O", "Acme"}};
  slow_profile.not_before = 1700000000;
  slow_profile.not_after = 2000000000;
  ASSERT_OK_AND_ASSIGN(auto slow, IssueCertificate(slow_profile, dev.Public(), &ca.cert, ca.key));
  ASSERT_OK_AND_ASSIGN(auto fast,
                       t.Issue(slow_profile.subject, 1700000000, 2000000000, dev.Public()));
  clade::testing::TempDir dir;
  clade::testing::WriteText(dir.File("slow.pem"), slow.Pem());
  ASSERT_OK_AND_ASSIGN(Certificate fast_cert, Certificate::FromDer(fast.der));
  clade::testing::WriteText(dir.File("fast.pem"), fast_cert.Pem());
  // The same text, once serial and signature lines are set aside.
  std::string filter = " -noout -text -certopt no_serial,no_sigdump | grep -v 'Serial Number' ";
  auto a = clade::testing::Run("openssl x509 -in " + dir.File("slow.pem") + filter);
  auto b = clade::testing::Run("openssl x509 -in " + dir.File("fast.pem") + filter);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_THAT(b.out, HasSubstr("Subject Key Identifier"));
}

TEST(CertTemplate, OutsideToolsAcceptIt) {
  Ca ca = MakeCa(Curve::kP256);
  ASSERT_OK_AND_ASSIGN(CertTemplate t, CertTemplate::Create(DeviceProfile(), ca.cert, ca.key));
  ASSERT_OK_AND_ASSIGN(auto dev, PrivateKey::Generate(Curve::kP256));
  // A validity past 2049 must switch to GeneralizedTime (RFC 5280 §4.1.2.5).
  ASSERT_OK_AND_ASSIGN(auto issued,
                       t.Issue({{"CN", "Sensor 0003"}}, 1700000000, 2600000000, dev.Public()));
  ASSERT_OK_AND_ASSIGN(Certificate c, Certificate::FromDer(issued.der));
  clade::testing::TempDir dir;
  clade::testing::WriteText(dir.File("ca.pem"), ca.cert.Pem());
  clade::testing::WriteText(dir.File("dev.pem"), c.Pem());
  auto v = clade::testing::Run("openssl verify -x509_strict -CAfile " + dir.File("ca.pem") + " " +
                               dir.File("dev.pem"));
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto py = clade::testing::Run(
      "/usr/bin/python3 -c \"import sys; from cryptography import x509; "
      "c = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read()); "
      "ca = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read()); "
      "c.verify_directly_issued_by(ca) if hasattr(c, 'verify_directly_issued_by') else None; "
      "print(c.not_valid_after.year, c.extensions.get_extension_for_class("
      "x509.SubjectKeyIdentifier).value.digest.hex())\" " +
      dir.File("dev.pem") + " " + dir.File("ca.pem"));
  ASSERT_EQ(py.exit_code, 0) << py.err;
  EXPECT_THAT(py.out, HasSubstr("2052 "));
}

TEST(CertTemplate, RefusesBadInput) {
  Ca ca = MakeCa(Curve::kP256);
  Ca other = MakeCa(Curve::kP256);
  EXPECT_THAT(CertTemplate::Create(DeviceProfile(), ca.cert, other.key),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
  ASSERT_OK_AND_ASSIGN(CertTemplate t, CertTemplate::Create(DeviceProfile(), ca.cert, ca.key));
  ASSERT_OK_AND_ASSIGN(auto dev, PrivateKey::Generate(Curve::kP256));
  EXPECT_THAT(t.Issue({}, 1, 2, dev.Public()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("subject is empty")));
  EXPECT_THAT(t.Issue({{"CN", "x"}}, 5, 5, dev.Public()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not_after")));
  EXPECT_THAT(t.Issue({{"NoSuchAttribute", "x"}}, 1, 2, dev.Public()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid subject attribute")));
}

TEST(CertTemplate, SerialsAreFreshAndKeyIdentifiersFollowTheKey) {
  Ca ca = MakeCa(Curve::kP256);
  ASSERT_OK_AND_ASSIGN(CertTemplate t, CertTemplate::Create(DeviceProfile(), ca.cert, ca.key));
  ASSERT_OK_AND_ASSIGN(auto k1, PrivateKey::Generate(Curve::kP256));
  ASSERT_OK_AND_ASSIGN(auto k2, PrivateKey::Generate(Curve::kP256));
  ASSERT_OK_AND_ASSIGN(auto a, t.Issue({{"CN", "a"}}, 1, kNoExpiry, k1.Public()));
  ASSERT_OK_AND_ASSIGN(auto b, t.Issue({{"CN", "b"}}, 1, kNoExpiry, k2.Public()));
  EXPECT_NE(a.serial_hex, b.serial_hex);
  ASSERT_OK_AND_ASSIGN(auto ca_, Certificate::FromDer(a.der));
  ASSERT_OK_AND_ASSIGN(auto cb, Certificate::FromDer(b.der));
  EXPECT_NE(ca_.Extension("2.5.29.14"), cb.Extension("2.5.29.14"));
}

}  // namespace
}  // namespace clade::crypto
