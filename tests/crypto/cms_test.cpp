#include "crypto/cms.h"

#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/key.h"
#include "crypto/secret.h"
#include "crypto/x509.h"
#include "support/testing.h"

namespace clade::crypto {
namespace {

using ::clade::testing::ReadBinary;
using ::clade::testing::ReadText;
using ::clade::testing::StatusIs;
using ::clade::testing::TempDir;
using ::clade::testing::WriteBinary;
using ::testing::HasSubstr;
using ::testing::Not;

// A key pair and self-signed certificate made by the openssl CLI, on disk and loaded.
struct Party {
  std::string key_path;
  std::string cert_path;
  Certificate cert;
  PrivateKey key;
};

// Not `Run`: inside a fixture that name is ::testing::Test::Run.
::clade::testing::CommandResult Shell(const std::string& command) {
  return ::clade::testing::Run(command);
}

std::string Describe(const ::clade::testing::CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// `newkey` as for `openssl req -newkey`, `extra` more req arguments (e.g. -addext).
absl::StatusOr<Party> MakeParty(const TempDir& dir, const std::string& name,
                                const std::string& newkey = "ec -pkeyopt ec_paramgen_curve:P-256",
                                const std::string& extra = "-addext keyUsage=keyAgreement") {
  std::string key_path = dir.File(name + ".key.pem");
  std::string cert_path = dir.File(name + ".crt.pem");
  auto r = Shell("openssl req -x509 -newkey " + newkey + " -nodes -keyout " + key_path + " -out " +
                 cert_path + " -subj /CN=" + name + " -days 1 " + extra);
  if (r.exit_code != 0) return absl::InternalError("openssl req failed: " + Describe(r));
  ASSIGN_OR_RETURN(Certificate cert, Certificate::FromPem(ReadText(cert_path)));
  std::string key_pem = ReadText(key_path);
  ASSIGN_OR_RETURN(PrivateKey key,
                   PrivateKey::FromPem(SecretBytes(reinterpret_cast<const uint8_t*>(key_pem.data()),
                                                   key_pem.size())));
  return Party{key_path, cert_path, std::move(cert), std::move(key)};
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::vector<uint8_t> RandomPlaintext(const TempDir& dir, size_t n) {
  std::string path = dir.File("random.bin");
  auto r = Shell("openssl rand -out " + path + " " + std::to_string(n));
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  return ReadBinary(path);
}

bool SameBytes(const SecretBytes& a, const std::vector<uint8_t>& b) {
  auto s = a.RevealSecret();
  return std::vector<uint8_t>(s.begin(), s.end()) == b;
}

// Offset of the contents of the primitive element `what` ("OCTET STRING", "cont [ 0 ]") whose
// length is `length`, as `openssl asn1parse` reports it; nullopt when there is none.
std::optional<size_t> FindPrimitive(const std::string& der_path, const std::string& what,
                                    long length) {
  auto r = Shell("openssl asn1parse -inform DER -in " + der_path);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    long offset = 0, len = 0;
    int depth = 0, header = 0;
    if (std::sscanf(line.c_str(), " %ld:d=%d hl=%d l=%ld", &offset, &depth, &header, &len) != 4) {
      continue;
    }
    if (len == length && line.find("prim: " + what) != std::string::npos) {
      return static_cast<size_t>(offset + header);
    }
  }
  return std::nullopt;
}

std::string PrintCms(const TempDir& dir, const std::vector<uint8_t>& der) {
  std::string path = dir.File("print.der");
  WriteBinary(path, der);
  auto r = Shell("openssl cms -cmsout -print -inform DER -in " + path);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  return r.out;
}

class CmsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto party = MakeParty(dir_, "recipient");
    ASSERT_OK(party);
    alice_.emplace(std::move(party).value());
  }

