// Internal to src/crypto: the X.509 pieces that parsing (x509.cpp), issuing (x509_issue.cpp) and
// verifying (x509_verify.cpp) share.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/ssl_ptr.h"

namespace clade::crypto::x509_internal {

// keyUsage names (as in OpenSSL config), their bit in the BIT STRING and X509_get_key_usage flag.
struct KeyUsageName {
  const char* name;
  int bit;
  uint32_t flag;
};
const KeyUsageName* FindKeyUsage(std::string_view name);
// A dotted OID as text: "2.25.<digits>…". Checked before OBJ_txt2obj, which would also take names.
bool IsDottedOid(std::string_view s);
SslPtr<ASN1_OBJECT> ObjectOf(std::string_view text, bool dotted_only);
std::string NameToString(const X509_NAME* name);
int64_t TimeToUnix(const ASN1_TIME* t);
// Certificates are immutable once parsed, so copies share one X509.
SslPtr<X509> UpRef(X509* x);
std::vector<uint8_t> DerOf(X509* x);

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
absl::StatusOr<bool> NextPemBlock(BIO* bio, PemBlock& block);

}  // namespace clade::crypto::x509_internal
