#include "crypto/cms.h"

#include <openssl/cms.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "crypto/error.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto {
namespace {

// The recipient certificate must carry an EC key and, if it has keyUsage, allow keyAgreement
// (RFC 5753 §3; RFC 5280 §4.2.1.3).
absl::Status CheckRecipient(const Certificate& recipient) {
  EVP_PKEY* pkey = X509_get0_pubkey(recipient.x509());
  if (pkey == nullptr || !EVP_PKEY_is_a(pkey, "EC")) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError(
        "recipient certificate '" + recipient.Subject() +
        "' does not carry an elliptic-curve key (CMS key agreement needs EC)");
  }
  // UINT32_MAX when the certificate has no keyUsage extension: any use allowed.
  uint32_t usage = X509_get_key_usage(recipient.x509());
  if (usage != UINT32_MAX && (usage & KU_KEY_AGREEMENT) == 0) {
    return absl::InvalidArgumentError("recipient certificate '" + recipient.Subject() +
                                      "' does not allow key agreement");
  }
  return absl::OkStatus();
}

absl::StatusOr<SslPtr<CMS_ContentInfo>> ParseCmsDer(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  SslPtr<CMS_ContentInfo> cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
  if (!cms) return OpenSslError("not a CMS message", absl::StatusCode::kInvalidArgument);
  if (p != der.data() + der.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a CMS message: ", der.data() + der.size() - p,
                     " trailing bytes after the ContentInfo"));
  }
  return cms;
}

// DER, or PEM "-----BEGIN CMS-----" (PEM_bytes_read_bio also takes the older "PKCS7" label).
absl::StatusOr<SslPtr<CMS_ContentInfo>> ParseCms(std::span<const uint8_t> message) {
  constexpr std::string_view kPemStart = "-----BEGIN";
  std::string_view text(reinterpret_cast<const char*>(message.data()), message.size());
  if (!text.starts_with(kPemStart)) return ParseCmsDer(message);

  SslPtr<BIO> bio(BIO_new_mem_buf(message.data(), static_cast<int>(message.size())));
  if (!bio) return OpenSslError("cannot allocate a memory BIO");
  unsigned char* der = nullptr;
  long der_len = 0;
  char* name = nullptr;
  if (PEM_bytes_read_bio(&der, &der_len, &name, PEM_STRING_CMS, bio.get(), nullptr, nullptr) != 1) {
    return OpenSslError("not a CMS message", absl::StatusCode::kInvalidArgument);
  }
  auto result = ParseCmsDer({der, static_cast<size_t>(der_len)});
  OPENSSL_free(der);
  OPENSSL_free(name);
  return result;
}

// True when some KeyAgreeRecipientInfo names `cert` (by issuer and serial, or by subject key
// identifier) as a recipient.
bool IsAddressedTo(CMS_ContentInfo* cms, X509* cert) {
  STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(cms);
  for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); ++i) {
    CMS_RecipientInfo* ri = sk_CMS_RecipientInfo_value(ris, i);
    if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_AGREE) continue;
    STACK_OF(CMS_RecipientEncryptedKey)* reks = CMS_RecipientInfo_kari_get0_reks(ri);
    for (int j = 0; j < sk_CMS_RecipientEncryptedKey_num(reks); ++j) {
      if (CMS_RecipientEncryptedKey_cert_cmp(sk_CMS_RecipientEncryptedKey_value(reks, j), cert) ==
          0) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> CmsEncrypt(std::span<const uint8_t> plaintext,
                                                const Certificate& recipient,
                                                CmsContentCipher cipher) {
  if (plaintext.size() > kMaxCmsSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plaintext is ", plaintext.size(), " bytes, more than the CMS limit of ", kMaxCmsSize));
  }
  RETURN_IF_ERROR(CheckRecipient(recipient));

  const EVP_CIPHER* content_cipher =
      cipher == CmsContentCipher::kAes256Gcm ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
  const unsigned int flags = CMS_BINARY | CMS_PARTIAL;
  // With an AEAD cipher OpenSSL 3 makes AuthEnvelopedData (RFC 5083), otherwise EnvelopedData.
  SslPtr<CMS_ContentInfo> cms(
      CMS_encrypt_ex(nullptr, nullptr, content_cipher, flags, nullptr, nullptr));
  if (!cms) return OpenSslError("cannot create the CMS envelope");

  // CMS_KEY_PARAM leaves the key agreement parameters open so we can choose the KDF digest;
  // OpenSSL fills in the rest (X9.63 KDF, AES-256 key wrap to match the content key) at final.
  CMS_RecipientInfo* ri =
      CMS_add1_recipient_cert(cms.get(), recipient.x509(), flags | CMS_KEY_PARAM);
  if (ri == nullptr) return OpenSslError("cannot add the CMS recipient");
  if (CMS_RecipientInfo_type(ri) != CMS_RECIPINFO_AGREE) {
    return absl::InternalError("CMS recipient is not a key agreement recipient");
  }
  EVP_PKEY_CTX* pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);  // owned by `ri`
  if (pctx == nullptr || EVP_PKEY_CTX_set_ecdh_kdf_md(pctx, EVP_sha256()) <= 0) {
    return OpenSslError("cannot set the ECDH KDF digest to SHA-256");
  }

  SslPtr<BIO> in(BIO_new_mem_buf(plaintext.data(), static_cast<int>(plaintext.size())));
  if (!in) return OpenSslError("cannot allocate a memory BIO");
  if (CMS_final(cms.get(), in.get(), nullptr, flags) != 1) {
    return OpenSslError("CMS encryption failed");
  }

  SslPtr<BIO> out(BIO_new(BIO_s_mem()));
  if (!out || i2d_CMS_bio(out.get(), cms.get()) != 1) {
    return OpenSslError("cannot encode the CMS message");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  if (len <= 0 || data == nullptr) return OpenSslError("cannot encode the CMS message");
  if (static_cast<size_t>(len) > kMaxCmsSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("CMS message would be ", len, " bytes, more than the limit of ", kMaxCmsSize));
  }
  return std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(data),
                              reinterpret_cast<const uint8_t*>(data) + len);
}

