// Client certificates for the HSM daemon: line servers and operators authenticate to a member
// with a certificate of kind client, issued by the group CA, carrying a role ("line" or
// "operator") in the extension <arc>.2.2 (a UTF8String). Any member can issue one; any member
// checks it against the group CA it holds.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "crypto/key.h"
#include "crypto/x509.h"
#include "hsm/hsm.h"

namespace clade::hsm {

// What a client may do at a member (proto/clade/v1/hsm_service.proto names the calls per role).
enum class ClientRole {
  kLine,      // a line server: status, jobs, provisioning
  kOperator,  // the group's operator: every call a client may make
};
inline constexpr std::array<ClientRole, 2> kClientRoles = {ClientRole::kLine,
                                                           ClientRole::kOperator};
// The role's text in the certificate's role extension and on the command line: "line",
// "operator".
std::string_view RoleName(ClientRole role);
// The role named by `name`; InvalidArgument naming the known roles otherwise.
absl::StatusOr<ClientRole> ParseRole(std::string_view name);

// The role extension OID: kCladeArc + ".2.2".
std::string ClientRoleExtensionOid();
// The issuing member extension OID: kCladeArc + ".2.3", a UTF8String member id. Revoking a member
// revokes every client certificate it issued (hsm/group_statement.h).
std::string ClientIssuerExtensionOid();
inline constexpr int64_t kDefaultClientValidity = 30 * 24 * 3600;

struct IssuedClient {
  crypto::PrivateKey key;                  // new P-256 key, made here and handed out
  std::vector<crypto::Certificate> chain;  // client cert, group CA, founder identity, issuing
  crypto::Certificate supplier_root;
};
// Issues a client certificate for `role` with the group CA of `group_id`, naming
// this member as its issuer; valid until the group CA expires or `valid_for` seconds, whichever
// is first.
absl::StatusOr<IssuedClient> IssueClientCert(Hsm& hsm, const std::string& group_id, ClientRole role,
                                             int64_t valid_for = kDefaultClientValidity);

struct VerifiedClient {
  std::string group_id;
  ClientRole role;
  std::string subject;
};
// Checks a client certificate: kind client, issued directly by the group CA of a group this HSM
// is a member of, valid at the HSM's clock, with a known role, not revoked by the group's held
// statement (nor issued by a revoked member). PermissionDenied with a named reason otherwise, e.g.
// "client certificate 'CN=…' is not issued by the CA of any group of this HSM".
absl::StatusOr<VerifiedClient> VerifyClientCert(Hsm& hsm, const crypto::Certificate& leaf);

}  // namespace clade::hsm
