// What the line checks before it believes a member (docs/operations.md, "What the line checks"):
// that the server it talks to is a member of the line's group, and that each answer carries a
// device certificate of the job's device-issuing CA (for the chip's own key, in device key mode)
// and that member's signed record naming this job, this uid, this certificate and the firmware
// and config the line programs. Pure functions of their inputs: no network, no state; the runner
// calls them, and a refusal counts against the member that answered.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/job.h"
#include "hsm/member_cert.h"

namespace clade::line {

// The group the line works for, as its client directory shows it.
struct LineGroup {
  std::string group_id;
  std::vector<crypto::Certificate> group_ca_chain;  // group CA, founder identity, supplier issuing
  crypto::Certificate supplier_root;
};
// From client-chain.pem (client certificate, group CA, founder identity, supplier issuing CA) and
// supplier-root.crt. InvalidArgument when the chain does not have that shape.
absl::StatusOr<LineGroup> LineGroupOfClient(std::string_view client_chain_pem,
                                            std::string_view supplier_root_pem);

// Checks that the server that showed `server_cert` in its TLS handshake is a member of `group`:
// `member_cert_der` (from its Status answer) is a member certificate issued by the group CA,
// certifying the key of `server_cert` and naming its HSM serial. PermissionDenied with the
// reason, e.g. "it shows no member certificate for the group", "its member certificate 'CN=…'
// certifies another key than its TLS certificate 'CN=…'".
absl::StatusOr<hsm::VerifiedMember> CheckServerIsMember(const LineGroup& group,
                                                        const crypto::Certificate& server_cert,
                                                        std::span<const uint8_t> member_cert_der,
                                                        const Clock& clock = SystemClock());

// Checks that the group statement the line holds (its client directory's statement.msg, kept
// newest by every call, docs/decisions/0006-group-statements.md) does not revoke `member`. An
// empty `statement` (none seen yet) passes; one that does not verify under `group` is ignored, as
// the client ignores it. PermissionDenied "member 1.2 (HSM SN-3) is revoked in group G since …
// (statement 4)".
absl::Status CheckMemberNotRevoked(const LineGroup& group, const hsm::VerifiedMember& member,
                                   std::span<const uint8_t> statement,
                                   const Clock& clock = SystemClock());

// What the line asked for one device.
struct AskedDevice {
  std::string uid;
  std::optional<crypto::PublicKey> chip_key;  // device key mode: the key the chip made
};
// What the member answered for it.
struct DeviceAnswer {
  std::span<const uint8_t> device_cert_der;
  std::string_view cert_serial;
  std::span<const uint8_t> record;  // the signed ProvisioningRecord message
};

// Checks one answer of `member` for the verified `job`: the device certificate verifies to the
// job's device-issuing CA and OEM root (the package's chain, not one a server sends) at `clock`'s
// time, has the serial the answer names, and in device key mode certifies the chip's key; the
// record is signed by `member`'s certificate (verified under the group by CheckServerIsMember) and
// names this job, uid, serial, certificate digest, key mode and the SHA-256 of the job's firmware
// and config. PermissionDenied naming the failed check, e.g. "the record names uid U2, not U1".
absl::Status CheckAnswer(const hsm::VerifiedJobPackage& job, const hsm::VerifiedMember& member,
                         const AskedDevice& asked, const DeviceAnswer& answer,
                         const Clock& clock = SystemClock());

}  // namespace clade::line
