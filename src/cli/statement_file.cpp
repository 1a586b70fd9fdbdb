#include "cli/statement_file.h"

#include "base/files.h"

namespace clade::cli {

absl::StatusOr<std::optional<hsm::VerifiedStatement>> ReadStatementFile(
    const std::string& path, const std::vector<crypto::Certificate>& group_ca_chain,
    const crypto::Certificate& supplier_root) {
  if (path.empty()) return std::optional<hsm::VerifiedStatement>();
  ASSIGN_OR_RETURN(auto bytes, ReadFileBytes(path, hsm::kMaxStatementSize));
  auto s = hsm::VerifyStatement(bytes, group_ca_chain, supplier_root);
  if (!s.ok()) return Annotate(s.status(), path);
  return std::optional<hsm::VerifiedStatement>(*std::move(s));
}

}  // namespace clade::cli
