// X.509 certificates: parse, issue from a profile, and verify a chain to one trust anchor with a
// named reason on failure. No Clade semantics: which kinds of certificate may stand where is
// decided by the caller from policies (HasPolicy) after VerifyChain succeeds.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto {

// Upper bounds for what we parse.
inline constexpr size_t kMaxCertificateDer = 64 * 1024;
inline constexpr size_t kMaxChainPem = 1024 * 1024;
inline constexpr size_t kMaxChainLength = 16;

// RFC 5280 §4.1.2.5: GeneralizedTime 99991231235959Z means "no well-defined expiration".
inline constexpr int64_t kNoExpiry = 253402300799;

class Certificate {
 public:
  static absl::StatusOr<Certificate> FromDer(std::span<const uint8_t> der);
  static absl::StatusOr<Certificate> FromPem(std::string_view pem);  // exactly one certificate
  // All certificates of a PEM bundle, in file order. Refuses an empty bundle or > kMaxChainLength.
  static absl::StatusOr<std::vector<Certificate>> ChainFromPem(std::string_view pem);
  static std::string ChainToPem(const std::vector<Certificate>& chain);

  const std::vector<uint8_t>& Der() const { return der_; }
  std::string Pem() const;
  const PublicKey& SubjectKey() const { return subject_key_; }
  // RFC 2253 one line, most specific attribute first: "CN=HSM 0001,O=Supplier" for a subject
  // written O then CN.
  std::string Subject() const;
  std::string Issuer() const;
  // The value of the first attribute of that type in the subject ("CN", "O", "serialNumber"…).
  std::optional<std::string> SubjectAttribute(std::string_view short_name) const;
  std::string SerialHex() const;  // lower-case hex of the serial number's magnitude
  int64_t NotBefore() const;
  int64_t NotAfter() const;
  bool IsCa() const;
  int PathLen() const;                         // -1 when absent or not a CA
  bool HasPolicy(std::string_view oid) const;  // in certificatePolicies
  bool HasExtendedKeyUsage(std::string_view oid) const;
  // Raw extnValue octets of the extension with this OID, if present.
  std::optional<std::vector<uint8_t>> Extension(std::string_view oid) const;
  std::string Fingerprint() const;  // SHA-256 of the DER, hex
  bool operator==(const Certificate& o) const { return der_ == o.der_; }

  // For src/crypto internals only.
  X509* x509() const { return x509_.get(); }

  Certificate(const Certificate& o);
  Certificate& operator=(const Certificate& o);
  Certificate(Certificate&&) noexcept = default;
  Certificate& operator=(Certificate&&) noexcept = default;

 private:
  Certificate(SslPtr<X509> x, std::vector<uint8_t> der, PublicKey key)
      : x509_(std::move(x)), der_(std::move(der)), subject_key_(std::move(key)) {}
  SslPtr<X509> x509_;
  std::vector<uint8_t> der_;
  PublicKey subject_key_;
};

// What IssueCertificate writes. Names are ordered (short name, value) pairs: {"CN", "HSM 1"}.
struct CertProfile {
  std::vector<std::pair<std::string, std::string>> subject;
  int64_t not_before = 0;  // unix seconds; 0 = now - 60 s (clock skew)
  int64_t not_after = 0;   // unix seconds, or kNoExpiry; required
  bool is_ca = false;
  int path_len = -1;  // CA only; -1 = no limit
  // Names as in OpenSSL config: digitalSignature, keyCertSign, cRLSign, keyAgreement,
  // keyEncipherment, nonRepudiation. Always marked critical.
  std::vector<std::string> key_usage;
  // serverAuth, clientAuth, codeSigning… or dotted OIDs.
  std::vector<std::string> extended_key_usage;
  std::vector<std::string> policies;  // dotted OIDs in certificatePolicies
  struct RawExtension {
    std::string oid;
    bool critical = false;
    std::vector<uint8_t> value;  // the DER placed in extnValue
  };
  std::vector<RawExtension> extra_extensions;
  std::optional<std::vector<uint8_t>> serial;  // default: 16 random bytes, positive
};

// Issues a certificate for `subject_key` signed by `issuer_key`. `issuer` is the issuer's
// certificate, or nullptr for a self-signed one (then `issuer_key` must match `subject_key`).
// Adds SKI (SHA-1 of the key, RFC 5280 §4.2.1.2 method 1) and AKI. Refuses an issuer key that
// does not match `issuer`'s certificate.
absl::StatusOr<Certificate> IssueCertificate(const CertProfile& profile,
                                             const PublicKey& subject_key,
                                             const Certificate* issuer,
                                             const PrivateKey& issuer_key,
                                             const Clock& clock = SystemClock());

struct VerifyOptions {
  // The time of validity checks, from the caller's Clock: there is no "now" default, so that no
  // verification reads the system clock behind the caller's back.
  explicit VerifyOptions(int64_t at) : at_time(at) {}
  int64_t at_time;  // unix seconds
  // keyUsage bits the leaf must allow, names as in CertProfile::key_usage.
  std::vector<std::string> leaf_key_usage;
};

// Builds and verifies leaf → intermediates → anchor (RFC 5280 path validation by OpenSSL with
// X509_V_FLAG_X509_STRICT: signatures, validity, CA flag, pathlen, keyCertSign). The anchor is
// the only trusted certificate. On success returns the path, leaf first, anchor last. On failure:
// PermissionDenied with a named reason, e.g.
//   "certificate 'CN=x' (depth 0) has expired (not after 2026-01-01T00:00:00Z)"
//   "certificate 'CN=x' (depth 0) is not issued by the trust anchor 'CN=root'"
//   "certificate 'CN=ca' (depth 1) is not a CA"
//   "certificate 'CN=x' (depth 2) exceeds the path length constraint"
absl::StatusOr<std::vector<Certificate>> VerifyChain(const Certificate& leaf,
                                                     const std::vector<Certificate>& intermediates,
                                                     const Certificate& anchor,
                                                     const VerifyOptions& options);

// A PKCS#10 request: the subject key it carries, after its self-signature was checked.
absl::StatusOr<PublicKey> VerifiedCsrKey(std::string_view pem_or_der);

}  // namespace clade::crypto
