#include "crypto/x509.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/clock.h"
#include "crypto/digest.h"
#include "crypto/error.h"
#include "crypto/random.h"

namespace clade::crypto {
namespace {

constexpr size_t kMaxCsr = 64 * 1024;
constexpr size_t kSerialBytes = 16;

// keyUsage names (as in OpenSSL config), their bit in the BIT STRING and X509_get_key_usage flag.
struct KeyUsageName {
  const char* name;
  int bit;
  uint32_t flag;
};
constexpr KeyUsageName kKeyUsages[] = {
    {"digitalSignature", 0, KU_DIGITAL_SIGNATURE},
    {"nonRepudiation", 1, KU_NON_REPUDIATION},
    {"keyEncipherment", 2, KU_KEY_ENCIPHERMENT},
    {"dataEncipherment", 3, KU_DATA_ENCIPHERMENT},
    {"keyAgreement", 4, KU_KEY_AGREEMENT},
    {"keyCertSign", 5, KU_KEY_CERT_SIGN},
    {"cRLSign", 6, KU_CRL_SIGN},
    {"encipherOnly", 7, KU_ENCIPHER_ONLY},
    {"decipherOnly", 8, KU_DECIPHER_ONLY},
};

const KeyUsageName* FindKeyUsage(std::string_view name) {
  for (const auto& k : kKeyUsages) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

// A dotted OID as text: "2.25.<digits>…". Checked before OBJ_txt2obj, which would also take names.
bool IsDottedOid(std::string_view s) {
  if (s.size() < 3 || s[0] < '0' || s[0] > '2' || s[1] != '.') return false;
  bool digit_seen = false;
  for (char c : s.substr(2)) {
    if (c == '.') {
      if (!digit_seen) return false;
      digit_seen = false;
    } else if (c >= '0' && c <= '9') {
      digit_seen = true;
    } else {
      return false;
    }
  }
  return digit_seen;
}

SslPtr<ASN1_OBJECT> ObjectOf(std::string_view text, bool dotted_only) {
  if (dotted_only && !IsDottedOid(text)) return nullptr;
  SslPtr<ASN1_OBJECT> obj(OBJ_txt2obj(std::string(text).c_str(), dotted_only ? 1 : 0));
  if (!obj) ClearOpenSslErrors();
  return obj;
}

std::string NameToString(const X509_NAME* name) {
  SslPtr<BIO> bio(BIO_new(BIO_s_mem()));
  // RFC 2253 order and escaping, but UTF-8 left as is rather than \XX-escaped.
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

int64_t TimeToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ClearOpenSslErrors();
    return 0;
  }
  using namespace std::chrono;
  sys_days date = year{tm.tm_year + 1900} / month{static_cast<unsigned>(tm.tm_mon + 1)} /
                  day{static_cast<unsigned>(tm.tm_mday)};
  return int64_t{date.time_since_epoch().count()} * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 +
         tm.tm_sec;
}

// RAII for what PEM_read_bio hands out.
struct PemBlock {
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  ~PemBlock() {
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
  }
};

// Reads the next PEM block. false at the end of the input; an error for a malformed block.
absl::StatusOr<bool> NextPemBlock(BIO* bio, PemBlock& block) {
  ClearOpenSslErrors();
  if (PEM_read_bio(bio, &block.name, &block.header, &block.data, &block.len) == 1) return true;
  unsigned long e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
    ClearOpenSslErrors();
    return false;
  }
  return OpenSslError("malformed PEM", absl::StatusCode::kInvalidArgument);
}

absl::StatusOr<std::vector<Certificate>> ParsePemCertificates(std::string_view pem) {
  if (pem.size() > kMaxChainPem) {
    return absl::InvalidArgumentError("certificate PEM is larger than the " +
                                      std::to_string(kMaxChainPem) + "-byte limit");
  }
  SslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("cannot read PEM");
  std::vector<Certificate> certs;
  while (true) {
    PemBlock block;
    ASSIGN_OR_RETURN(bool more, NextPemBlock(bio.get(), block));
    if (!more) break;
    if (std::strcmp(block.name, "CERTIFICATE") != 0) {
      return absl::InvalidArgumentError("unexpected PEM block '" + std::string(block.name) +
                                        "' (expected CERTIFICATE)");
    }
    if (certs.size() == kMaxChainLength) {
      return absl::InvalidArgumentError("more than " + std::to_string(kMaxChainLength) +
                                        " certificates in PEM");
    }
    ASSIGN_OR_RETURN(Certificate cert,
                     Certificate::FromDer({block.data, static_cast<size_t>(block.len)}));
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) return absl::InvalidArgumentError("no certificate in PEM");
  return certs;
}

// Certificates are immutable once parsed, so copies share one X509.
SslPtr<X509> UpRef(X509* x) {
  if (x != nullptr) X509_up_ref(x);
  return SslPtr<X509>(x);
}

std::vector<uint8_t> DerOf(X509* x) {
  unsigned char* buf = nullptr;
  int len = i2d_X509(x, &buf);
  if (len <= 0) {
    ClearOpenSslErrors();
    return {};
  }
  std::vector<uint8_t> der(buf, buf + len);
  OPENSSL_free(buf);
  return der;
}

// SHA-1 of the subjectPublicKey BIT STRING (RFC 5280 §4.2.1.2 method 1).
absl::StatusOr<SslPtr<ASN1_STRING>> KeyIdOf(X509* x) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SslPtr<ASN1_STRING> id(ASN1_OCTET_STRING_new());
  if (!id || X509_pubkey_digest(x, EVP_sha1(), md, &len) != 1 ||
      ASN1_OCTET_STRING_set(id.get(), md, static_cast<int>(len)) != 1) {
    return OpenSslError("cannot compute the key identifier");
  }
  return id;
}

