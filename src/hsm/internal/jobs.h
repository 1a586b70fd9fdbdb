// Internal to src/hsm: how jobs and provisioned devices are kept, and the package checks that
// import and provisioning share.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "clade/v1/hsm_state.pb.h"
#include "clade/v1/job.pb.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/audit.h"
#include "hsm/job.h"
#include "hsm/profile.h"
#include "store/state_store.h"

namespace clade::hsm::internal {

// Records "job"/<group id>/<job id> hold the package as imported (the signed message);
// "device"/<group id>/<job id>/<uid> a ProvisioningRecord; "job-count"/<group id>/<job id> the
// number of devices provisioned by this member. Keyed by group first: job ids are the OEM's, so
// two groups of one HSM may each have a job "J2", and neither sees nor blocks the other's.
inline constexpr char kJobNs[] = "job";
inline constexpr char kDeviceNs[] = "device";
inline constexpr char kJobCountNs[] = "job-count";
// "<group id>/<job id>" (group ids are hex, job ids have no '/').
std::string JobKey(const std::string& group_id, const std::string& job_id);

struct OpenedJob {
  v1::JobPackage package;
  crypto::Certificate signer;
};
absl::StatusOr<OpenedJob> OpenJob(std::span<const uint8_t> package);

// VerifyJobPackage's checks on an opened package; the result's firmware and config are left
// empty (the caller holds them in `job`).
absl::StatusOr<VerifiedJobPackage> VerifyOpenedJob(const OpenedJob& job,
                                                   const crypto::Certificate& oem_root,
                                                   const std::string& group_id, int64_t now);

struct CheckedJob {
  DeviceProfile profile;
  std::vector<crypto::Certificate> device_ca_chain;  // device-issuing CA, OEM root
  crypto::PrivateKey ca_key;                         // unwrapped device-issuing CA key
};
absl::StatusOr<CheckedJob> CheckJob(const OpenedJob& job, const v1::GroupMembership& m,
                                    const crypto::PrivateKey& group_encryption_key, int64_t now);

absl::StatusOr<uint64_t> DeviceCount(const store::Transaction& tx, const std::string& group_id,
                                     const std::string& job_id);
absl::StatusOr<crypto::PrivateKey> KeyFromPkcs8DerOrPem(const crypto::SecretBytes& bytes);

}  // namespace clade::hsm::internal