  // Runs `openssl cms -encrypt -binary -in <plaintext> -recip <alice> <args>` and returns the
  // output file's bytes. (`-keyopt` applies to the `-recip` before it.)
  std::vector<uint8_t> OpensslEncrypt(const std::vector<uint8_t>& plaintext,
                                      const std::string& args) {
    std::string in = dir_.File("openssl-plain.bin");
    std::string out = dir_.File("openssl-enc.out");
    WriteBinary(in, plaintext);
    auto r = Shell("openssl cms -encrypt -binary -in " + in + " -out " + out + " -recip " +
                   alice_->cert_path + " " + args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return ReadBinary(out);
  }

  // Runs `openssl cms -decrypt` on `der` with alice's key; returns the plaintext or nullopt.
  std::optional<std::vector<uint8_t>> OpensslDecrypt(const std::vector<uint8_t>& der) {
    std::string in = dir_.File("clade-enc.der");
    std::string out = dir_.File("openssl-dec.bin");
    WriteBinary(in, der);
    auto r = Shell("openssl cms -decrypt -binary -inform DER -in " + in + " -recip " +
                   alice_->cert_path + " -inkey " + alice_->key_path + " -out " + out);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    if (r.exit_code != 0) return std::nullopt;
    return ReadBinary(out);
  }

  TempDir dir_;
  std::optional<Party> alice_;
};

// --- Round trips -------------------------------------------------------------------------------

TEST_F(CmsTest, RoundTripsAes256GcmAsAuthEnvelopedData) {
  std::vector<uint8_t> plain = Bytes("chip provisioning secret");
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                       CmsEncrypt(plain, alice_->cert, CmsContentCipher::kAes256Gcm));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));

  std::string printed = PrintCms(dir_, der);
  EXPECT_THAT(printed, HasSubstr("contentType: id-smime-ct-authEnvelopedData"));
  EXPECT_THAT(printed, HasSubstr("aes-256-gcm"));
  // ECDH with the X9.63 KDF over SHA-256 (not OpenSSL's SHA-1 default), AES-256 key wrap.
  EXPECT_THAT(printed, HasSubstr("dhSinglePass-stdDH-sha256kdf-scheme"));
  EXPECT_THAT(printed, Not(HasSubstr("sha1kdf")));
  EXPECT_THAT(printed, HasSubstr("id-aes256-wrap"));
}

TEST_F(CmsTest, DefaultCipherIsAes256Gcm) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("x"), alice_->cert));
  EXPECT_THAT(PrintCms(dir_, der), HasSubstr("id-smime-ct-authEnvelopedData"));
}

TEST_F(CmsTest, RoundTripsAes256CbcAsEnvelopedData) {
  std::vector<uint8_t> plain = Bytes("for tools without AuthEnvelopedData");
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                       CmsEncrypt(plain, alice_->cert, CmsContentCipher::kAes256Cbc));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));

  std::string printed = PrintCms(dir_, der);
  EXPECT_THAT(printed, HasSubstr("contentType: pkcs7-envelopedData"));
  EXPECT_THAT(printed, HasSubstr("aes-256-cbc"));
  EXPECT_THAT(printed, HasSubstr("dhSinglePass-stdDH-sha256kdf-scheme"));
  EXPECT_THAT(printed, HasSubstr("id-aes256-wrap"));
}

TEST_F(CmsTest, RoundTripsEmptyAndLargePlaintexts) {
  for (auto cipher : {CmsContentCipher::kAes256Gcm, CmsContentCipher::kAes256Cbc}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{16}, size_t{1000 * 1000}}) {
      std::vector<uint8_t> plain = RandomPlaintext(dir_, n == 0 ? 1 : n);
      plain.resize(n);
      ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(plain, alice_->cert, cipher));
      ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
      EXPECT_TRUE(SameBytes(out, plain)) << "size " << n;
    }
  }
}

TEST_F(CmsTest, RoundTripsP384Recipient) {
  ASSERT_OK_AND_ASSIGN(Party bob, MakeParty(dir_, "p384", "ec -pkeyopt ec_paramgen_curve:P-384"));
  std::vector<uint8_t> plain = Bytes("P-384 recipient");
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(plain, bob.cert));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, bob.key, bob.cert));
  EXPECT_TRUE(SameBytes(out, plain));
}

TEST_F(CmsTest, EncryptsForCertificateWithoutKeyUsage) {
  ASSERT_OK_AND_ASSIGN(Party bob,
                       MakeParty(dir_, "no-ku", "ec -pkeyopt ec_paramgen_curve:P-256", ""));
  ASSERT_FALSE(bob.cert.Extension("2.5.29.15").has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("any use"), bob.cert));
  EXPECT_OK(CmsDecrypt(der, bob.key, bob.cert));
}

TEST_F(CmsTest, EachEncryptionIsFresh) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> a, CmsEncrypt(Bytes("same"), alice_->cert));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> b, CmsEncrypt(Bytes("same"), alice_->cert));
  EXPECT_NE(a, b);  // fresh ephemeral key, content key and nonce
}

// --- Interop: OpenSSL makes, Clade opens --------------------------------------------------------

