// Jobs and provisioning (docs/design.md, "Messages"; docs/oem-guide.md). A member imports an OEM
// job package for its group — checked against the OEM root the group trusts — and provisions
// devices with it: per device, a certificate issued by the OEM device-issuing CA key (which stays
// wrapped at rest and is unwrapped only inside the member, for the life of a Provisioner), the
// device key when the member makes it (CMS to the device's transport key), firmware and
// configuration, and a record signed by the member. The per-device path is one plain call
// (Provisioner::Provision) with one transaction. Expiry is checked at the HSM's clock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/cert_template.h"
#include "crypto/key.h"
#include "crypto/signature.h"
#include "crypto/x509.h"
#include "hsm/hsm.h"
#include "hsm/profile.h"

namespace clade::hsm {

inline constexpr char kJobPackageType[] = "clade.v1.JobPackage";
inline constexpr char kProvisioningRecordType[] = "clade.v1.ProvisioningRecord";
// Packages carry firmware images; they may be large, but not without bound.
inline constexpr size_t kMaxJobPackage = 64 * 1024 * 1024;

struct JobSummary {
  std::string job_id;
  std::string group_id;
  std::string product;
  std::string key_mode;  // "device" or "hsm"
  std::string device_ca_subject;
  int64_t expires_at = 0;            // 0 = none
  uint64_t devices_provisioned = 0;  // by this member
  bool has_firmware = false;
  bool has_config = false;
};

// Checks and keeps a job package: signed by the OEM root the target group trusts, for a group this
// HSM is a member of, not expired, device-issuing CA issued by that OEM root, profile valid,
// digests matching, and the CA key wrapped for the group encryption key and matching the CA cert.
// Named refusals, e.g. "package is for group X; this HSM is not a member of it", "package is not
// signed by the OEM root group X trusts", "package expired at …", "the device CA key is not wrapped
// for this group's encryption key: …". Importing the same package again is a no-op. Jobs are
// kept per group: another group's job with the same id is another job.
absl::StatusOr<JobSummary> ImportJob(Hsm& hsm, std::span<const uint8_t> package);

// A job package whose signature and contents were checked by VerifyJobPackage: what a member
// imports, and what a line programs.
struct VerifiedJobPackage {
  std::string job_id;
  std::string group_id;
  DeviceProfile profile;
  std::vector<crypto::Certificate> device_ca_chain;  // device-issuing CA, OEM root
  int64_t expires_at = 0;                            // 0 = none
  std::vector<uint8_t> firmware;                     // empty when the package carries none
  std::vector<uint8_t> config;
  // The package's digests, checked against the contents; empty when there is no firmware
  // (config), as a member's provisioning record then carries them.
  std::vector<uint8_t> firmware_sha256;
  std::vector<uint8_t> config_sha256;
};
// The checks of `job import` that need no member's secrets (ImportJob makes them, then opens the
// wrapped CA key): signed by `oem_root`, for group `group_id`, not expired at `clock`'s time, a
// valid job id and profile, the device-issuing CA a CA issued by `oem_root`, digests matching.
// Refusals as ImportJob's, e.g. "package is for group X, not group Y", "package is not signed by
// the OEM root group Y trusts ('CN=…')".
absl::StatusOr<VerifiedJobPackage> VerifyJobPackage(std::span<const uint8_t> package,
                                                    const crypto::Certificate& oem_root,
                                                    const std::string& group_id,
                                                    const Clock& clock = SystemClock());
// What a programmed device must carry according to a job package: its job id and the firmware
// and config digests (empty = the job has none). JobImageDigests checks only that the package
// opens and is signed by `oem_root` (a chip is checked against its job long after the job may have
// expired); PermissionDenied "job package is not signed by the OEM root '…' (signed by '…')".
struct JobImageDigests {
  std::string job_id;
  std::vector<uint8_t> firmware_sha256;
  std::vector<uint8_t> config_sha256;
};
absl::StatusOr<JobImageDigests> ReadJobImageDigests(std::span<const uint8_t> package,
                                                    const crypto::Certificate& oem_root);
// The OEM root group `group_id` accepts job packages from (clade group trust-oem), if any.
absl::StatusOr<std::optional<crypto::Certificate>> AcceptedOemRoot(Hsm& hsm,
                                                                   const std::string& group_id);
// The jobs of every group of this HSM, or of `group_id` only.
absl::StatusOr<std::vector<JobSummary>> ListJobs(Hsm& hsm, const std::string& group_id = "");
// The one group job `job_id` is imported for, for callers that name no group (the offline CLI on
// an HSM in one group). NotFound "job J is not imported on this HSM"; InvalidArgument "job J is
// imported for several groups (A, B); name the group" when it is ambiguous.
absl::StatusOr<std::string> GroupOfJob(Hsm& hsm, const std::string& job_id);
// The job package as imported (the signed message, byte for byte). NotFound "job J is not
// imported on this HSM for group G".
absl::StatusOr<std::vector<uint8_t>> JobPackageBytes(Hsm& hsm, const std::string& group_id,
                                                     const std::string& job_id);

// One device's request.
struct DeviceRequest {
  std::string uid;
  // Device key mode: the chip's public key (from --public-key, or from a CSR whose
  // self-signature the caller checked with crypto::VerifiedCsrKey).
  std::optional<crypto::PublicKey> device_key;
  // HSM key mode: where to wrap the member-made key. A certificate, or a bare public key (then the
  // CMS recipient is identified only by the key; the device opens it with its private key).
  std::optional<crypto::Certificate> transport_cert;
  std::optional<crypto::PublicKey> transport_key;
  bool reissue = false;
};

// What is handed to one device: its provisioning data (patent [0048]).
struct ProvisioningData {
  // DER as issued (the hot path does not parse it back; DeviceCertificate() does, on demand).
  std::vector<uint8_t> device_cert_der;
  std::string cert_serial;                 // lower-case hex
  std::vector<crypto::Certificate> chain;  // device-issuing CA, OEM root
  std::vector<uint8_t> key_envelope;       // CMS of the PKCS#8 device key (hsm mode, transport key)
  crypto::SecretBytes plain_key;      // PKCS#8 PEM (hsm mode, profile allows, no transport key)
  std::vector<uint8_t> record;        // signed ProvisioningRecord message
  std::span<const uint8_t> firmware;  // views into the job; empty when the job has none
  std::span<const uint8_t> config;

