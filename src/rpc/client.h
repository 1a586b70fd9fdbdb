// A client of the HSM daemon: TLS with a client certificate, the server's certificate checked
// against the caller's supplier root (hostnames are not used: HSMs are named by certificates).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "clade/v1/hsm_service.pb.h"

namespace clade::rpc {

struct ClientCredentials {
  std::string chain_pem;  // leaf first; empty = connect without a client certificate
  std::string key_pem;    // PKCS#8 PEM of the leaf key
  std::string root_pem;   // the supplier root the server's identity must chain to
};

class HsmClient {
 public:
  static absl::StatusOr<std::unique_ptr<HsmClient>> Connect(const std::string& target,
                                                            const ClientCredentials& creds);
  ~HsmClient();

  absl::StatusOr<v1::AnnounceResponse> Announce(const v1::AnnounceRequest& req);
  absl::StatusOr<v1::AdmitResponse> Admit(const v1::AdmitRequest& req);
  absl::StatusOr<v1::ImportJobResponse> ImportJob(const v1::ImportJobRequest& req);
  absl::StatusOr<v1::StatusResponse> Status();
  absl::StatusOr<v1::ExportAuditResponse> ExportAudit();
  // Sends every request on one stream (all in flight at once) and returns the answers in order.
  absl::StatusOr<std::vector<v1::ProvisionResponse>> Provision(
      const std::vector<v1::ProvisionRequest>& reqs);

  struct Impl;

 private:
  explicit HsmClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clade::rpc
