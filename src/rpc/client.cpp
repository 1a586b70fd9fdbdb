#include "rpc/client.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/crypto.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "base/files.h"
#include "clade/v1/hsm_service.grpc.pb.h"
#include "crypto/signature.h"
#include "hsm/group_statement.h"
#include "rpc/limits.h"

namespace clade::rpc {
namespace {

constexpr int kCallTimeoutSeconds = 60;

// gRPC's status codes are the canonical codes absl::StatusCode numbers too (0 OK … 16
// UNAUTHENTICATED), so the code carries over as is.
absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  int code = static_cast<int>(s.error_code());
  if (code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    code = static_cast<int>(absl::StatusCode::kUnknown);
  }
  return absl::Status(static_cast<absl::StatusCode>(code), what + ": " + s.error_message());
}

// A client reports failures through the returned status; gRPC's own log lines would only repeat
// them on stderr.
void DropGrpcLog(gpr_log_func_args*) {}

void SetDeadline(grpc::ClientContext& ctx, int seconds = kCallTimeoutSeconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// Reconnection: gRPC's default backoff grows to 120 s; a line wants a restarted or replacement
// daemon at the same address back within about a second.
constexpr int kReconnectBackoffMs = 200;
constexpr int kMaxReconnectBackoffMs = 1000;
// How long one connection attempt (TCP, TLS 1.3, HTTP/2 settings) may take. gRPC takes this from
// GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, so it must not be the short backoff above: on a loaded
// machine a handshake can take well over a second, and a failed attempt fails the call. A daemon
// that is down refuses at once, so this bounds only a peer that accepts and then hangs; each
// call's own deadline bounds that too.
constexpr int kConnectTimeoutMs = 20000;

using ProvisionCall = grpc::ClientReaderWriter<v1::ProvisionRequest, v1::ProvisionResponse>;

constexpr char kStatementKey[] = "clade-statement-bin";

// The client's copy of the newest group statement (docs/decisions/0006-group-statements.md):
// sent with each call, replaced by a newer one a member returns. One per statement file in a
// process, shared by its clients and their streams, so that what one member returned goes to the
// next member any client of the process calls (a line talks to several). A statement that does
// not verify against the client's own group CA is ignored.
class StatementKeeper {
 public:
  static std::shared_ptr<StatementKeeper> Make(const ClientCredentials& creds) {
    if (creds.statement_file.empty()) return std::make_shared<StatementKeeper>();
    static std::mutex registry_mu;
    static std::map<std::string, std::weak_ptr<StatementKeeper>> registry;
    std::lock_guard<std::mutex> l(registry_mu);
    if (auto shared = registry[creds.statement_file].lock()) return shared;
    auto k = std::make_shared<StatementKeeper>();
    registry[creds.statement_file] = k;
    auto chain = crypto::Certificate::ChainFromPem(creds.chain_pem);
    auto root = crypto::Certificate::FromPem(creds.root_pem);
    // client certificate, group CA, founder identity, supplier issuing CA
    if (!chain.ok() || chain->size() != 4 || !root.ok()) return k;
    k->file_ = creds.statement_file;
    k->group_chain_.assign(chain->begin() + 1, chain->end());
    k->root_.emplace(*std::move(root));
    if (auto held = k->ReadFile()) {
      k->message_ = std::string(held->message.begin(), held->message.end());
      k->sequence_ = held->sequence;
    }
    return k;
  }

  void Prepare(grpc::ClientContext& ctx) {
    std::lock_guard<std::mutex> l(mu_);
    if (!message_.empty()) ctx.AddMetadata(kStatementKey, message_);
  }

  void Absorb(const grpc::ClientContext& ctx) {
    if (file_.empty()) return;
    const auto& trailers = ctx.GetServerTrailingMetadata();
    auto [begin, end] = trailers.equal_range(kStatementKey);
    for (auto it = begin; it != end; ++it) {
      std::string bytes(it->second.data(), it->second.size());
      auto s = hsm::VerifyStatement(crypto::AsBytes(bytes), group_chain_, *root_);
      if (!s.ok()) continue;
      std::lock_guard<std::mutex> l(mu_);
      if (s->sequence <= sequence_) continue;
      // Another client of the same directory may have kept a newer one meanwhile.
      if (auto on_disk = ReadFile(); on_disk && on_disk->sequence >= s->sequence) continue;
      if (!WriteFileAtomic(file_, s->message).ok()) continue;
      message_ = bytes;
      sequence_ = s->sequence;
    }
  }

 private:
  std::optional<hsm::VerifiedStatement> ReadFile() const {
    auto bytes = ReadFileBytes(file_, hsm::kMaxStatementSize);
    if (!bytes.ok()) return std::nullopt;
    auto s = hsm::VerifyStatement(*bytes, group_chain_, *root_);
    if (!s.ok()) return std::nullopt;
    return *std::move(s);
  }

  std::string file_;
  std::vector<crypto::Certificate> group_chain_;
  std::optional<crypto::Certificate> root_;
  std::mutex mu_;
  std::string message_;
  uint64_t sequence_ = 0;
};

}  // namespace

using Stub = v1::HsmService::Stub;

struct HsmClient::Impl {
  std::string target;
  // Shared with the streams opened by this client: the stub holds the channel.
  std::shared_ptr<Stub> stub;
  std::shared_ptr<StatementKeeper> statements;

