// Reading a group statement file (`--statement FILE`) for the offline verifiers: `record verify`,
// `audit verify`, `line reconcile`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/x509.h"
#include "hsm/group_statement.h"

namespace clade::cli {

// nullopt for an empty path; the statement verified against the group otherwise, the file named
// in a refusal.
absl::StatusOr<std::optional<hsm::VerifiedStatement>> ReadStatementFile(
    const std::string& path, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root);

inline constexpr char kStatementFlagHelp[] =
    "Group statement file (`clade group revoke --out`, or `clade group statement --out`): fail "
    "anything a member it revokes did at or after its revocation";

}  // namespace clade::cli
