// Certificates and keys in PEM files, with the file-level rules every actor's directory follows:
// bounded reads, private keys refused when group or others can read them, keys written 0600
// and never over an existing file.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"

namespace clade::crypto {

// Exactly one certificate; errors name the file.
absl::StatusOr<Certificate> ReadCertificateFile(const std::string& path);
// A PEM bundle, in file order.
absl::StatusOr<std::vector<Certificate>> ReadChainFile(const std::string& path);
// PKCS#8 or EC PEM, unencrypted; refused if the file's mode lets group or others read it.
absl::StatusOr<PrivateKey> ReadPrivateKeyFile(const std::string& path);
// PKCS#8 PEM, mode 0600; refuses an existing file.
absl::Status WritePrivateKeyFile(const std::string& path, const PrivateKey& key);

}  // namespace clade::crypto
