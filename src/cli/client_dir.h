// A client directory written by `clade group issue-client`: client.key (kept private),
// client-chain.pem and supplier-root.crt, read as gRPC client credentials, and oem-root.crt when
// the group accepts job packages from an OEM root (the line checks its job package against it);
// statement.msg, the newest group statement the client has seen, is kept there by the client.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "rpc/client.h"

namespace clade::cli {

inline constexpr char kClientOemRootFile[] = "oem-root.crt";

// Refuses a client.key others can read, naming the file.
absl::StatusOr<rpc::ClientCredentials> ReadClientDirectory(const std::string& dir);
// DIR/oem-root.crt as PEM, or nullopt when the directory holds none.
absl::StatusOr<std::optional<std::string>> ReadClientOemRoot(const std::string& dir);

}  // namespace clade::cli