absl::StatusOr<SslPtr<ASN1_STRING>> SerialOf(const CertProfile& profile) {
  std::vector<uint8_t> bytes;
  if (profile.serial) {
    bytes = *profile.serial;
    if (bytes.empty() || bytes.size() > 20 || (bytes.size() == 20 && (bytes[0] & 0x80) != 0)) {
      return absl::InvalidArgumentError("serial number must be 1 to 20 octets");
    }
  } else {
    do {
      bytes = RandomBytes(kSerialBytes);
      bytes[0] &= 0x7f;
    } while (std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; }));
  }
  SslPtr<BIGNUM> bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  if (!bn) return OpenSslError("cannot encode the serial number");
  if (BN_is_zero(bn.get())) return absl::InvalidArgumentError("serial number must not be zero");
  SslPtr<ASN1_STRING> serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return OpenSslError("cannot encode the serial number");
  return serial;
}

absl::StatusOr<SslPtr<X509_NAME>> NameOf(const CertProfile& profile) {
  if (profile.subject.empty()) return absl::InvalidArgumentError("certificate subject is empty");
  SslPtr<X509_NAME> name(X509_NAME_new());
  if (!name) return OpenSslError("cannot build the subject name");
  for (const auto& [type, value] : profile.subject) {
    if (X509_NAME_add_entry_by_txt(name.get(), type.c_str(), MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      return OpenSslError("invalid subject attribute " + type + "=" + value,
                          absl::StatusCode::kInvalidArgument);
    }
  }
  return name;
}

absl::Status AddExtension(X509* x, int nid, void* value, bool critical, const char* what) {
  if (X509_add1_ext_i2d(x, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1) {
    return OpenSslError(std::string("cannot add ") + what);
  }
  return absl::OkStatus();
}

absl::Status AddBasicConstraints(X509* x, const CertProfile& profile) {
  if (!profile.is_ca && profile.path_len != -1) {
    return absl::InvalidArgumentError("path_len is only allowed for a CA certificate");
  }
  if (profile.path_len < -1) return absl::InvalidArgumentError("path_len must be -1 or >= 0");
  SslPtr<BASIC_CONSTRAINTS> bc(BASIC_CONSTRAINTS_new());
  if (!bc) return OpenSslError("cannot build basicConstraints");
  bc->ca = profile.is_ca ? 0xff : 0;
  if (profile.is_ca && profile.path_len >= 0) {
    bc->pathlen = ASN1_INTEGER_new();
    if (bc->pathlen == nullptr || ASN1_INTEGER_set(bc->pathlen, profile.path_len) != 1) {
      return OpenSslError("cannot build basicConstraints");
    }
  }
  return AddExtension(x, NID_basic_constraints, bc.get(), true, "basicConstraints");
}

absl::Status AddKeyUsage(X509* x, const CertProfile& profile) {
  if (profile.key_usage.empty()) return absl::OkStatus();
  SslPtr<ASN1_STRING> bits(ASN1_BIT_STRING_new());
  if (!bits) return OpenSslError("cannot build keyUsage");
  for (const std::string& name : profile.key_usage) {
    const KeyUsageName* ku = FindKeyUsage(name);
    if (ku == nullptr) return absl::InvalidArgumentError("unknown key usage '" + name + "'");
    if (ASN1_BIT_STRING_set_bit(bits.get(), ku->bit, 1) != 1) {
      return OpenSslError("cannot build keyUsage");
    }
  }
  return AddExtension(x, NID_key_usage, bits.get(), true, "keyUsage");
}

absl::Status AddExtendedKeyUsage(X509* x, const CertProfile& profile) {
  if (profile.extended_key_usage.empty()) return absl::OkStatus();
  SslPtr<EXTENDED_KEY_USAGE> eku(sk_ASN1_OBJECT_new_null());
  if (!eku) return OpenSslError("cannot build extendedKeyUsage");
  for (const std::string& name : profile.extended_key_usage) {
    SslPtr<ASN1_OBJECT> obj = ObjectOf(name, false);
    if (!obj) return absl::InvalidArgumentError("unknown extended key usage '" + name + "'");
    if (sk_ASN1_OBJECT_push(eku.get(), obj.get()) <= 0) {
      return OpenSslError("cannot build extendedKeyUsage");
    }
    obj.release();  // owned by the stack now
  }
  return AddExtension(x, NID_ext_key_usage, eku.get(), false, "extendedKeyUsage");
}

absl::Status AddPolicies(X509* x, const CertProfile& profile) {
  if (profile.policies.empty()) return absl::OkStatus();
  SslPtr<CERTIFICATEPOLICIES> policies(sk_POLICYINFO_new_null());
  if (!policies) return OpenSslError("cannot build certificatePolicies");
  for (const std::string& oid : profile.policies) {
    SslPtr<ASN1_OBJECT> obj = ObjectOf(oid, true);
    if (!obj) return absl::InvalidArgumentError("invalid policy OID '" + oid + "'");
    POLICYINFO* info = POLICYINFO_new();
    if (info == nullptr) return OpenSslError("cannot build certificatePolicies");
    ASN1_OBJECT_free(info->policyid);
    info->policyid = obj.release();
    if (sk_POLICYINFO_push(policies.get(), info) <= 0) {
      POLICYINFO_free(info);
      return OpenSslError("cannot build certificatePolicies");
    }
  }
  return AddExtension(x, NID_certificate_policies, policies.get(), false, "certificatePolicies");
}

absl::Status AddKeyIdentifiers(X509* x, const Certificate* issuer) {
  ASSIGN_OR_RETURN(SslPtr<ASN1_STRING> ski, KeyIdOf(x));
  RETURN_IF_ERROR(AddExtension(x, NID_subject_key_identifier, ski.get(), false, "SKI"));
  SslPtr<AUTHORITY_KEYID> aki(AUTHORITY_KEYID_new());
  if (!aki) return OpenSslError("cannot build AKI");
  if (issuer == nullptr) {
    aki->keyid = ski.release();
  } else if (const ASN1_OCTET_STRING* id = X509_get0_subject_key_id(issuer->x509())) {
    aki->keyid = ASN1_OCTET_STRING_dup(id);
    if (aki->keyid == nullptr) return OpenSslError("cannot build AKI");
  } else {
    ASSIGN_OR_RETURN(SslPtr<ASN1_STRING> computed, KeyIdOf(issuer->x509()));
    aki->keyid = computed.release();
  }
  return AddExtension(x, NID_authority_key_identifier, aki.get(), false, "AKI");
}

absl::Status AddRawExtensions(X509* x, const CertProfile& profile) {
  for (const auto& raw : profile.extra_extensions) {
    SslPtr<ASN1_OBJECT> obj = ObjectOf(raw.oid, true);
    if (!obj) return absl::InvalidArgumentError("invalid extension OID '" + raw.oid + "'");
    if (X509_get_ext_by_OBJ(x, obj.get(), -1) >= 0) {
      return absl::InvalidArgumentError("duplicate extension " + raw.oid);
    }
    SslPtr<ASN1_STRING> value(ASN1_OCTET_STRING_new());
    if (!value || ASN1_OCTET_STRING_set(value.get(), raw.value.data(),
                                        static_cast<int>(raw.value.size())) != 1) {
      return OpenSslError("cannot build extension " + raw.oid);
    }
    SslPtr<X509_EXTENSION> ext(
        X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), raw.critical ? 1 : 0, value.get()));
    if (!ext || X509_add_ext(x, ext.get(), -1) != 1) {
      return OpenSslError("cannot add extension " + raw.oid);
    }
  }
  return absl::OkStatus();
}

