// Checking that a certificate makes its holder a member of a group: for a line server, which
// must not believe a daemon's word that it is one (docs/operations.md, the factory line).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/x509.h"
#include "hsm/job.h"

namespace clade::hsm {

// A member certificate that VerifyMemberCert checked.
struct VerifiedMember {
  std::string group_id;
  std::string member_id;
  std::string hsm_serial;    // the serialNumber the certificate names
  crypto::Certificate cert;  // kind member; its key is the member's HSM identity key
};

// Checks `member_cert` against a group: the group CA chain (group CA, founder identity, supplier
// issuing) is genuine under `supplier_root`, and the certificate is of kind member, issued
// directly by that group CA, valid at `clock`'s time, naming a member id and an HSM serial.
// PermissionDenied with the reason, e.g. "certificate 'CN=…' is a client certificate, expected a
// member certificate", "certificate 'CN=…' is not issued directly by the group CA".
absl::StatusOr<VerifiedMember> VerifyMemberCert(
    const crypto::Certificate& member_cert, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root, const Clock& clock = SystemClock());

// VerifyProvisioningRecord for a member the caller verified already (a line checks a member
// once, then each of its records on the hot path): the record's signature verifies with
// `member`'s certificate, which must be the record's signer, and the record names that member
// and its group. PermissionDenied "provisioning record is signed by 'CN=…', not by member M".
absl::StatusOr<VerifiedRecord> VerifyMemberRecord(std::span<const uint8_t> record,
                                                  const VerifiedMember& member);

}  // namespace clade::hsm
