#include "crypto/pem_files.h"

#include "base/files.h"

namespace clade::crypto {

absl::StatusOr<Certificate> ReadCertificateFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(path, kMaxChainPem));
  auto cert = Certificate::FromPem(pem);
  if (!cert.ok()) return Annotate(cert.status(), path);
  return cert;
}

absl::StatusOr<std::vector<Certificate>> ReadChainFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(path, kMaxChainPem));
  auto chain = Certificate::ChainFromPem(pem);
  if (!chain.ok()) return Annotate(chain.status(), path);
  return chain;
}

absl::StatusOr<PrivateKey> ReadPrivateKeyFile(const std::string& path) {
  RETURN_IF_ERROR(CheckPrivateFile(path));
  ASSIGN_OR_RETURN(Bytes pem, ReadFileBytes(path, kMaxKeyEncoding));
  auto key = PrivateKey::FromPem(SecretBytes::Adopt(pem));
  if (!key.ok()) return Annotate(key.status(), path);
  return key;
}

absl::Status WritePrivateKeyFile(const std::string& path, const PrivateKey& key) {
  SecretBytes pem = key.ToPkcs8Pem();
  auto bytes = pem.RevealSecret();
  return WriteFileAtomic(path, bytes.data(), bytes.size(), 0600, /*exclusive=*/true);
}

}  // namespace clade::crypto