// The named reason for a failed X509_verify_cert.
std::string VerifyFailure(X509_STORE_CTX* ctx, const Certificate& leaf, const Certificate& anchor) {
  int err = X509_STORE_CTX_get_error(ctx);
  X509* cert = X509_STORE_CTX_get_current_cert(ctx);
  if (cert == nullptr) cert = leaf.x509();
  std::string what = "certificate '" + NameToString(X509_get_subject_name(cert)) + "' (depth " +
                     std::to_string(X509_STORE_CTX_get_error_depth(ctx)) + ") ";
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return what + "has expired (not after " + FormatTime(TimeToUnix(X509_get0_notAfter(cert))) +
             ")";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return what + "is not yet valid (not before " +
             FormatTime(TimeToUnix(X509_get0_notBefore(cert))) + ")";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return what + "is not issued by the trust anchor '" + anchor.Subject() + "'";
    case X509_V_ERR_INVALID_CA:
      // OpenSSL also says "invalid CA" for a CA whose keyUsage lacks keyCertSign.
      if ((X509_get_extension_flags(cert) & EXFLAG_CA) != 0 &&
          (X509_get_extension_flags(cert) & EXFLAG_KUSAGE) != 0 &&
          (X509_get_key_usage(cert) & KU_KEY_CERT_SIGN) == 0) {
        return what + "key usage does not allow certificate signing";
      }
      return what + "is not a CA";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
      return what + "exceeds the path length constraint";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return what + "signature does not verify";
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
    case X509_V_ERR_PATHLEN_WITHOUT_KU_KEY_CERT_SIGN:
      return what + "key usage does not allow certificate signing";
    default:
      return what + X509_verify_cert_error_string(err);
  }
}

