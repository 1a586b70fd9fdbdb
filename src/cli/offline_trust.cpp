#include "cli/offline_trust.h"

#include "base/files.h"

namespace clade::cli {

void AddOfflineTrustOptions(CLI::App& cmd, OfflineTrustFlags& flags) {
  cmd.add_option("--group-export", flags.group_export,
                 "Directory written by `clade group export`: group-ca-chain.pem and "
                 "supplier-root.crt are read")
      ->required();
  cmd.add_option("--statement", flags.statement,
                 "Group statement file (`clade group revoke --out`, or `clade group statement "
                 "--out`): fail anything a member it revokes did at or after its revocation");
}

absl::StatusOr<OfflineTrust> LoadOfflineTrust(const OfflineTrustFlags& flags) {
  ASSIGN_OR_RETURN(hsm::GroupExportDir group, hsm::GroupExportDir::Open(flags.group_export));
  OfflineTrust trust{std::move(group), std::nullopt};
  if (flags.statement.empty()) return trust;
  ASSIGN_OR_RETURN(Bytes bytes, ReadFileBytes(flags.statement, hsm::kMaxStatementSize));
  auto statement = hsm::VerifyStatement(bytes, trust.group_ca_chain(), trust.supplier_root());
  if (!statement.ok()) return Annotate(statement.status(), flags.statement);
  trust.statement = *std::move(statement);
  return trust;
}

}  // namespace clade::cli
