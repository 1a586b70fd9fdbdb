#include "cli/client_dir.h"

#include "base/files.h"
#include "crypto/x509.h"

namespace clade::cli {

absl::StatusOr<rpc::ClientCredentials> ReadClientDirectory(const std::string& dir) {
  rpc::ClientCredentials creds;
  ASSIGN_OR_RETURN(creds.chain_pem,
                   ReadFileString(dir + "/client-chain.pem", crypto::kMaxChainPem));
  RETURN_IF_ERROR(CheckPrivateFile(dir + "/client.key"));
  ASSIGN_OR_RETURN(creds.key_pem, ReadFileString(dir + "/client.key", 64 * 1024));
  ASSIGN_OR_RETURN(creds.root_pem,
                   ReadFileString(dir + "/supplier-root.crt", crypto::kMaxChainPem));
  creds.statement_file = dir + "/statement.msg";
  return creds;
}

}  // namespace clade::cli
