#include "rpc/client.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <chrono>
#include <thread>

#include "clade/v1/hsm_service.grpc.pb.h"

namespace clade::rpc {
namespace {

constexpr int kCallTimeoutSeconds = 60;

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = what + ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(msg);
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
      return absl::InvalidArgumentError(msg);
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(msg);
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(msg);
    default:
      return absl::UnknownError(msg);
  }
}

// A client reports failures through the returned status; gRPC's own log lines would only repeat
// them on stderr.
void DropGrpcLog(gpr_log_func_args*) {}

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(kCallTimeoutSeconds));
}

}  // namespace

struct HsmClient::Impl {
  std::string target;
  std::unique_ptr<v1::HsmService::Stub> stub;
};

HsmClient::HsmClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HsmClient::~HsmClient() = default;

absl::StatusOr<std::unique_ptr<HsmClient>> HsmClient::Connect(const std::string& target,
                                                              const ClientCredentials& creds) {
  using namespace grpc::experimental;
  gpr_set_log_function(DropGrpcLog);
  std::vector<IdentityKeyCertPair> pairs;
  if (!creds.chain_pem.empty()) pairs.push_back({creds.key_pem, creds.chain_pem});
  auto provider = std::make_shared<StaticDataCertificateProvider>(creds.root_pem, pairs);
  TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(provider);
  opts.watch_root_certs();
  if (!pairs.empty()) opts.watch_identity_key_cert_pairs();
  // The server's chain must verify to the supplier root; HSMs have no host names, so the host
  // name check is off (the server is named by its certificate, not its address).
  opts.set_verify_server_certs(true);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(std::make_shared<NoOpCertificateVerifier>());
  auto channel = grpc::CreateChannel(target, grpc::experimental::TlsCredentials(opts));
  if (!channel) return absl::InternalError("cannot create a channel to " + target);
  auto impl = std::make_unique<Impl>();
  impl->target = target;
  impl->stub = v1::HsmService::NewStub(channel);
  return std::unique_ptr<HsmClient>(new HsmClient(std::move(impl)));
}

absl::StatusOr<v1::AnnounceResponse> HsmClient::Announce(const v1::AnnounceRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::AnnounceResponse resp;
  auto s = impl_->stub->Announce(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "Announce on " + impl_->target);
  return resp;
}

absl::StatusOr<v1::AdmitResponse> HsmClient::Admit(const v1::AdmitRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::AdmitResponse resp;
  auto s = impl_->stub->Admit(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "Admit on " + impl_->target);
  return resp;
}

absl::StatusOr<v1::ImportJobResponse> HsmClient::ImportJob(const v1::ImportJobRequest& req) {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::ImportJobResponse resp;
  auto s = impl_->stub->ImportJob(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, "ImportJob on " + impl_->target);
  return resp;
}

absl::StatusOr<v1::StatusResponse> HsmClient::Status() {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::StatusResponse resp;
  auto s = impl_->stub->Status(&ctx, v1::StatusRequest(), &resp);
  if (!s.ok()) return FromGrpc(s, "Status on " + impl_->target);
  return resp;
}

absl::StatusOr<v1::ExportAuditResponse> HsmClient::ExportAudit() {
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  v1::ExportAuditResponse resp;
  auto s = impl_->stub->ExportAudit(&ctx, v1::ExportAuditRequest(), &resp);
  if (!s.ok()) return FromGrpc(s, "ExportAudit on " + impl_->target);
  return resp;
}

absl::StatusOr<std::vector<v1::ProvisionResponse>> HsmClient::Provision(
    const std::vector<v1::ProvisionRequest>& reqs) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
  auto stream = impl_->stub->Provision(&ctx);
  // Requests go out from their own thread while answers come back here, so neither side waits
  // on the other's flow-control window: every device is in flight at once.
  std::thread writer([&stream, &reqs] {
    for (const auto& r : reqs) {
      if (!stream->Write(r)) break;
    }
    stream->WritesDone();
  });
  std::vector<v1::ProvisionResponse> out;
  v1::ProvisionResponse resp;
  while (stream->Read(&resp)) out.push_back(resp);
  writer.join();
  auto s = stream->Finish();
  if (!s.ok()) return FromGrpc(s, "Provision on " + impl_->target);
  if (out.size() != reqs.size()) {
    return absl::UnknownError("Provision on " + impl_->target + ": " + std::to_string(out.size()) +
                              " answers to " + std::to_string(reqs.size()) + " requests");
  }
  return out;
}

}  // namespace clade::rpc
