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
#include "crypto/x509_internal.h"

namespace clade::crypto {
namespace x509_internal {

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

}  // namespace x509_internal

namespace {

absl::StatusOr<std::vector<Certificate>> ParsePemCertificates(std::string_view pem) {
  if (pem.size() > kMaxChainPem) {
    return absl::InvalidArgumentError("certificate PEM is larger than the " +
                                      std::to_string(kMaxChainPem) + "-byte limit");
  }
  SslPtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return OpenSslError("cannot read PEM");
  std::vector<Certificate> certs;
  while (true) {
    x509_internal::PemBlock block;
    ASSIGN_OR_RETURN(bool more, x509_internal::NextPemBlock(bio.get(), block));
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
  if (x509_internal::DerOf(x.get()) != copy) {
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
    : x509_(x509_internal::UpRef(o.x509_.get())), der_(o.der_), subject_key_(o.subject_key_) {}

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

std::string Certificate::Subject() const {
  return x509_internal::NameToString(X509_get_subject_name(x509()));
}
std::string Certificate::Issuer() const {
  return x509_internal::NameToString(X509_get_issuer_name(x509()));
}

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

int64_t Certificate::NotBefore() const {
  return x509_internal::TimeToUnix(X509_get0_notBefore(x509()));
}
int64_t Certificate::NotAfter() const {
  return x509_internal::TimeToUnix(X509_get0_notAfter(x509()));
}

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
  SslPtr<ASN1_OBJECT> want = x509_internal::ObjectOf(oid, true);
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
  SslPtr<ASN1_OBJECT> want = x509_internal::ObjectOf(oid, false);
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
  SslPtr<ASN1_OBJECT> obj = x509_internal::ObjectOf(oid, true);
  if (!obj) return std::nullopt;
  int i = X509_get_ext_by_OBJ(x509(), obj.get(), -1);
  if (i < 0) return std::nullopt;
  const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(X509_get_ext(x509(), i));
  const uint8_t* p = ASN1_STRING_get0_data(v);
  return std::vector<uint8_t>(p, p + ASN1_STRING_length(v));
}

std::string Certificate::Fingerprint() const { return Hex(Sha256(der_)); }

}  // namespace clade::crypto