  // One unary call: its deadline, the group statement out and the newest back, and a failure
  // named by the call and the target. `ctx`, if given, is the call's context, for the caller to
  // read afterwards (e.g. the server's certificate).
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(const char* name,
                            grpc::Status (Stub::*rpc)(grpc::ClientContext*, const Req&, Resp*),
                            const Req& req, int timeout_seconds = kCallTimeoutSeconds,
                            grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext own;
    if (ctx == nullptr) ctx = &own;
    SetDeadline(*ctx, timeout_seconds);
    statements->Prepare(*ctx);
    Resp resp;
    grpc::Status s = (stub.get()->*rpc)(ctx, req, &resp);
    statements->Absorb(*ctx);
    if (!s.ok()) return FromGrpc(s, std::string(name) + " on " + target);
    return resp;
  }
};

// Members are destroyed in reverse order: the call before its context, the stub (the channel)
// last.
struct ProvisionStream::Impl {
  std::shared_ptr<Stub> stub;
  std::shared_ptr<StatementKeeper> statements;
  std::string target;
  grpc::ClientContext ctx;
  std::unique_ptr<ProvisionCall> call;
  std::atomic<bool> writes_done{false};
  std::atomic<bool> reads_done{false};
  bool finished = false;
  absl::Status outcome;
};

ProvisionStream::ProvisionStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProvisionStream::~ProvisionStream() {
  if (!impl_ || impl_->finished) return;
  // A call is ended by Finish; after TryCancel that returns at once, once every answer in
  // flight has been read.
  impl_->ctx.TryCancel();
  if (!impl_->reads_done) {
    v1::ProvisionResponse ignored;
    while (impl_->call->Read(&ignored)) {
    }
  }
  impl_->call->Finish();
}

bool ProvisionStream::Write(const v1::ProvisionRequest& req) {
  if (impl_->writes_done) return false;
  return impl_->call->Write(req);
}

bool ProvisionStream::Read(v1::ProvisionResponse* resp) {
  if (impl_->reads_done) return false;
  if (impl_->call->Read(resp)) return true;
  impl_->reads_done = true;
  return false;
}

void ProvisionStream::WritesDone() {
  if (!impl_->writes_done.exchange(true)) impl_->call->WritesDone();
}

void ProvisionStream::Cancel() { impl_->ctx.TryCancel(); }

absl::Status ProvisionStream::Finish() {
  if (!impl_->finished) {
    impl_->outcome = FromGrpc(impl_->call->Finish(), "Provision on " + impl_->target);
    impl_->statements->Absorb(impl_->ctx);
    impl_->finished = true;
  }
  return impl_->outcome;
}

HsmClient::HsmClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HsmClient::~HsmClient() = default;

absl::StatusOr<std::unique_ptr<HsmClient>> HsmClient::Connect(const std::string& target,
                                                              const ClientCredentials& creds) {
  using namespace grpc::experimental;
  gpr_set_log_function(DropGrpcLog);
  std::vector<IdentityKeyCertPair> pairs;
  if (!creds.chain_pem.empty()) {
    pairs.push_back({std::string(creds.key_pem.RevealSecretAsString()), creds.chain_pem});
  }
  auto provider = std::make_shared<StaticDataCertificateProvider>(creds.root_pem, pairs);
  // gRPC's C++ API takes the key as a std::string and keeps its own copy in the provider; the
  // one made here is wiped at once.
  for (IdentityKeyCertPair& p : pairs) OPENSSL_cleanse(p.private_key.data(), p.private_key.size());
  TlsChannelCredentialsOptions opts;
  opts.set_certificate_provider(provider);
  opts.watch_root_certs();
  if (!pairs.empty()) opts.watch_identity_key_cert_pairs();
  // The server's chain must verify to the supplier root; HSMs have no host names, so the host
  // name check is off (the server is named by its certificate, not its address).
  opts.set_verify_server_certs(true);
  opts.set_check_call_host(false);
  opts.set_certificate_verifier(std::make_shared<NoOpCertificateVerifier>());
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kConnectTimeoutMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  // Clade's message limits, not gRPC's 4 MiB default (src/rpc/limits.h).
  args.SetMaxSendMessageSize(static_cast<int>(kMaxRequestBytes));
  args.SetMaxReceiveMessageSize(static_cast<int>(kMaxResponseBytes));
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, hsm::kMaxStatementMetadata);
  auto channel = grpc::CreateCustomChannel(target, grpc::experimental::TlsCredentials(opts), args);
  if (!channel) return absl::InternalError("cannot create a channel to " + target);
  auto impl = std::make_unique<Impl>();
  impl->target = target;
  impl->stub = std::shared_ptr<Stub>(v1::HsmService::NewStub(channel));
  impl->statements = StatementKeeper::Make(creds);
  return std::unique_ptr<HsmClient>(new HsmClient(std::move(impl)));
}