absl::StatusOr<SecretBytes> CmsDecrypt(std::span<const uint8_t> message, const PrivateKey& key,
                                       const Certificate& recipient) {
  if (message.size() > kMaxCmsSize) {
    return absl::InvalidArgumentError(absl::StrCat("CMS message is ", message.size(),
                                                   " bytes, more than the limit of ", kMaxCmsSize));
  }
  if (EVP_PKEY_eq(key.evp(), X509_get0_pubkey(recipient.x509())) != 1) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("private key does not match the recipient certificate '" +
                                      recipient.Subject() + "'");
  }
  ASSIGN_OR_RETURN(SslPtr<CMS_ContentInfo> cms, ParseCms(message));

  const int type = OBJ_obj2nid(CMS_get0_type(cms.get()));
  if (type != NID_pkcs7_enveloped && type != NID_id_smime_ct_authEnvelopedData) {
    return absl::InvalidArgumentError(
        absl::StrCat("CMS message is not enveloped data (content type ", OBJ_nid2sn(type), ")"));
  }
  ASN1_OCTET_STRING** content = CMS_get0_content(cms.get());
  if (content == nullptr || *content == nullptr) {
    ClearOpenSslErrors();
    return absl::InvalidArgumentError("CMS message has no encrypted content (detached)");
  }
  if (!IsAddressedTo(cms.get(), recipient.x509())) {
    ClearOpenSslErrors();
    return absl::PermissionDeniedError("CMS message is not for this recipient '" +
                                       recipient.Subject() + "'");
  }

  // Same answer for every failure from here on (bad wrapped key, bad tag, bad padding): no
  // oracle for whoever made the message.
  const absl::Status does_not_decrypt = absl::PermissionDeniedError("CMS content does not decrypt");
  if (CMS_decrypt_set1_pkey_and_peer(cms.get(), key.evp(), recipient.x509(), nullptr) != 1) {
    ClearOpenSslErrors();
    return does_not_decrypt;
  }
  // A secure-memory BIO is wiped when freed, also when decryption fails half way.
  SslPtr<BIO> out(BIO_new(BIO_s_secmem()));
  if (!out) return OpenSslError("cannot allocate a secure-memory BIO");
  if (CMS_decrypt(cms.get(), nullptr, nullptr, nullptr, out.get(), CMS_BINARY) != 1) {
    ClearOpenSslErrors();
    return does_not_decrypt;
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  // Neither CBC nor GCM expands on decryption: the plaintext is shorter than the message.
  if (len < 0 || static_cast<size_t>(len) > message.size() || (len > 0 && data == nullptr)) {
    ClearOpenSslErrors();
    return absl::InternalError(absl::StrCat("CMS decryption produced ", len, " bytes from a ",
                                            message.size(), "-byte message"));
  }
  return SecretBytes(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(len));
}

}  // namespace clade::crypto