// The Certificate among the inputs that is `x`, or a fresh parse of it.
absl::StatusOr<Certificate> FindInput(X509* x, const Certificate& leaf,
                                      const std::vector<Certificate>& intermediates,
                                      const Certificate& anchor) {
  if (x == leaf.x509()) return leaf;
  if (x == anchor.x509()) return anchor;
  for (const Certificate& c : intermediates) {
    if (x == c.x509()) return c;
  }
  return Certificate::FromDer(DerOf(x));
}

}  // namespace

// --- Certificate ---------------------------------------------------------------------------------

absl::StatusOr<Certificate> Certificate::FromDer(std::span<const uint8_t> der) {
  if (der.size() > kMaxCertificateDer) {
    return absl::InvalidArgumentError("certificate is larger than the " +
                                      std::to_string(kMaxCertificateDer) + "-byte limit");
  }
  const unsigned char* p = der.data();
  SslPtr<X509> x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) return OpenSslError("malformed certificate", absl::StatusCode::kInvalidArgument);
  if (p != der.data() + der.size()) {
    return absl::InvalidArgumentError("malformed certificate: trailing bytes after the DER");
  }
  std::vector<uint8_t> copy(der.begin(), der.end());
  if (DerOf(x.get()) != copy) {
    return absl::InvalidArgumentError("malformed certificate: not DER-encoded");
  }
  // Decodes and caches the extensions; flags a certificate whose extensions do not parse.
  X509_check_purpose(x.get(), -1, 0);
  if ((X509_get_extension_flags(x.get()) & EXFLAG_INVALID) != 0) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("malformed certificate: invalid extensions");
  }
  EVP_PKEY* pkey = X509_get0_pubkey(x.get());
  if (pkey == nullptr) {
    return OpenSslError("malformed certificate: unreadable subject key",
                        absl::StatusCode::kInvalidArgument);
  }
  absl::StatusOr<PublicKey> key = PublicKey::FromEvp(pkey);
  if (!key.ok()) return Annotate(key.status(), "unsupported certificate subject key");
  return Certificate(std::move(x), std::move(copy), std::move(*key));
}