absl::StatusOr<v1::AnnounceResponse> HsmClient::Announce(const v1::AnnounceRequest& req) {
  return impl_->Call("Announce", &Stub::Announce, req);
}

absl::StatusOr<v1::AdmitResponse> HsmClient::Admit(const v1::AdmitRequest& req) {
  return impl_->Call("Admit", &Stub::Admit, req);
}

absl::StatusOr<v1::ImportJobResponse> HsmClient::ImportJob(const v1::ImportJobRequest& req) {
  return impl_->Call("ImportJob", &Stub::ImportJob, req);
}

absl::StatusOr<v1::GetJobResponse> HsmClient::GetJob(const std::string& job_id) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  return impl_->Call("GetJob", &Stub::GetJob, req);
}

absl::StatusOr<v1::StatusResponse> HsmClient::Status(int timeout_seconds,
                                                     std::string* server_cert_pem) {
  grpc::ClientContext ctx;
  ASSIGN_OR_RETURN(
      v1::StatusResponse resp,
      impl_->Call("Status", &Stub::Status, v1::StatusRequest(), timeout_seconds, &ctx));
  if (server_cert_pem) {
    auto auth = ctx.auth_context();
    std::vector<grpc::string_ref> pem;
    if (auth) pem = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (pem.empty()) {
      return absl::UnauthenticatedError("Status on " + impl_->target +
                                        ": the server showed no certificate");
    }
    server_cert_pem->assign(pem[0].data(), pem[0].size());
  }
  return resp;
}

absl::StatusOr<v1::PushStatementResponse> HsmClient::PushStatement(const std::string& statement) {
  v1::PushStatementRequest req;
  req.set_statement(statement);
  return impl_->Call("PushStatement", &Stub::PushStatement, req);
}

absl::StatusOr<v1::ExportAuditResponse> HsmClient::ExportAudit() {
  return impl_->Call("ExportAudit", &Stub::ExportAudit, v1::ExportAuditRequest());
}

namespace {

// Starts a Provision call; `deadline` unset = none (the caller cancels).
std::unique_ptr<ProvisionStream::Impl> StartProvision(
    const std::shared_ptr<Stub>& stub, const std::shared_ptr<StatementKeeper>& statements,
    const std::string& target, std::optional<std::chrono::system_clock::time_point> deadline) {
  auto impl = std::make_unique<ProvisionStream::Impl>();
  impl->stub = stub;
  impl->statements = statements;
  impl->target = target;
  if (deadline) impl->ctx.set_deadline(*deadline);
  statements->Prepare(impl->ctx);
  impl->call = impl->stub->Provision(&impl->ctx);
  return impl->call ? std::move(impl) : nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProvisionStream>> HsmClient::OpenProvisionStream() {
  auto impl = StartProvision(impl_->stub, impl_->statements, impl_->target, std::nullopt);
  if (!impl) return absl::InternalError("cannot open a Provision stream to " + impl_->target);
  return std::unique_ptr<ProvisionStream>(new ProvisionStream(std::move(impl)));
}

absl::StatusOr<std::vector<v1::ProvisionResponse>> HsmClient::Provision(
    const std::vector<v1::ProvisionRequest>& reqs) {
  // A bounded call: a batch from the command line, not a line that cancels its own streams.
  auto impl = StartProvision(impl_->stub, impl_->statements, impl_->target,
                             std::chrono::system_clock::now() + std::chrono::hours(1));
  if (!impl) return absl::InternalError("cannot open a Provision stream to " + impl_->target);
  std::unique_ptr<ProvisionStream> stream(new ProvisionStream(std::move(impl)));
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
  RETURN_IF_ERROR(stream->Finish());
  if (out.size() != reqs.size()) {
    return absl::UnknownError("Provision on " + impl_->target + ": " + std::to_string(out.size()) +
                              " answers to " + std::to_string(reqs.size()) + " requests");
  }
  return out;
}

}  // namespace clade::rpc
