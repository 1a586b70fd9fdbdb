#include "cli/client_dir.h"

#include "base/files.h"
#include "crypto/secret.h"
#include "crypto/x509.h"

namespace clade::cli {

absl::StatusOr<rpc::ClientCredentials> ReadClientDirectory(const std::string& dir) {
  rpc::ClientCredentials creds;
  ASSIGN_OR_RETURN(creds.chain_pem,
                   ReadFileString(dir + "/client-chain.pem", crypto::kMaxChainPem));
  RETURN_IF_ERROR(CheckPrivateFile(dir + "/client.key"));
  ASSIGN_OR_RETURN(Bytes key, ReadFileBytes(dir + "/client.key", 64 * 1024));
  creds.key_pem = crypto::SecretBytes::Adopt(key);
  ASSIGN_OR_RETURN(creds.root_pem,
                   ReadFileString(dir + "/supplier-root.crt", crypto::kMaxChainPem));
  creds.statement_file = dir + "/statement.msg";
  return creds;
}

absl::StatusOr<std::optional<std::string>> ReadClientOemRoot(const std::string& dir) {
  std::string path = dir + "/" + kClientOemRootFile;
  if (!PathExists(path)) return std::optional<std::string>();
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(path, crypto::kMaxChainPem));
  return std::optional<std::string>(std::move(pem));
}

}  // namespace clade::cli
