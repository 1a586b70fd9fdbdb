// What the offline verifiers trust — `audit verify`, `record verify`, `line reconcile`: a group
// export (`clade group export`: the group CA chain up to the supplier root) and, optionally, a
// group statement verified against it. One set of options, help texts and refusals for all three.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "crypto/x509.h"
#include "hsm/group.h"
#include "hsm/group_statement.h"

namespace clade::cli {

// What the command line gave: --group-export DIR (required) and --statement FILE (optional).
struct OfflineTrustFlags {
  std::string group_export, statement;
};

// Adds --group-export and --statement to `cmd`, bound to `flags` (which must outlive parsing).
void AddOfflineTrustOptions(CLI::App& cmd, OfflineTrustFlags& flags);

// The group export, read, and the statement, verified against it (the file named in a refusal).
struct OfflineTrust {
  hsm::GroupExportDir group;
  std::optional<hsm::VerifiedStatement> statement;

  const std::vector<crypto::Certificate>& group_ca_chain() const { return group.group_ca_chain(); }
  const crypto::Certificate& supplier_root() const { return group.supplier_root(); }
  // For the verifiers that take "no statement" as nullptr.
  const hsm::VerifiedStatement* statement_or_null() const {
    return statement ? &*statement : nullptr;
  }
};

absl::StatusOr<OfflineTrust> LoadOfflineTrust(const OfflineTrustFlags& flags);

}  // namespace clade::cli
