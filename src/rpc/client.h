// A client of the HSM daemon: TLS with a client certificate, the server's certificate checked
// against the caller's supplier root (hostnames are not used: HSMs are named by certificates).
// Errors carry the gRPC status code as the absl code (PERMISSION_DENIED, NOT_FOUND, UNAVAILABLE,
// DEADLINE_EXCEEDED, CANCELLED, …) and name the call and the target. The channel reconnects
// within about a second, so a restarted or replacement daemon at the same address is reached
// quickly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "clade/v1/hsm_service.pb.h"
#include "crypto/secret.h"

namespace clade::rpc {

// Move-only: the key is a secret (a copy would be one more place to wipe).
struct ClientCredentials {
  std::string chain_pem;        // leaf first; empty = connect without a client certificate
  crypto::SecretBytes key_pem;  // PKCS#8 PEM of the leaf key
  std::string root_pem;         // the supplier root the server's identity must chain to
  // Optional. Where this client keeps the newest group statement (client directory
  // statement.msg): sent with every call (metadata "clade-statement-bin"), and replaced by a newer
  // one a member returns, checked against the group CA of `chain_pem` first.
  std::string statement_file = {};
};

// One Provision stream (HsmService.Provision): requests go out with Write, answers come back in
// request order with Read. One thread may Write (then WritesDone) while another Reads; Cancel may
// be called from any thread. The stream has no deadline: the caller cancels it. It holds the
// client's channel, so it may outlive the HsmClient that opened it. Moves are not offered: the
// threads using a stream hold it by reference or pointer.
class ProvisionStream {
 public:
  // Cancels the call if Finish was not called (a thread still in Write or Read must be done).
  ~ProvisionStream();
  ProvisionStream(const ProvisionStream&) = delete;
  ProvisionStream& operator=(const ProvisionStream&) = delete;

  // Sends one request; false = the stream is broken (or WritesDone was called).
  bool Write(const v1::ProvisionRequest& req);
  // Waits for the next answer; false = no more answers (the stream is broken, cancelled or done).
  bool Read(v1::ProvisionResponse* resp);
  // No more requests: the server answers what it has and ends the stream.
  void WritesDone();
  // Ends the call now, from any thread: a blocked Read or Write returns false.
  void Cancel();
  // The call's outcome, after Read returned false and the writing thread is done: OK, or e.g.
  // CANCELLED after Cancel, PERMISSION_DENIED for a caller the member refuses, UNAVAILABLE.
  absl::Status Finish();

  struct Impl;

 private:
  friend class HsmClient;
  explicit ProvisionStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class HsmClient {
 public:
  static absl::StatusOr<std::unique_ptr<HsmClient>> Connect(const std::string& target,
                                                            const ClientCredentials& creds);
  ~HsmClient();

  absl::StatusOr<v1::AnnounceResponse> Announce(const v1::AnnounceRequest& req);
  absl::StatusOr<v1::AdmitResponse> Admit(const v1::AdmitRequest& req);
  absl::StatusOr<v1::ImportJobResponse> ImportJob(const v1::ImportJobRequest& req);
  // The job package as the member imported it, with its group, product and key mode.
  absl::StatusOr<v1::GetJobResponse> GetJob(const std::string& job_id);
  // Fails fast (UNAVAILABLE) when nothing listens at the target; `timeout_seconds` bounds the
  // whole call, so a short one makes a health probe. `server_cert_pem`, if given, receives the
  // certificate the server showed in the TLS handshake of this call.
  absl::StatusOr<v1::StatusResponse> Status(int timeout_seconds = 60,
                                            std::string* server_cert_pem = nullptr);
  absl::StatusOr<v1::ExportAuditResponse> ExportAudit();
  // Hands the member a group statement; it answers with the newest it holds.
  absl::StatusOr<v1::PushStatementResponse> PushStatement(const std::string& statement);
  // Sends every request on one stream (all in flight at once) and returns the answers in order.
  absl::StatusOr<std::vector<v1::ProvisionResponse>> Provision(
      const std::vector<v1::ProvisionRequest>& reqs);
  // Opens a Provision stream for requests written as they come (see ProvisionStream).
  absl::StatusOr<std::unique_ptr<ProvisionStream>> OpenProvisionStream();

  struct Impl;

 private:
  explicit HsmClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clade::rpc