absl::StatusOr<Certificate> Certificate::FromPem(std::string_view pem) {
  ASSIGN_OR_RETURN(std::vector<Certificate> certs, ParsePemCertificates(pem));
  if (certs.size() != 1) {
    return absl::InvalidArgumentError("PEM holds " + std::to_string(certs.size()) +
                                      " certificates; expected exactly one");
  }
  return std::move(certs[0]);
}

absl::StatusOr<std::vector<Certificate>> Certificate::ChainFromPem(std::string_view pem) {
  return ParsePemCertificates(pem);
}

std::string Certificate::ChainToPem(const std::vector<Certificate>& chain) {
  std::string out;
  for (const Certificate& c : chain) out += c.Pem();
  return out;
}

Certificate::Certificate(const Certificate& o)
    : x509_(UpRef(o.x509_.get())), der_(o.der_), subject_key_(o.subject_key_) {}

Certificate& Certificate::operator=(const Certificate& o) {
  if (this != &o) *this = Certificate(o);
  return *this;
}

std::string Certificate::Pem() const {
  SslPtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x509_.get()) != 1) std::abort();
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string Certificate::Subject() const { return NameToString(X509_get_subject_name(x509())); }
std::string Certificate::Issuer() const { return NameToString(X509_get_issuer_name(x509())); }

std::optional<std::string> Certificate::SubjectAttribute(std::string_view short_name) const {
  int nid = OBJ_txt2nid(std::string(short_name).c_str());
  if (nid == NID_undef) return std::nullopt;
  const X509_NAME* name = X509_get_subject_name(x509());
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return std::nullopt;
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) {
    ClearOpenSslErrors();
    return std::nullopt;
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string Certificate::SerialHex() const {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(x509());
  std::string hex =
      Hex({ASN1_STRING_get0_data(serial), static_cast<size_t>(ASN1_STRING_length(serial))});
  return hex.empty() ? "0" : hex;
}

int64_t Certificate::NotBefore() const { return TimeToUnix(X509_get0_notBefore(x509())); }
int64_t Certificate::NotAfter() const { return TimeToUnix(X509_get0_notAfter(x509())); }

bool Certificate::IsCa() const {
  SslPtr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x509(), NID_basic_constraints, nullptr, nullptr)));
  return bc && bc->ca != 0;
}

int Certificate::PathLen() const {
  SslPtr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(x509(), NID_basic_constraints, nullptr, nullptr)));
  if (!bc || bc->ca == 0 || bc->pathlen == nullptr) return -1;
  long v = ASN1_INTEGER_get(bc->pathlen);
  return v < 0 || v > INT32_MAX ? -1 : static_cast<int>(v);
}

bool Certificate::HasPolicy(std::string_view oid) const {
  SslPtr<ASN1_OBJECT> want = ObjectOf(oid, true);
  if (!want) return false;
  SslPtr<CERTIFICATEPOLICIES> policies(static_cast<CERTIFICATEPOLICIES*>(
      X509_get_ext_d2i(x509(), NID_certificate_policies, nullptr, nullptr)));
  if (!policies) return false;
  for (int i = 0; i < sk_POLICYINFO_num(policies.get()); ++i) {
    if (OBJ_cmp(sk_POLICYINFO_value(policies.get(), i)->policyid, want.get()) == 0) return true;
  }
  return false;
}

bool Certificate::HasExtendedKeyUsage(std::string_view oid) const {
  SslPtr<ASN1_OBJECT> want = ObjectOf(oid, false);
  if (!want) return false;
  SslPtr<EXTENDED_KEY_USAGE> eku(static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(x509(), NID_ext_key_usage, nullptr, nullptr)));
  if (!eku) return false;
  for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
    if (OBJ_cmp(sk_ASN1_OBJECT_value(eku.get(), i), want.get()) == 0) return true;
  }
  return false;
}

