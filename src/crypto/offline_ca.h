// A two-level offline CA kept in a directory D — a self-signed root and an issuing CA under it —
// as the HSM supplier and the OEM both hold one (docs/pki.md):
//   D/root.crt  D/issuing.crt   (PEM certificates)
//   D/root.key  D/issuing.key   (PKCS#8 PEM, mode 0600)
// Made once, refused over an existing CA; loaded with the issuing CA verified under the root.
// Which policies, key usages and lifetimes the two levels carry is the owner's choice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"

namespace clade::crypto {

// One level of the CA: its subject is "CN=<owner> <common_name>, O=<owner>".
struct OfflineCaLevel {
  std::string common_name;  // e.g. "Root CA"
  int64_t lifetime_seconds = 0;
  std::vector<std::string> key_usage;
  std::vector<std::string> policies;
  int path_len = -1;  // -1 = no limit
};

struct OfflineCaSpec {
  std::string owner;  // the O attribute of both certificates, 1 to 64 characters
  std::string noun;   // in refusals: "supplier", "OEM"
  std::string role;   // in refusals: "a supplier", "an OEM"
  Curve curve = Curve::kP256;
  OfflineCaLevel root;
  OfflineCaLevel issuing;
};

struct OfflineCa {
  Certificate root;
  Certificate issuing;
};

// Creates D (0700 if missing) with new keys and certificates valid from `now`. Refuses a bad
// owner ("OEM name must be 1 to 64 characters") and (AlreadyExists, nothing written) any of the
// four files existing:
//   "D/root.crt already exists; refusing to overwrite a supplier".
absl::StatusOr<OfflineCa> CreateOfflineCa(const std::string& dir, const OfflineCaSpec& spec,
                                          int64_t now);
// Reads D/root.crt and D/issuing.crt and verifies the issuing CA under the root as of
// `clock.Now()`; a failure names D/issuing.crt: "D/issuing.crt: certificate '…' (depth 0) has
// expired (not after …)".
absl::StatusOr<OfflineCa> LoadOfflineCa(const std::string& dir, const Clock& clock = SystemClock());
// Reads D/issuing.key and checks it matches the issuing certificate:
//   "D/issuing.key does not match D/issuing.crt".
absl::StatusOr<PrivateKey> LoadIssuingKey(const std::string& dir, const OfflineCa& ca);

}  // namespace clade::crypto
