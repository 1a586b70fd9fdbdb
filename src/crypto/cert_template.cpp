#include "crypto/cert_template.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "crypto/digest.h"
#include "crypto/error.h"
#include "crypto/random.h"

namespace clade::crypto {
namespace {

using Der = std::vector<uint8_t>;

// X.690 §8.1.3 definite length.
void PutLength(Der& out, size_t len) {
  if (len < 0x80) {
    out.push_back(static_cast<uint8_t>(len));
    return;
  }
  uint8_t buf[8];
  int n = 0;
  while (len > 0) {
    buf[n++] = static_cast<uint8_t>(len & 0xff);
    len >>= 8;
  }
  out.push_back(static_cast<uint8_t>(0x80 | n));
  while (n > 0) out.push_back(buf[--n]);
}

void PutTlv(Der& out, uint8_t tag, const uint8_t* data, size_t len) {
  out.push_back(tag);
  PutLength(out, len);
  out.insert(out.end(), data, data + len);
}
void PutTlv(Der& out, uint8_t tag, const Der& content) {
  PutTlv(out, tag, content.data(), content.size());
}

// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
Der Time(int64_t t) {
  absl::CivilSecond cs = absl::ToCivilSecond(absl::FromUnixSeconds(t), absl::UTCTimeZone());
  char buf[20];
  Der out;
  if (cs.year() >= 1950 && cs.year() < 2050) {
    int n = std::snprintf(buf, sizeof buf, "%02d%02d%02d%02d%02d%02dZ",
                          static_cast<int>(cs.year() % 100), cs.month(), cs.day(), cs.hour(),
                          cs.minute(), cs.second());
    PutTlv(out, 0x17, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n));
  } else {
    int n = std::snprintf(buf, sizeof buf, "%04d%02d%02d%02d%02d%02dZ", static_cast<int>(cs.year()),
                          cs.month(), cs.day(), cs.hour(), cs.minute(), cs.second());
    PutTlv(out, 0x18, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n));
  }
  return out;
}

// Reads one TLV header at `p`; returns the content span or nullopt if malformed.
bool ReadTlv(const uint8_t*& p, const uint8_t* end, uint8_t* tag, const uint8_t** content,
             size_t* len) {
  if (end - p < 2) return false;
  *tag = *p++;
  size_t l = *p++;
  if (l & 0x80) {
    int n = static_cast<int>(l & 0x7f);
    if (n == 0 || n > 4 || end - p < n) return false;
    l = 0;
    while (n-- > 0) l = (l << 8) | *p++;
  }
  if (static_cast<size_t>(end - p) < l) return false;
  *content = p;
  *len = l;
  p += l;
  return true;
}

// The subjectPublicKey bits of a SubjectPublicKeyInfo, for the key identifier.
absl::StatusOr<std::span<const uint8_t>> PublicKeyBits(const Der& spki) {
  const uint8_t* p = spki.data();
  const uint8_t* end = p + spki.size();
  uint8_t tag = 0;
  const uint8_t* c = nullptr;
  size_t len = 0;
  if (!ReadTlv(p, end, &tag, &c, &len) || tag != 0x30) {
    return absl::InvalidArgumentError("malformed SubjectPublicKeyInfo");
  }
  const uint8_t* q = c;
  const uint8_t* qend = c + len;
  if (!ReadTlv(q, qend, &tag, &c, &len) || tag != 0x30 ||  // algorithm
      !ReadTlv(q, qend, &tag, &c, &len) || tag != 0x03 || len < 2 || c[0] != 0) {
    return absl::InvalidArgumentError("malformed SubjectPublicKeyInfo");
  }
  return std::span<const uint8_t>(c + 1, len - 1);
}

absl::StatusOr<Der> NameDer(const std::vector<std::pair<std::string, std::string>>& subject) {
  SslPtr<X509_NAME> name(X509_NAME_new());
  if (!name) return OpenSslError("cannot build a name");
  for (const auto& [type, value] : subject) {
    if (X509_NAME_add_entry_by_txt(name.get(), type.c_str(), MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      return OpenSslError("invalid subject attribute " + type, absl::StatusCode::kInvalidArgument);
    }
  }
  unsigned char* buf = nullptr;
  int len = i2d_X509_NAME(name.get(), &buf);
  if (len <= 0) return OpenSslError("cannot encode a name");
  Der out(buf, buf + len);
  OPENSSL_free(buf);
  return out;
}

}  // namespace

