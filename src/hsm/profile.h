// Device certificate profiles (docs/profiles.md): the JSON an OEM puts in a job package, parsed
// strictly (unknown keys are errors, so a typo never silently drops a setting), and turned into a
// crypto::CertProfile per device.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "crypto/x509.h"

namespace clade::hsm {

inline constexpr size_t kMaxProfileJson = 64 * 1024;

enum class DeviceKeyMode {
  kDevice,  // the chip made its key pair; a public key or CSR comes with each request
  kHsm,     // the member generates the device key pair
};

struct DeviceProfile {
  std::string product;
  // Attribute (short name like "CN", or a dotted OID) → template with {uid}, {job}, {product}.
  std::vector<std::pair<std::string, std::string>> subject;
  int64_t not_after = 0;      // absolute (kNoExpiry for 99991231235959Z), or 0 when days is set
  int64_t validity_days = 0;  // relative to the time of provisioning
  std::vector<std::string> key_usage;
  std::vector<std::string> extended_key_usage;
  std::vector<crypto::CertProfile::RawExtension> extensions;
  DeviceKeyMode key_mode = DeviceKeyMode::kDevice;
  bool allow_plain_keys = false;  // hsm mode: may the key leave unwrapped (legacy programmers)?
};

// Refusals name the key: "profile: unknown key 'validty'", "profile: key_mode must be 'device' or
// 'hsm'", "profile: subject.CN must be a string".
absl::StatusOr<DeviceProfile> ParseProfile(const std::string& json);

// Issues a trial certificate with throwaway keys: catches what only OpenSSL refuses (an unknown
// subject attribute, a bad key usage or OID) when a package is made and imported, not per device.
absl::Status CheckProfileIssues(const DeviceProfile& profile, const std::string& job_id,
                                int64_t now);

// Device uids: letters, digits, '.', '_', ':', '-', 1..128 characters.
absl::Status CheckDeviceUid(const std::string& uid);

// The certificate profile for one device.
absl::StatusOr<crypto::CertProfile> DeviceCertProfile(const DeviceProfile& profile,
                                                      const std::string& job_id,
                                                      const std::string& uid, int64_t now);

}  // namespace clade::hsm
