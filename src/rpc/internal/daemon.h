// The daemon's service, shared by the files that implement it: server.cpp (TLS, start, stop,
// log), authorize.cpp (who called, and may it), member_calls.cpp (enrollment, statements, status,
// audit) and job_calls.cpp (jobs and provisioning). Internal to src/rpc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "clade/v1/hsm_service.grpc.pb.h"
#include "crypto/secret.h"
#include "crypto/signature.h"
#include "crypto/x509.h"
#include "hsm/client_cert.h"
#include "hsm/hsm.h"
#include "hsm/job.h"
#include "rpc/server.h"
#include "wire/envelope.h"
#include "wire/strict.h"

namespace clade::rpc {

// An absl::Status as the gRPC status a caller sees (the codes are the same numbers); codes a
// caller has no use for become INTERNAL.
grpc::Status ToGrpc(const absl::Status& s);

// Who may call: a peer HSM (by its identity certificate) or a client of a group, by its role.
enum class CallerKind {
  kPeerHsm,
  kLine,
  kOperator,
};
// The kind as logs and refusals name it: "hsm", "line", "operator".
std::string_view CallerKindName(CallerKind kind);
CallerKind CallerKindOf(hsm::ClientRole role);

// Who called, as Authorize found it.
struct Caller {
  CallerKind kind = CallerKind::kPeerHsm;
  std::string who;  // HSM serial, or the client certificate's subject
  std::string group_id;
  std::optional<crypto::Certificate> hsm_identity;  // a peer HSM's identity certificate

  bool IsPeerHsm() const { return kind == CallerKind::kPeerHsm; }
  // "kind:who", as log lines name the caller.
  std::string Name() const;
  // A line or operator client acts for the one group that issued its certificate; an HSM keeps
  // its groups strictly apart, so a client of one never touches another. A peer HSM acts for no
  // group: what it may do (Status, sending its own enrollment request) is checked apart.
  grpc::Status MayActFor(const std::string& group) const;
};

// The group a message file is for, read before anything acts on it.
template <typename M>
absl::StatusOr<std::string> GroupOfMessage(const std::string& bytes, const char* type,
                                           size_t limit) {
  ASSIGN_OR_RETURN(wire::Envelope env, wire::OpenMessage(crypto::AsBytes(bytes), type, limit));
  ASSIGN_OR_RETURN(M m, wire::ParsePayload<M>(env, limit));
  return m.group_id();
}

// Group statements ride in this metadata entry both ways (docs/decisions/0006-group-statements.md).
inline constexpr char kStatementKey[] = "clade-statement-bin";

struct Daemon::Impl final : public v1::HsmService::Service {
  using Fields = std::vector<std::pair<std::string, std::string>>;
  using Provisioners = std::map<std::string, std::unique_ptr<hsm::Provisioner>>;

  std::unique_ptr<hsm::Hsm> hsm;
  std::mutex mu;  // serializes every use of `hsm`
  std::ostream* log = nullptr;
  std::mutex log_mu;
  std::string members;  // this HSM's member ids, for every log line
  std::string serial;
  std::string address;
  // The identity key as PKCS#8 PEM and a NUL, for gRPC's C API; wiped when the server goes.
  crypto::SecretBytes key_pem;
  std::unique_ptr<grpc::Server> server;
  std::atomic<bool> stopping{false};

  // server.cpp
  void Log(const std::string& event, const Fields& kv);
  void RefreshMembers();

  // authorize.cpp. Checks the caller's certificate, the group statements, and that its kind is
  // in `allowed`. Call with `mu` held.
  grpc::Status Authorize(grpc::ServerContext* ctx, const char* rpc,
                         std::initializer_list<CallerKind> allowed, Caller* out);
  // Statements a caller brings are adopted before its own authorization is judged, so that a
  // revocation reaches this member with the first call that carries it. Returns their groups.
  std::vector<std::string> AdoptCallerStatements(grpc::ServerContext* ctx, const char* rpc);
  // The newest statement of `group_id` goes back with the answer (trailing metadata).
  void ReturnStatement(grpc::ServerContext* ctx, const std::string& group_id);
  // Who the certificate of this call names: a genuine peer HSM, or a verified client.
  absl::StatusOr<Caller> Identify(grpc::ServerContext* ctx, const crypto::Certificate& leaf);

  // member_calls.cpp
  grpc::Status Announce(grpc::ServerContext* ctx, const v1::AnnounceRequest* req,
                        v1::AnnounceResponse* resp) override;
  grpc::Status Admit(grpc::ServerContext* ctx, const v1::AdmitRequest* req,
                     v1::AdmitResponse* resp) override;
  grpc::Status PushStatement(grpc::ServerContext* ctx, const v1::PushStatementRequest* req,
                             v1::PushStatementResponse* resp) override;
  grpc::Status Status(grpc::ServerContext* ctx, const v1::StatusRequest* req,
                      v1::StatusResponse* resp) override;
  grpc::Status ExportAudit(grpc::ServerContext* ctx, const v1::ExportAuditRequest* req,
                           v1::ExportAuditResponse* resp) override;

  // job_calls.cpp
  grpc::Status ImportJob(grpc::ServerContext* ctx, const v1::ImportJobRequest* req,
                         v1::ImportJobResponse* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::GetJobResponse* resp) override;
  grpc::Status Provision(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::ProvisionResponse, v1::ProvisionRequest>* stream) override;
  absl::Status ProvisionOne(const v1::ProvisionRequest& req, const Caller& c, Provisioners& provs,
                            v1::ProvisionResponse* resp);
};

}  // namespace clade::rpc