TEST_F(CmsTest, DecryptsOpensslEnvelopedAes256) {
  // The stock OEM command: EnvelopedData, AES-256-CBC, ECDH with OpenSSL's defaults.
  std::vector<uint8_t> plain = Bytes("made by openssl cms -aes256");
  std::vector<uint8_t> der = OpensslEncrypt(plain, "-aes256 -outform DER");
  std::string printed = PrintCms(dir_, der);
  EXPECT_THAT(printed, HasSubstr("pkcs7-envelopedData"));
  EXPECT_THAT(printed, HasSubstr("dhSinglePass-stdDH-sha1kdf-scheme"));
  EXPECT_THAT(printed, HasSubstr("id-aes256-wrap"));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));
}

TEST_F(CmsTest, DecryptsOpensslEnvelopedWithSha256Kdf) {
  std::vector<uint8_t> plain = Bytes("made with -keyopt ecdh_kdf_md:sha256");
  std::vector<uint8_t> der =
      OpensslEncrypt(plain, "-aes256 -outform DER -keyopt ecdh_kdf_md:sha256");
  EXPECT_THAT(PrintCms(dir_, der), HasSubstr("dhSinglePass-stdDH-sha256kdf-scheme"));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));
}

TEST_F(CmsTest, DecryptsOpensslAuthEnvelopedGcm) {
  std::vector<uint8_t> plain = Bytes("made by openssl cms -aes-256-gcm");
  std::vector<uint8_t> der = OpensslEncrypt(plain, "-aes-256-gcm -outform DER");
  EXPECT_THAT(PrintCms(dir_, der), HasSubstr("id-smime-ct-authEnvelopedData"));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));
}

TEST_F(CmsTest, DecryptsOpensslPemOutput) {
  std::vector<uint8_t> plain = Bytes("made by openssl cms -outform PEM");
  std::vector<uint8_t> pem = OpensslEncrypt(plain, "-aes256 -outform PEM");
  ASSERT_THAT(std::string(pem.begin(), pem.end()), HasSubstr("-----BEGIN CMS-----"));
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(pem, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));

  std::vector<uint8_t> gcm_pem = OpensslEncrypt(plain, "-aes-256-gcm -outform PEM");
  ASSERT_OK_AND_ASSIGN(SecretBytes gcm_out, CmsDecrypt(gcm_pem, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(gcm_out, plain));
}

TEST_F(CmsTest, DecryptsOpensslRecipientBySubjectKeyId) {
  std::vector<uint8_t> plain = Bytes("recipient named by subjectKeyIdentifier");
  std::vector<uint8_t> der = OpensslEncrypt(plain, "-aes256 -keyid -outform DER");
  ASSERT_OK_AND_ASSIGN(SecretBytes out, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(out, plain));
}

TEST_F(CmsTest, DecryptsOpensslMessageForSeveralRecipients) {
  ASSERT_OK_AND_ASSIGN(Party bob, MakeParty(dir_, "bob"));
  std::vector<uint8_t> plain = Bytes("for alice and bob");
  std::vector<uint8_t> der =
      OpensslEncrypt(plain, "-aes-256-gcm -outform DER -recip " + bob.cert_path);
  ASSERT_OK_AND_ASSIGN(SecretBytes for_alice, CmsDecrypt(der, alice_->key, alice_->cert));
  EXPECT_TRUE(SameBytes(for_alice, plain));
  ASSERT_OK_AND_ASSIGN(SecretBytes for_bob, CmsDecrypt(der, bob.key, bob.cert));
  EXPECT_TRUE(SameBytes(for_bob, plain));
}

// --- Interop: Clade makes, OpenSSL opens --------------------------------------------------------

TEST_F(CmsTest, OpensslDecryptsOurAes256Gcm) {
  std::vector<uint8_t> plain = RandomPlaintext(dir_, 100 * 1024);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                       CmsEncrypt(plain, alice_->cert, CmsContentCipher::kAes256Gcm));
  auto out = OpensslDecrypt(der);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, plain);
}

TEST_F(CmsTest, OpensslDecryptsOurAes256Cbc) {
  std::vector<uint8_t> plain = RandomPlaintext(dir_, 4097);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                       CmsEncrypt(plain, alice_->cert, CmsContentCipher::kAes256Cbc));
  auto out = OpensslDecrypt(der);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, plain);
}

// --- Refusals: encryption -----------------------------------------------------------------------

