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
#include "crypto/x509.h"
#include "crypto/x509_internal.h"

namespace clade::crypto {

namespace {

constexpr size_t kSerialBytes = 16;

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
    const x509_internal::KeyUsageName* ku = x509_internal::FindKeyUsage(name);
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
    SslPtr<ASN1_OBJECT> obj = x509_internal::ObjectOf(name, false);
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
    SslPtr<ASN1_OBJECT> obj = x509_internal::ObjectOf(oid, true);
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
    SslPtr<ASN1_OBJECT> obj = x509_internal::ObjectOf(raw.oid, true);
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

}  // namespace

// --- Issuing -------------------------------------------------------------------------------------

absl::StatusOr<Certificate> IssueCertificate(const CertProfile& profile,
                                             const PublicKey& subject_key,
                                             const Certificate* issuer,
                                             const PrivateKey& issuer_key, const Clock& clock) {
  const PublicKey& expected = issuer != nullptr ? issuer->SubjectKey() : subject_key;
  if (!expected.Equals(issuer_key.Public())) {
    return absl::InvalidArgumentError(
        issuer != nullptr ? "issuer key does not match the issuer certificate's public key"
                          : "a self-signed certificate must be signed by its own key");
  }
  if (profile.not_after == 0) return absl::InvalidArgumentError("not_after is required");
  int64_t not_before = profile.not_before != 0 ? profile.not_before : clock.Now() - 60;
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
  return Certificate::FromDer(x509_internal::DerOf(x.get()));
}

}  // namespace clade::crypto