std::optional<std::vector<uint8_t>> Certificate::Extension(std::string_view oid) const {
  SslPtr<ASN1_OBJECT> obj = ObjectOf(oid, true);
  if (!obj) return std::nullopt;
  int i = X509_get_ext_by_OBJ(x509(), obj.get(), -1);
  if (i < 0) return std::nullopt;
  const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(X509_get_ext(x509(), i));
  const uint8_t* p = ASN1_STRING_get0_data(v);
  return std::vector<uint8_t>(p, p + ASN1_STRING_length(v));
}

std::string Certificate::Fingerprint() const { return Hex(Sha256(der_)); }

// --- Issuing -------------------------------------------------------------------------------------

absl::StatusOr<Certificate> IssueCertificate(const CertProfile& profile,
                                             const PublicKey& subject_key,
                                             const Certificate* issuer,
                                             const PrivateKey& issuer_key) {
  const PublicKey& expected = issuer != nullptr ? issuer->SubjectKey() : subject_key;
  if (!expected.Equals(issuer_key.Public())) {
    return absl::InvalidArgumentError(
        issuer != nullptr ? "issuer key does not match the issuer certificate's public key"
                          : "a self-signed certificate must be signed by its own key");
  }
  if (profile.not_after == 0) return absl::InvalidArgumentError("not_after is required");
  int64_t not_before = profile.not_before != 0 ? profile.not_before : NowUnix() - 60;
  if (profile.not_after <= not_before || profile.not_after > kNoExpiry) {
    return absl::InvalidArgumentError("not_after must be after not_before and at most 9999");
  }
  ASSIGN_OR_RETURN(SslPtr<ASN1_STRING> serial, SerialOf(profile));
  ASSIGN_OR_RETURN(SslPtr<X509_NAME> subject, NameOf(profile));

  SslPtr<X509> x(X509_new());
  if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1 ||
      X509_set_serialNumber(x.get(), serial.get()) != 1 ||
      X509_set_subject_name(x.get(), subject.get()) != 1 ||
      X509_set_issuer_name(x.get(), issuer != nullptr ? X509_get_subject_name(issuer->x509())
                                                      : subject.get()) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(profile.not_after)) ==
          nullptr ||
      X509_set_pubkey(x.get(), subject_key.evp()) != 1) {
    return OpenSslError("cannot build the certificate");
  }
  RETURN_IF_ERROR(AddBasicConstraints(x.get(), profile));
  RETURN_IF_ERROR(AddKeyUsage(x.get(), profile));
  RETURN_IF_ERROR(AddExtendedKeyUsage(x.get(), profile));
  RETURN_IF_ERROR(AddPolicies(x.get(), profile));
  RETURN_IF_ERROR(AddKeyIdentifiers(x.get(), issuer));
  RETURN_IF_ERROR(AddRawExtensions(x.get(), profile));

  const EVP_MD* md = issuer_key.curve() == Curve::kP384 ? EVP_sha384() : EVP_sha256();
  if (X509_sign(x.get(), issuer_key.evp(), md) <= 0) {
    return OpenSslError("cannot sign the certificate");
  }
  return Certificate::FromDer(DerOf(x.get()));
}

// --- Verifying -----------------------------------------------------------------------------------