TEST_F(CmsTest, EncryptRefusesRecipientWithoutKeyAgreement) {
  ASSERT_OK_AND_ASSIGN(Party signer,
                       MakeParty(dir_, "signer", "ec -pkeyopt ec_paramgen_curve:P-256",
                                 "-addext keyUsage=critical,digitalSignature"));
  EXPECT_THAT(
      CmsEncrypt(Bytes("x"), signer.cert),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("recipient certificate 'CN=signer' does not allow key agreement")));
  EXPECT_THAT(
      CmsEncrypt(Bytes("x"), signer.cert, CmsContentCipher::kAes256Cbc),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not allow key agreement")));
}

TEST_F(CmsTest, RefusesRsaRecipient) {
  std::string cert_path = dir_.File("rsa.crt.pem");
  auto r = Shell("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir_.File("rsa.key.pem") +
                 " -out " + cert_path + " -subj /CN=rsa -days 1");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  // Certificate holds only EC subject keys, so an RSA recipient is refused when its certificate
  // is loaded, before it could reach CmsEncrypt (which checks again).
  EXPECT_THAT(Certificate::FromPem(ReadText(cert_path)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an elliptic-curve key")));
}

// --- Refusals: decryption -----------------------------------------------------------------------

TEST_F(CmsTest, RefusesWrongRecipient) {
  ASSERT_OK_AND_ASSIGN(Party bob, MakeParty(dir_, "bob"));
  for (auto cipher : {CmsContentCipher::kAes256Gcm, CmsContentCipher::kAes256Cbc}) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                         CmsEncrypt(Bytes("for alice"), alice_->cert, cipher));
    EXPECT_THAT(CmsDecrypt(der, bob.key, bob.cert),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr("CMS message is not for this recipient")));
  }
  std::vector<uint8_t> by_openssl = OpensslEncrypt(Bytes("for alice"), "-aes256 -outform DER");
  EXPECT_THAT(CmsDecrypt(by_openssl, bob.key, bob.cert),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("CMS message is not for this recipient")));
}

TEST_F(CmsTest, RefusesMessageForRsaRecipient) {
  std::string rsa_cert = dir_.File("rsa.crt.pem");
  auto r = Shell("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir_.File("rsa.key.pem") +
                 " -out " + rsa_cert + " -subj /CN=rsa -days 1");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string in = dir_.File("rsa-plain.bin");
  std::string out = dir_.File("rsa-enc.der");
  WriteBinary(in, Bytes("for an RSA key"));
  r = Shell("openssl cms -encrypt -binary -aes256 -recip " + rsa_cert + " -in " + in +
            " -outform DER -out " + out);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(CmsDecrypt(ReadBinary(out), alice_->key, alice_->cert),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("CMS message is not for this recipient")));
}

TEST_F(CmsTest, RefusesKeyThatDoesNotMatchCertificate) {
  ASSERT_OK_AND_ASSIGN(Party bob, MakeParty(dir_, "bob"));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("for alice"), alice_->cert));
  EXPECT_THAT(CmsDecrypt(der, bob.key, alice_->cert),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("private key does not match the recipient certificate")));
}

TEST_F(CmsTest, RefusesFlippedCiphertextBitInGcm) {
  std::vector<uint8_t> plain = RandomPlaintext(dir_, 1000);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                       CmsEncrypt(plain, alice_->cert, CmsContentCipher::kAes256Gcm));
  std::string path = dir_.File("gcm.der");
  WriteBinary(path, der);
  // GCM does not pad: the encryptedContent [0] is as long as the plaintext.
  std::optional<size_t> at = FindPrimitive(path, "cont [ 0 ]", 1000);
  ASSERT_TRUE(at.has_value()) << PrintCms(dir_, der);
  for (size_t i : {size_t{0}, size_t{500}, size_t{999}}) {
    std::vector<uint8_t> bad = der;
    bad[*at + i] ^= 0x01;
    EXPECT_THAT(
        CmsDecrypt(bad, alice_->key, alice_->cert),
        StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("CMS content does not decrypt")))
        << "byte " << i;
  }
}

TEST_F(CmsTest, RefusesFlippedGcmTag) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("tagged"), alice_->cert));
  std::string path = dir_.File("tag.der");
  WriteBinary(path, der);
  std::optional<size_t> at = FindPrimitive(path, "OCTET STRING", 16);  // the mac
  ASSERT_TRUE(at.has_value()) << PrintCms(dir_, der);
  der[*at + 15] ^= 0x80;
  EXPECT_THAT(
      CmsDecrypt(der, alice_->key, alice_->cert),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("CMS content does not decrypt")));
}

