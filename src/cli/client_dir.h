// A client directory written by `clade group issue-client`: client.key (kept private),
// client-chain.pem and supplier-root.crt, read as gRPC client credentials; statement.msg, the
// newest group statement the client has seen, is kept there by the client itself.
#pragma once

#include <string>

#include "base/status.h"
#include "rpc/client.h"

namespace clade::cli {

// Refuses a client.key others can read, naming the file.
absl::StatusOr<rpc::ClientCredentials> ReadClientDirectory(const std::string& dir);

}  // namespace clade::cli