absl::StatusOr<CertTemplate> CertTemplate::Create(const CertProfile& fixed,
                                                  const Certificate& issuer,
                                                  const PrivateKey& issuer_key) {
  if (!issuer_key.Public().Equals(issuer.SubjectKey())) {
    return absl::InvalidArgumentError("the issuer key does not match the issuer certificate");
  }
  // A prototype from the object path gives the extensions exactly as IssueCertificate writes
  // them; only the subject key identifier changes per certificate.
  ASSIGN_OR_RETURN(auto probe_key, PrivateKey::Generate(Curve::kP256));
  CertProfile proto = fixed;
  proto.subject = {{"CN", "template"}};
  proto.not_before = 0;
  proto.not_after = kNoExpiry;
  proto.serial.reset();
  ASSIGN_OR_RETURN(auto prototype,
                   IssueCertificate(proto, probe_key.Public(), &issuer, issuer_key));
  std::vector<Der> extensions;
  int ski_slot = -1;
  X509* x = prototype.x509();
  for (int i = 0; i < X509_get_ext_count(x); ++i) {
    X509_EXTENSION* ext = X509_get_ext(x, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_subject_key_identifier) {
      ski_slot = i;
      extensions.emplace_back();
      continue;
    }
    unsigned char* buf = nullptr;
    int len = i2d_X509_EXTENSION(ext, &buf);
    if (len <= 0) return OpenSslError("cannot encode an extension");
    extensions.emplace_back(buf, buf + len);
    OPENSSL_free(buf);
  }
  if (ski_slot < 0) return absl::InternalError("the prototype certificate has no key identifier");
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(nullptr, &alg, x);
  unsigned char* abuf = nullptr;
  int alen = i2d_X509_ALGOR(alg, &abuf);
  if (alen <= 0) return OpenSslError("cannot encode the signature algorithm");
  Der sig_alg(abuf, abuf + alen);
  OPENSSL_free(abuf);
  unsigned char* nbuf = nullptr;
  int nlen = i2d_X509_NAME(X509_get_subject_name(issuer.x509()), &nbuf);
  if (nlen <= 0) return OpenSslError("cannot encode the issuer name");
  Der issuer_name(nbuf, nbuf + nlen);
  OPENSSL_free(nbuf);
  ASSIGN_OR_RETURN(Signer signer, Signer::Create(issuer_key));
  return CertTemplate(std::move(signer), std::move(sig_alg), std::move(issuer_name),
                      std::move(extensions), ski_slot);
}

absl::StatusOr<CertTemplate::Issued> CertTemplate::Issue(
    const std::vector<std::pair<std::string, std::string>>& subject, int64_t not_before,
    int64_t not_after, const PublicKey& key) const {
  if (subject.empty()) return absl::InvalidArgumentError("certificate subject is empty");
  if (not_after <= not_before || not_after > kNoExpiry || not_before < 0) {
    return absl::InvalidArgumentError("not_after must be after not_before and at most 9999");
  }
  // 16 random bytes, positive and with a non-zero first byte, so the INTEGER is minimal DER.
  Der serial = RandomBytes(16);
  serial[0] = static_cast<uint8_t>((serial[0] & 0x7f) | 0x40);
  ASSIGN_OR_RETURN(Der subject_name, NameDer(subject));
  const Der& spki = key.ToDer();
  ASSIGN_OR_RETURN(auto bits, PublicKeyBits(spki));
  uint8_t sha1[20];
  unsigned int sha1_len = 0;
  if (EVP_Digest(bits.data(), bits.size(), sha1, &sha1_len, EVP_sha1(), nullptr) != 1) {
    return OpenSslError("cannot hash the subject key");
  }
  // Extension { extnID 2.5.29.14, extnValue OCTET STRING { OCTET STRING keyid } } (RFC 5280
  // §4.2.1.2)
  Der ski = {0x06, 0x03, 0x55, 0x1d, 0x0e};
  Der keyid;
  PutTlv(keyid, 0x04, sha1, sha1_len);
  PutTlv(ski, 0x04, keyid);
  Der ski_ext;
  PutTlv(ski_ext, 0x30, ski);

  Der exts;
  for (size_t i = 0; i < extensions_.size(); ++i) {
    const Der& e = static_cast<int>(i) == ski_slot_ ? ski_ext : extensions_[i];
    exts.insert(exts.end(), e.begin(), e.end());
  }
  Der ext_seq;
  PutTlv(ext_seq, 0x30, exts);

  Der validity = Time(not_before);
  Der na = Time(not_after);
  validity.insert(validity.end(), na.begin(), na.end());

  Der tbs_body = {0xa0, 0x03, 0x02, 0x01, 0x02};  // [0] EXPLICIT version v3
  PutTlv(tbs_body, 0x02, serial);
  tbs_body.insert(tbs_body.end(), sig_alg_.begin(), sig_alg_.end());
  tbs_body.insert(tbs_body.end(), issuer_name_.begin(), issuer_name_.end());
  PutTlv(tbs_body, 0x30, validity);
  tbs_body.insert(tbs_body.end(), subject_name.begin(), subject_name.end());
  tbs_body.insert(tbs_body.end(), spki.begin(), spki.end());
  PutTlv(tbs_body, 0xa3, ext_seq);
  Der tbs;
  tbs.reserve(tbs_body.size() + 4);
  PutTlv(tbs, 0x30, tbs_body);

  ASSIGN_OR_RETURN(Der sig, signer_.Sign(tbs));
  Der sig_bits = {0x00};
  sig_bits.insert(sig_bits.end(), sig.begin(), sig.end());
  Der body = std::move(tbs);
  body.insert(body.end(), sig_alg_.begin(), sig_alg_.end());
  PutTlv(body, 0x03, sig_bits);
  Issued out;
  PutTlv(out.der, 0x30, body);
  out.serial_hex = Hex(serial);
  return out;
}

}  // namespace clade::crypto