TEST_F(CmsTest, RefusesFlippedEncryptedKeyBit) {
  for (auto cipher : {CmsContentCipher::kAes256Gcm, CmsContentCipher::kAes256Cbc}) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der,
                         CmsEncrypt(Bytes("wrapped"), alice_->cert, cipher));
    std::string path = dir_.File("kek.der");
    WriteBinary(path, der);
    // A 32-byte content key under AES key wrap (RFC 3394) is 40 bytes.
    std::optional<size_t> at = FindPrimitive(path, "OCTET STRING", 40);
    ASSERT_TRUE(at.has_value()) << PrintCms(dir_, der);
    for (size_t i : {size_t{0}, size_t{20}, size_t{39}}) {
      std::vector<uint8_t> bad = der;
      bad[*at + i] ^= 0x04;
      EXPECT_THAT(
          CmsDecrypt(bad, alice_->key, alice_->cert),
          StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("CMS content does not decrypt")))
          << "byte " << i;
    }
  }
}

TEST_F(CmsTest, RefusesTamperedEphemeralKey) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("ephemeral"), alice_->cert));
  std::string path = dir_.File("ephemeral.der");
  WriteBinary(path, der);
  // originatorKey: an uncompressed P-256 point in a BIT STRING (1 + 65 bytes).
  std::optional<size_t> at = FindPrimitive(path, "BIT STRING", 66);
  ASSERT_TRUE(at.has_value()) << PrintCms(dir_, der);
  for (size_t i : {size_t{10}, size_t{40}, size_t{65}}) {
    std::vector<uint8_t> bad = der;
    bad[*at + i] ^= 0x01;
    EXPECT_THAT(
        CmsDecrypt(bad, alice_->key, alice_->cert),
        StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("CMS content does not decrypt")))
        << "byte " << i;
  }
}

TEST_F(CmsTest, RefusesTruncatedMessage) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("truncate me"), alice_->cert));
  for (size_t keep : {size_t{0}, size_t{1}, size_t{10}, der.size() / 2, der.size() - 1}) {
    std::vector<uint8_t> cut(der.begin(), der.begin() + static_cast<long>(keep));
    EXPECT_THAT(CmsDecrypt(cut, alice_->key, alice_->cert),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CMS message")))
        << "kept " << keep;
  }
}

TEST_F(CmsTest, RefusesTrailingBytes) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> der, CmsEncrypt(Bytes("exact"), alice_->cert));
  der.push_back(0);
  EXPECT_THAT(CmsDecrypt(der, alice_->key, alice_->cert),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CMS message")));
}

TEST_F(CmsTest, RefusesGarbage) {
  EXPECT_THAT(CmsDecrypt(Bytes("hello, not ASN.1 at all"), alice_->key, alice_->cert),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CMS message")));
  EXPECT_THAT(CmsDecrypt(Bytes("-----BEGIN CMS-----\nAAAA\n-----END CMS-----\n"), alice_->key,
                         alice_->cert),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CMS message")));
  EXPECT_THAT(CmsDecrypt(Bytes("-----BEGIN CERTIFICATE-----\n"), alice_->key, alice_->cert),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a CMS message")));
}

TEST_F(CmsTest, RefusesOversizedMessage) {
  std::vector<uint8_t> huge(kMaxCmsSize + 1, 0x30);
  EXPECT_THAT(CmsDecrypt(huge, alice_->key, alice_->cert),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("CMS message is " + std::to_string(kMaxCmsSize + 1) +
                                 " bytes, more than the limit")));
}

TEST_F(CmsTest, RefusesNonEnvelopedData) {
  std::string in = dir_.File("data.bin");
  WriteBinary(in, Bytes("plain data"));
  std::string data = dir_.File("data.der");
  auto r = Shell("openssl cms -data_create -binary -in " + in + " -outform DER -out " + data);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(
      CmsDecrypt(ReadBinary(data), alice_->key, alice_->cert),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CMS message is not enveloped data")));

  ASSERT_OK_AND_ASSIGN(Party signer,
                       MakeParty(dir_, "signer", "ec -pkeyopt ec_paramgen_curve:P-256",
                                 "-addext keyUsage=digitalSignature"));
  std::string signed_der = dir_.File("signed.der");
  r = Shell("openssl cms -sign -binary -nodetach -in " + in + " -signer " + signer.cert_path +
            " -inkey " + signer.key_path + " -outform DER -out " + signed_der);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(
      CmsDecrypt(ReadBinary(signed_der), alice_->key, alice_->cert),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CMS message is not enveloped data")));
}

}  // namespace
}  // namespace clade::crypto