absl::StatusOr<std::vector<Certificate>> VerifyChain(const Certificate& leaf,
                                                     const std::vector<Certificate>& intermediates,
                                                     const Certificate& anchor,
                                                     const VerifyOptions& options) {
  if (intermediates.size() + 2 > kMaxChainLength) {
    return absl::InvalidArgumentError("too many intermediate certificates");
  }
  uint32_t want_usage = 0;
  for (const std::string& name : options.leaf_key_usage) {
    const KeyUsageName* ku = FindKeyUsage(name);
    if (ku == nullptr) return absl::InvalidArgumentError("unknown key usage '" + name + "'");
    want_usage |= ku->flag;
  }
  if (X509_self_signed(anchor.x509(), 0) != 1) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("trust anchor '" + anchor.Subject() +
                                      "' is not a self-signed certificate");
  }
  SslPtr<X509_STORE> store(X509_STORE_new());
  X509StackPtr untrusted(sk_X509_new_null());
  SslPtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx || X509_STORE_add_cert(store.get(), anchor.x509()) != 1) {
    return OpenSslError("cannot set up chain verification");
  }
  for (const Certificate& c : intermediates) {
    if (X509_add_cert(untrusted.get(), c.x509(), X509_ADD_FLAG_UP_REF) != 1) {
      return OpenSslError("cannot set up chain verification");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.x509(), untrusted.get()) != 1) {
    return OpenSslError("cannot set up chain verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
  X509_VERIFY_PARAM_set_depth(param, static_cast<int>(kMaxChainLength));
  if (options.at_time != 0) X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(options.at_time));

  int rc = X509_verify_cert(ctx.get());
  if (rc != 1) {
    if (X509_STORE_CTX_get_error(ctx.get()) == X509_V_OK) {
      return OpenSslError("chain verification failed");
    }
    ClearOpenSslErrors();
    return absl::PermissionDeniedError(VerifyFailure(ctx.get(), leaf, anchor));
  }
  X509StackPtr path(X509_STORE_CTX_get1_chain(ctx.get()));
  if (!path) return OpenSslError("cannot read the verified chain");
  std::vector<Certificate> out;
  for (int i = 0; i < sk_X509_num(path.get()); ++i) {
    ASSIGN_OR_RETURN(Certificate c,
                     FindInput(sk_X509_value(path.get(), i), leaf, intermediates, anchor));
    out.push_back(std::move(c));
  }
  if (want_usage != 0) {
    X509* x = out.front().x509();
    bool has = (X509_get_extension_flags(x) & EXFLAG_KUSAGE) != 0;
    for (const std::string& name : options.leaf_key_usage) {
      if (!has || (X509_get_key_usage(x) & FindKeyUsage(name)->flag) == 0) {
        return absl::PermissionDeniedError("certificate '" + out.front().Subject() +
                                           "' key usage does not allow " + name);
      }
    }
  }
  return out;
}

// --- PKCS#10 -------------------------------------------------------------------------------------

absl::StatusOr<PublicKey> VerifiedCsrKey(std::string_view pem_or_der) {
  if (pem_or_der.size() > kMaxCsr) {
    return absl::InvalidArgumentError("CSR is larger than the " + std::to_string(kMaxCsr) +
                                      "-byte limit");
  }
  std::vector<uint8_t> der;
  if (pem_or_der.find("-----BEGIN") != std::string_view::npos) {
    SslPtr<BIO> bio(BIO_new_mem_buf(pem_or_der.data(), static_cast<int>(pem_or_der.size())));
    if (!bio) return OpenSslError("cannot read PEM");
    PemBlock block;
    ASSIGN_OR_RETURN(bool found, NextPemBlock(bio.get(), block));
    if (!found) return absl::InvalidArgumentError("no PEM block in CSR");
    if (std::strcmp(block.name, "CERTIFICATE REQUEST") != 0 &&
        std::strcmp(block.name, "NEW CERTIFICATE REQUEST") != 0) {
      return absl::InvalidArgumentError("unexpected PEM block '" + std::string(block.name) +
                                        "' (expected CERTIFICATE REQUEST)");
    }
    der.assign(block.data, block.data + block.len);
  } else {
    der.assign(pem_or_der.begin(), pem_or_der.end());
  }
  const unsigned char* p = der.data();
  SslPtr<X509_REQ> req(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
  if (!req) return OpenSslError("malformed CSR", absl::StatusCode::kInvalidArgument);
  if (p != der.data() + der.size()) {
    return absl::InvalidArgumentError("malformed CSR: trailing bytes after the DER");
  }
  EVP_PKEY* pkey = X509_REQ_get0_pubkey(req.get());
  if (pkey == nullptr) {
    return OpenSslError("malformed CSR: unreadable key", absl::StatusCode::kInvalidArgument);
  }
  if (X509_REQ_verify(req.get(), pkey) != 1) {
    ClearOpenSslErrors();
    return absl::PermissionDeniedError("CSR self-signature does not verify");
  }
  absl::StatusOr<PublicKey> key = PublicKey::FromEvp(pkey);
  if (!key.ok()) return Annotate(key.status(), "unsupported CSR key");
  return key;
}

}  // namespace clade::crypto