  absl::StatusOr<crypto::Certificate> DeviceCertificate() const {
    return crypto::Certificate::FromDer(device_cert_der);
  }
};

class Provisioner {
 public:
  // Loads job `job_id` of group `group_id` (the caller's group: a job of another group is not
  // found), checks it is still valid, unwraps the device-issuing CA key with the group
  // encryption key and prepares the signers.
  static absl::StatusOr<std::unique_ptr<Provisioner>> Create(Hsm& hsm, const std::string& group_id,
                                                             const std::string& job_id);
  ~Provisioner();

  // One device, in one transaction: refuses a uid this member already provisioned for the job
  // ("device uid U was already provisioned for job J (serial S); use --reissue") unless reissue;
  // issues, wraps, signs the record, records the device and appends the audit entry.
  absl::StatusOr<ProvisioningData> Provision(const DeviceRequest& request);

  const DeviceProfile& profile() const;
  const std::string& member_id() const;
  const std::string& group_id() const;

 private:
  struct State;
  explicit Provisioner(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

// Checks a provisioning record against a group (chain: group CA, founder identity, supplier
// issuing; anchor: supplier root) and returns it as JSON-friendly fields.
struct VerifiedRecord {
  std::string group_id, member_id, job_id, device_uid, cert_serial, key_mode;
  std::vector<uint8_t> cert_sha256;
  std::vector<uint8_t> firmware_sha256 = {}, config_sha256 = {};  // empty: none handed out
  int64_t provisioned_at = 0;
};
absl::StatusOr<VerifiedRecord> VerifyProvisioningRecord(
    std::span<const uint8_t> record, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock = SystemClock());

}  // namespace clade::hsm
